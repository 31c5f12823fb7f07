"""Regenerate the README's "Vessel measurements" tables from ``vesselflow evaluate`` outputs.

Usage::

    python scripts/biomarker_table.py     # rewrites README.md between the BIOMARKERS markers

Reads ``results/biomarkers-drive/metrics.json`` (DRIVE test, with the second observer) and
``results/biomarkers-hrf/metrics.json`` (HRF, 42 labelled images); every number comes from
them (their ``biomarkers`` section, :mod:`vesselflow.vessel.evaluation.biomarker_agreement`).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RUNS = {"DRIVE test": "biomarkers-drive", "HRF": "biomarkers-hrf"}
TARGET = 0.8


def _r(x: float | None) -> str:
    """A correlation, always with two decimals."""
    return "-" if x is None or not math.isfinite(x) else f"{x:.2f}"


def _f(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 0.01 and x != 0 else f"{x:.{digits}f}"


def _load(name: str) -> dict | None:
    path = ROOT / "results" / name / "metrics.json"
    return json.loads(path.read_text()) if path.exists() else None


def build() -> str:
    lines = []
    for label, run in RUNS.items():
        m = _load(run)
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
        lines += [f"**{label}** ({m['model']['name']}, {m['n_images']} images, "
                  f"{m['n_samples']} samples, seed {m['seed']})", "",
                  "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, e in per.items():
            key = name in m["biomarkers"]["key_biomarkers"]
            cov = _f(e["coverage"], 2)
            row = [f"**{name}**" if key else name, e["unit"], _f(e["tracing_mean"]),
                   _f(e["bias"]), _r(e["pearson_r"]), cov, _f(e["interval_width"])]
            if human:
                o = e["observer"]
                row += [_f(o["bias"]), _r(o["pearson_r"]), _f(o["loa_width"]),
                        e.get("intervals_vs_observer", "-")]
            lines.append("| " + " | ".join(row) + " |")
        keys = m["biomarkers"]["key_biomarkers"]
        if run == "biomarkers-drive":
            verdict = "; ".join(
                f"{k} {_f(per[k]['coverage'], 2)} "
                f"({'met' if (per[k]['coverage'] or 0) >= TARGET else 'MISSED'})" for k in keys)
            lines += ["", f"Target: 95% interval covers the tracing on >= {TARGET:.0%} of "
                      f"DRIVE test images for the bold biomarkers: {verdict}."]
        lines.append("")
    bench = ROOT / "benchmarks" / "results" / "bench_biomarkers.json"
    if bench.exists():
        b = json.loads(bench.read_text())
        for res in b["results"]:
            bio = res.get("biomarkers")
            if not bio:
                continue
            ok = "met" if bio["seconds"] <= b["targets"]["biomarkers_16_samples_s"] else "MISSED"
            lines.append(
                f"Speed ({res['model']}, `vesselflow bench`, {b['image'].split('/')[-1]}): "
                f"biomarkers of {bio['samples']} samples + the mask {bio['seconds']:.2f} s wall, "
                f"{bio['cpu_seconds']:.2f} s CPU, {res['threads']} thread, load average "
                f"{b['load_average_before'][0]:.0f} on 2 cores (target <= "
                f"{b['targets']['biomarkers_16_samples_s']:g} s wall: {ok}); the first call in "
                f"a process also compiles skan's numba code ({bio['first_call_seconds']:.0f} s "
                f"there).")
    return "\n".join(lines).rstrip() + "\n"


def main() -> int:
    readme = ROOT / "README.md"
    text = readme.read_text()
    pattern = r"(<!-- BIOMARKERS:START -->\n).*?(\n<!-- BIOMARKERS:END -->)"
    if not re.search(pattern, text, flags=re.S):
        print("README.md has no BIOMARKERS markers", file=sys.stderr)
        return 2
    readme.write_text(re.sub(pattern, lambda mt: mt.group(1) + build() + mt.group(2), text,
                             flags=re.S))
    print("README.md: Vessel measurements tables rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
