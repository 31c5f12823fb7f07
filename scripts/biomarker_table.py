"""The vessel-biomarker tables of docs/RESULTS.md, from ``vesselflow evaluate`` outputs.

``scripts/results_table.py`` (the one writer of generated tables) calls :func:`build`; this
module writes nothing. It reads ``results/biomarkers-drive/metrics.json`` (DRIVE test, with the
second observer) and ``results/biomarkers-hrf/metrics.json`` (HRF), their ``biomarkers``
section (:mod:`vesselflow.vessel.evaluation.biomarker_agreement`), and the biomarker timing of
``vesselflow bench`` that the caller passes in.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"DRIVE test": "biomarkers-drive", "HRF": "biomarkers-hrf"}
TARGET = 0.8  # share of DRIVE test images whose tracing value the 95% interval should cover


def _r(x: float | None) -> str:
    """A correlation, always with two decimals."""
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _f(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 0.01 and x != 0 else f"{x:.{digits}f}"


def load(run: str) -> dict[str, Any] | None:
    """``results/<run>/metrics.json``, or None before it was measured."""
    path = ROOT / "results" / run / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def coverage(m: dict[str, Any]) -> dict[str, float | None]:
    """Interval coverage of the key biomarkers (the ones the target is stated for)."""
    per = m["biomarkers"]["per_biomarker"]
    return {k: per[k]["coverage"] for k in m["biomarkers"]["key_biomarkers"]}


def build(bench: dict[str, Any] | None) -> str:
    """Markdown: one table per labelled set, the coverage target, and the biomarkers' speed
    from ``bench`` (``vesselflow bench``'s JSON, or None)."""
    lines = []
    for label, run in RUNS.items():
        m = load(run)
        if m is None or "biomarkers" not in m:
            lines += [f"*{label}: no results yet (results/{run}/metrics.json)*", ""]
            continue
        per = m["biomarkers"]["per_biomarker"]
        human = all("observer" in e for e in per.values())
        head = ["biomarker", "unit", "tracing mean", "model bias", "model r",
                "interval coverage", "mean interval width"]
        if human:
            head += ["2nd observer bias", "2nd observer r", "observer 95% LoA width",
                     "intervals vs observer"]
        lines += [f"**{label}** ({m['model']['name']} `{m['model']['sha256'][:12]}` at threshold "
                  f"{m['threshold']:.4f}, {m['n_images']} images, {m['n_samples']} samples, "
                  f"seed {m['seed']}; `results/{run}/`)", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, e in per.items():
            key = name in m["biomarkers"]["key_biomarkers"]
            row = [f"**{name}**" if key else name, e["unit"], _f(e["tracing_mean"]),
                   _f(e["bias"]), _r(e["pearson_r"]), _f(e["coverage"], 2),
                   _f(e["interval_width"])]
            if human:
                o = e["observer"]
                row += [_f(o["bias"]), _r(o["pearson_r"]), _f(o["loa_width"]),
                        e.get("intervals_vs_observer", "-")]
            lines.append("| " + " | ".join(row) + " |")
        if run == "biomarkers-drive":
            verdict = "; ".join(f"{k} {_f(c, 2)} ({'met' if (c or 0) >= TARGET else 'MISSED'})"
                                for k, c in coverage(m).items())
            lines += ["", f"Target: 95% interval covers the tracing on >= {TARGET:.0%} of "
                      f"DRIVE test images for the bold biomarkers: {verdict}."]
        lines.append("")
    for res in (bench or {}).get("results", []):
        bio = res.get("biomarkers")
        if not bio:
            continue
        limit = bench["targets"]["biomarkers_16_samples_s"]
        ok = "met" if bio["seconds"] <= limit else "MISSED"
        lines.append(
            f"- Speed ({res['model']} `{res['sha256'][:12]}`, `vesselflow bench`, "
            f"{Path(bench['image']).name}): biomarkers of {bio['samples']} samples + the mask "
            f"{bio['seconds']:.2f} s wall, {bio['cpu_seconds']:.2f} s CPU, {res['threads']} "
            f"thread(s), load average {bench['load_average_before'][0]:.1f} on 2 cores "
            f"(target <= {limit:g} s wall: {ok}); first call in a process "
            f"{bio['first_call_seconds']:.1f} s.")
    return "\n".join(lines).rstrip() + "\n"
