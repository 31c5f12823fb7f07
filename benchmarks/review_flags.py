"""Evaluation of the review flags: do they catch the maps that failed?

For each model, the verdict of :mod:`vesselflow.vessel.review.verdict` (against the model's stored
review calibration, from DRIVE's training and validation images only) is computed for:

* DRIVE test, clean, and under every corruption of the generalisation benchmark; HRF (all 42
  labelled images): the per-image quality features and F1 come from the generalisation
  benchmark's cache (``benchmarks/generalisation.py`` must have run with the same models:
  the map and features are those of segment's path, 16 samples);
* images that are not fundus photographs: scikit-image's sample pictures, uniform noise,
  gradients, a checkerboard, a flat grey frame: analysed here on segment's path. A refusal
  (the image cannot be analysed: no or too small a FOV) counts as caught.

Output (``--out``, default results/review_flags/): review_flags.md and .json: the flag rate
per set, and the confusion of ``review`` against "F1 < 0.6" and against "F1 >= 0.7".

    python benchmarks/generalisation.py && python benchmarks/review_flags.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from vesselflow.vessel.review.verdict import ReviewCalibration

ROOT = Path(__file__).resolve().parents[1]
BAD_F1, GOOD_F1 = 0.6, 0.7


def non_fundus_images(size: int = 512) -> dict[str, np.ndarray]:
    """Pictures that are not fundus photographs, (H, W, 3) float32 in [0, 1]."""
    from skimage import data, transform

    out: dict[str, np.ndarray] = {}
    for name in ("astronaut", "coffee", "chelsea", "rocket", "camera", "coins", "moon"):
        im = getattr(data, name)().astype(np.float32) / 255.0
        if im.ndim == 2:
            im = np.repeat(im[..., None], 3, axis=2)
        out[name] = im[..., :3]
    rng = np.random.default_rng(0)
    out["uniform-noise"] = rng.random((size, size, 3), dtype=np.float32)
    ramp = np.linspace(0, 1, size, dtype=np.float32)
    out["gradient-horizontal"] = np.repeat(np.tile(ramp, (size, 1))[..., None], 3, axis=2)
    yy, xx = np.mgrid[:size, :size]
    radial = 1 - np.hypot(yy - size / 2, xx - size / 2) / (size / np.sqrt(2))
    out["gradient-radial"] = np.repeat(radial[..., None], 3, axis=2).astype(np.float32)
    board = ((yy // 32 + xx // 32) % 2).astype(np.float32)
    out["checkerboard"] = np.repeat(board[..., None], 3, axis=2)
    out["flat-grey"] = np.full((size, size, 3), 0.5, np.float32)
    return {k: np.ascontiguousarray(transform.resize(v, (size, size), anti_aliasing=True)
                                    .astype(np.float32)) if v.shape[0] < 160 else v
            for k, v in out.items()}


def _verdicts(calibration: ReviewCalibration, records: list[dict]) -> list[dict]:
    out = []
    for r in records:
        v = calibration.assess(r["quality"])
        out.append({"id": r["id"], "f1": r["f1"], "review": v.review, "reasons": v.codes})
    return out


def confusion(rows: list[dict]) -> dict:
    """Flag counts among bad (F1 < 0.6), middling and good (F1 >= 0.7) maps."""
    bad = [r for r in rows if r["f1"] < BAD_F1]
    good = [r for r in rows if r["f1"] >= GOOD_F1]
    n_flag = sum(r["review"] for r in rows)
    return {"n": len(rows), "flagged": n_flag,
            "flag_rate": n_flag / len(rows) if rows else float("nan"),
            "bad": len(bad), "bad_flagged": sum(r["review"] for r in bad),
            "good": len(good), "good_flagged": sum(r["review"] for r in good)}


def _rate(a: int, b: int) -> str:
    return f"{a}/{b} ({100 * a / b:.0f}%)" if b else "–"


def _verdict(k: int, n: int, ok: bool) -> str:
    """``k/n`` with its exact 95% interval and the target's verdict ("not established" under
    :data:`~vesselflow.vessel.evaluation.metrics.MIN_RATE_CASES` cases)."""
    from vesselflow.vessel.evaluation.metrics import MIN_RATE_CASES, binomial_interval

    if not n:
        return "no cases: not established"
    lo, hi = binomial_interval(k, n)
    verdict = ("not established, n < 20" if n < MIN_RATE_CASES
               else "met" if ok else "missed")
    return f"{k}/{n} = {100 * k / n:.0f}%, 95% CI {100 * lo:.0f}-{100 * hi:.0f}% ({verdict})"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["cnf-drive", "factored-drive"])
    p.add_argument("--cache", type=Path, default=ROOT / "results" / "generalisation" / "cache")
    p.add_argument("--samples", type=int, default=16)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=ROOT / "results" / "review_flags")
    a = p.parse_args(argv)
    import torch

    from vesselflow.io.files import atomic_path, write_json
    from vesselflow.vessel.analysis.pipeline import AnalysisError, segment_image
    from vesselflow.vessel.analysis.summary import summarise
    from vesselflow.vessel.data.corruptions import CORRUPTIONS
    from vesselflow.vessel.models import load_model
    from vesselflow.vessel.preprocess.fov import detect_fov
    from vesselflow.vessel.review.verdict import ReviewCalibration

    torch.set_num_threads(a.threads)
    t0 = time.perf_counter()
    result: dict = {"command": " ".join(["python benchmarks/review_flags.py",
                                         *(argv if argv is not None else sys.argv[1:])]),
                    "bad_f1": BAD_F1, "good_f1": GOOD_F1, "models": {}}
    for name in a.models:
        loaded = load_model(name)
        calibration = ReviewCalibration.load(loaded.path)
        if calibration is None:
            raise SystemExit(f"{name}: no review calibration; run vesselflow calibrate-review "
                             f"--model {name} --drive DRIVE")
        sets: dict[str, list[dict]] = {}
        for cond in ["clean", *CORRUPTIONS, "hrf"]:
            f = a.cache / loaded.name / f"{cond}.json"
            if not f.is_file():
                print(f"[{name}] {cond}: not in {a.cache}, left out", flush=True)
                continue
            saved = json.loads(f.read_text())
            if saved["settings"].get("model_sha256") != loaded.sha256:
                print(f"[{name}] {cond}: cached for other weights, left out", flush=True)
                continue
            if any("quality" not in r for r in saved["records"]):
                print(f"[{name}] {cond}: cache has no quality features, left out", flush=True)
                continue
            sets[cond] = _verdicts(calibration, saved["records"])
        labelled = [r for rows in sets.values() for r in rows]
        nonf = []
        for img_name, image in non_fundus_images().items():
            try:
                fov = detect_fov(image)
                seg = segment_image(loaded.model, image, n=a.samples, fov=fov, name=img_name)
                v = summarise(seg, loaded.threshold, calibration).verdict
                nonf.append({"id": img_name, "outcome": v.status, "reasons": v.codes})
            except AnalysisError as e:
                nonf.append({"id": img_name, "outcome": "refused", "reasons": str(e)})
            print(f"[{name}] non-fundus {img_name}: {nonf[-1]['outcome']} "
                  f"{nonf[-1]['reasons'][:90]}", flush=True)
        result["models"][loaded.name] = {
            "sha256": loaded.sha256,
            "sets": {c: {**confusion(rows), "images": rows} for c, rows in sets.items()},
            "labelled": confusion(labelled),
            "drive_corrupted": confusion([r for c, rows in sets.items()
                                          if c not in ("clean", "hrf") for r in rows]),
            "non_fundus": {"n": len(nonf), "caught": sum(x["outcome"] != "ok" for x in nonf),
                           "images": nonf}}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    a.out.mkdir(parents=True, exist_ok=True)
    write_json(a.out / "review_flags.json", result)
    md = markdown(result)
    with atomic_path(a.out / "review_flags.md") as tmp:
        tmp.write_text(md)
    print("\n" + md, flush=True)
    return result


def markdown(result: dict) -> str:
    lines = ["# Review flags", "",
             f"Command: `{result['command']}`. Verdicts against each model's stored review "
             "calibration (from DRIVE's training and validation images only). *bad*: "
             f"F1 < {BAD_F1}; *good*: F1 >= {GOOD_F1}. Recall = bad maps flagged; false "
             "alarms = good maps flagged.", "",
             "| model | set | images | flagged | bad maps flagged (recall) | good maps flagged "
             "(false alarms) |", "|---|---|---|---|---|---|"]
    for model, m in result["models"].items():
        def row(label: str, c: dict, model: str = model) -> str:
            return (f"| {model} | {label} | {c['n']} | {_rate(c['flagged'], c['n'])} | "
                    f"{_rate(c['bad_flagged'], c['bad'])} | "
                    f"{_rate(c['good_flagged'], c['good'])} |")
        if "clean" in m["sets"]:
            lines.append(row("DRIVE test", m["sets"]["clean"]))
        lines.append(row("DRIVE test, corrupted (all)", m["drive_corrupted"]))
        if "hrf" in m["sets"]:
            lines.append(row("HRF", m["sets"]["hrf"]))
        lines.append(row("**all labelled**", m["labelled"]))
        nf = m["non_fundus"]
        lines.append(f"| {model} | not fundus photos | {nf['n']} | {_rate(nf['caught'], nf['n'])}"
                     " flagged or refused | – | – |")
    lines += ["", "Targets: recall >= 95% of bad maps across the sets; false alarms <= 10% of "
              "good maps; every non-fundus image flagged or refused."]
    for model, m in result["models"].items():
        c, nf = m["labelled"], m["non_fundus"]
        rec = c["bad_flagged"] / c["bad"] if c["bad"] else float("nan")
        fa = c["good_flagged"] / c["good"] if c["good"] else float("nan")
        lines.append(f"- **{model}**: recall {_verdict(c['bad_flagged'], c['bad'], rec >= 0.95)}"
                     f"; false alarms {_verdict(c['good_flagged'], c['good'], fa <= 0.10)}; "
                     f"non-fundus {nf['caught']}/{nf['n']} "
                     f"({'met' if nf['caught'] == nf['n'] else 'missed'}).")
    per_set = []
    for model, m in result["models"].items():
        for cond, c in m["sets"].items():
            if cond not in ("clean", "hrf"):
                per_set.append(f"{model} {cond}: {c['flagged']}/{c['n']} flagged, bad "
                               f"{c['bad_flagged']}/{c['bad']}")
    if per_set:
        lines += ["", "Per corruption: " + "; ".join(per_set) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
