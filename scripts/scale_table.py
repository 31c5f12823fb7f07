"""The analysis-scale results of docs/RESULTS.md and the README, from the benchmarks' JSON.

``scripts/results_table.py`` (the one writer of generated tables) calls :func:`build` and
:func:`measured_line`; this module writes nothing. It reads:

* ``results/generalisation-hrf/generalisation.json``: HRF's 42 photos at ``auto`` and at each
  fixed scale, full and half size (``python benchmarks/generalisation.py --conditions hrf
  hrf@1 hrf@1.5 hrf@2 --out results/generalisation-hrf``), with each image's counts for the
  paired differences;
* ``results/analysis_scale/analysis_scale.json``: DRIVE validation (plain, enlarged 2x,
  narrow-field) and the narrow-field views of DRIVE test and HRF (``python
  benchmarks/analysis_scale.py``);
* ``results/analysis_scale/candidates/analysis_scale.json``: the retrained candidates against
  the shipped weights on DRIVE validation, the ship decision's rows.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HRF_RUN = "results/generalisation-hrf/generalisation.json"
SCALE_RUN = "results/analysis_scale/analysis_scale.json"
CANDIDATE_RUN = "results/analysis_scale/candidates/analysis_scale.json"
CANDIDATE_HRF_RUN = "results/generalisation-hrf-candidates/generalisation.json"
HRF_TARGETS = {"full": 0.76, "half": 0.78, "min_image": 0.68}
"""cnf-drive on HRF at ``auto`` (as benchmarks/generalisation.py states them)."""
DECISION_ROWS = ("drive-val@1.0", "drive-val-x2@1.5", "drive-val-x2@2.0",
                 "drive-val-narrow@auto")
"""The rows of the ship decision (results/training/README.md, written before the runs)."""
CANDIDATES = {"results/training/cnf-drive-scale2": "cnf-drive",
              "results/training/factored-drive-scale2": "factored-drive",
              "results/training/factored-drive-scale2-seed1": "factored-drive"}
"""Each candidate and the shipped weights it would replace (the factored recipe twice: seeds
0 and 1, so that a seed's luck is seen)."""


def _load(rel: str) -> dict[str, Any] | None:
    path = ROOT / rel
    return json.loads(path.read_text()) if path.exists() else None


def _sha(digest: str) -> str:
    return f"`{digest[:12]}`"


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _counts(records: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[r["tp"], r["fp"], r["fn"]] for r in records], float)


def _half_counts(records: list[dict[str, Any]]) -> np.ndarray:
    return np.array([[r["half"]["tp"], r["half"]["fp"], r["half"]["fn"]] for r in records],
                    float)


def hrf_table(run: dict[str, Any]) -> list[str]:
    """One row per model and scale: F1 full / half, max-F1, AUC, worst image, and the pooled
    F1 difference to scale 1 (paired over the 42 photos, 95% bootstrap interval)."""
    from vesselflow.vessel.evaluation.bootstrap import paired_pooled_f1_difference

    out = ["| model | scale | F1 (half size) | max-F1 | AUC | worst image F1 | images < "
           f"{HRF_TARGETS['min_image']} | scales used | dF1 vs scale 1 [95% CI] |",
           "|---|---|---|---|---|---|---|---|---|"]
    for model, rows in run["rows"].items():
        base = run["images"][model].get("hrf@1")
        for cond in ("hrf@1", "hrf@1.5", "hrf@2", "hrf"):
            r = rows.get(cond)
            if r is None:
                continue
            recs = run["images"][model][cond]
            used = [u for u in r.get("analysis_scales", []) if u is not None]
            span = (f"{min(used):.2f}" if used and max(used) - min(used) < 0.005 else
                    f"{min(used):.2f}-{max(used):.2f}" if used else "-")
            diff = "-"
            if base is not None and cond != "hrf@1":
                d, lo, hi = paired_pooled_f1_difference(_counts(base), _counts(recs))
                dh, loh, hih = paired_pooled_f1_difference(_half_counts(base),
                                                           _half_counts(recs))
                diff = (f"{d:+.3f} [{lo:+.3f}, {hi:+.3f}]; half {dh:+.3f} "
                        f"[{loh:+.3f}, {hih:+.3f}]")
            scale = "auto" if cond == "hrf" else cond.split("@")[1]
            if used and cond != "hrf" and max(used) < float(scale) - 1e-6:
                scale += f" (clamped to {max(used):.2f}: the trained range)"
            half = r.get("half", {})
            out.append(f"| {model} | {scale} | {r['f1']:.3f} ({half.get('f1', float('nan')):.3f})"
                       f" | {r['max_f1']:.3f} | {r['auc']:.3f} | {r['min_image_f1']:.3f} | "
                       f"{r.get('n_f1_below_0.68', '-')} of {r['n_images']} | {span} | {diff} |")
    return out


def decision(run: dict[str, Any]) -> list[str]:
    """The ship decision: each candidate against the shipped weights on the rule's rows."""
    models = run["models"]
    out = ["| model | weights | " + " | ".join(DECISION_ROWS) + " | mean |",
           "|---|---|" + "---|" * (len(DECISION_ROWS) + 1)]
    means = {}
    for name, m in models.items():
        cells = [m["rows"].get(k, {}).get("full", {}).get("f1") for k in DECISION_ROWS]
        mean = float(np.mean(cells)) if all(c is not None for c in cells) else None
        means[name] = mean
        out.append(f"| {name} | {_sha(m['sha256'])} | "
                   + " | ".join("-" if c is None else f"{c:.4f}" for c in cells)
                   + f" | {'-' if mean is None else f'{mean:.4f}'} |")
    verdicts = []
    for cand, shipped in CANDIDATES.items():
        a, b = means.get(cand), means.get(shipped)
        if a is None or b is None:
            continue
        ships = a - b >= 0.002
        verdicts.append(f"{cand.rsplit('/', 1)[-1]} {a:.4f} vs {shipped} {b:.4f}: "
                        + ("the candidate ships" if ships else "the shipped weights stay"))
    return [*out, "", "Decision (F1 at the a-priori threshold, 16 samples; a candidate ships "
            "when its mean is at least 0.002 higher): " + "; ".join(verdicts) + "."]


def build(_: str | None = None) -> str:
    """The "Analysis scale" section's generated text."""
    hrf, scales, cands = _load(HRF_RUN), _load(SCALE_RUN), _load(CANDIDATE_RUN)
    parts = []
    if hrf:
        models = ", ".join(f"{m} {_sha(v['sha256'])}" for m, v in hrf["models"].items())
        parts += [f"HRF, all 42 labelled photos, 16 samples, the a-priori threshold; scored "
                  f"inside HRF's FOV mask at the photo's size and at half size (2x2 block "
                  f"means). Weights: {models}. Command: `{hrf['command']}`.", "",
                  *hrf_table(hrf), ""]
    else:
        parts += ["*HRF at each scale: not measured yet.*", ""]
    if cands:
        parts += [f"Retrained candidates (scale range 0.75-2.0) against the shipped weights "
                  f"(0.75-1.5) on DRIVE validation; command: `{cands['command']}`.", "",
                  *decision(cands), ""]
    cand_hrf = _load(CANDIDATE_HRF_RUN)
    if cand_hrf:
        parts += ["The same candidates on HRF (reported, not used to choose; they were not "
                  f"shipped): `{cand_hrf['command']}`.", "", *hrf_table(cand_hrf), ""]
    if scales:
        parts += [f"DRIVE validation and narrow-field views: `{scales['command']}`; the table "
                  "per model and set is `results/analysis_scale/analysis_scale.md`.", ""]
    return "\n".join(parts)


def measured_line() -> str | None:
    """The README's bullet for the analysis scale (cnf-drive on HRF at ``auto``)."""
    hrf = _load(HRF_RUN)
    if not hrf or "hrf" not in hrf["rows"].get("cnf-drive", {}):
        return None
    r = hrf["rows"]["cnf-drive"]["hrf"]
    half = r["half"]["f1"]
    below = r["n_f1_below_0.68"]
    return (f"- **High-resolution photos** (cnf-drive, HRF's 42 photos at `--analysis-scale "
            f"auto`): F1 {r['f1']:.3f} at full size (target >= {HRF_TARGETS['full']}: "
            f"{_met(r['f1'] >= HRF_TARGETS['full'])}), {half:.3f} at half size (>= "
            f"{HRF_TARGETS['half']}: {_met(half >= HRF_TARGETS['half'])}); {below} of "
            f"{r['n_images']} photos below F1 {HRF_TARGETS['min_image']} (target 0: "
            f"{_met(below == 0)}).")
