"""The vessel-biomarker tables of the README and docs/RESULTS.md, from
``scripts/calibrate_biomarkers.py``'s ``results/biomarkers/<model>/coverage.json``.

``scripts/results_table.py`` (the one writer of generated tables) calls :func:`readme`,
:func:`build` and :func:`measured_line`; this module writes nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODELS = ("cnf-drive", "factored-drive")
SETS = ("drive-test", "hrf-reported")
POOLED = ("vessel_density", "length_density", "fractal_dimension", "tortuosity",
          "calibre_mean_um")
LOA = ("vessel_density", "length_density", "calibre_mean_um")
UNITS = {"vessel_density": "fraction", "length_density": "mm/mm²", "fractal_dimension": "-",
         "tortuosity": "-", "calibre_mean_um": "µm (estimate)"}
TARGET = 0.85  # pooled coverage of the 90% intervals, on each reported set
LOW = 0.70  # a cell below this is explained in the text
MIN_RATE_CASES = 20  # as vesselflow.vessel.evaluation.metrics (not imported: no torch here)
COMMAND = "python scripts/calibrate_biomarkers.py"


def load(model: str) -> dict[str, Any] | None:
    """``results/biomarkers/<model>/coverage.json``, or None before it was measured."""
    path = ROOT / "results" / "biomarkers" / model / "coverage.json"
    return json.loads(path.read_text()) if path.exists() else None


def _f(x: float | None, digits: int = 3) -> str:
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.{digits}g}" if abs(x) < 0.01 and x != 0 else f"{x:.{digits}f}"


def _cov(c: dict[str, Any]) -> str:
    """Coverage with its exact 95% interval; under 20 photos: "not established"."""
    if not c.get("n"):
        return "-"
    lo, hi = c["ci95"]
    text = f"{c['coverage']:.2f} ({c['covered']}/{c['n']}, {lo:.2f}-{hi:.2f})"
    return text if c["n"] >= MIN_RATE_CASES else text + " not established, n < 20"


def _pooled_verdict(m: dict[str, Any], s: str) -> tuple[dict[str, Any], str]:
    p = m["reported"][s]["pooled"]
    return p, "met" if (p["coverage"] or 0) >= TARGET else "**missed**"


def readme() -> str:
    """README: cnf-drive's coverage table (pooled biomarkers, both reported sets)."""
    m = load("cnf-drive")
    if m is None:
        return "*Vessel biomarkers: not calibrated yet (results/biomarkers/cnf-drive/).*\n"
    head = ["biomarker (cnf-drive)", "unit"]
    for s in SETS:
        lab = m["reported"][s]["label"]
        head += [f"{lab}: coverage (95% CI)", "median width", "bias"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name in POOLED:
        row = [name, UNITS[name]]
        for s in SETS:
            c = m["reported"][s]["per_biomarker"][name]
            row += [_cov(c), _f(c["median_width"]), _f(c["bias"])]
        lines.append("| " + " | ".join(row) + " |")
    row = ["**pooled**", ""]
    for s in SETS:
        p, ok = _pooled_verdict(m, s)
        row += [f"{_cov(p)}: {ok}", "", ""]
    lines.append("| " + " | ".join(row) + " |")
    n = {s: len(m["reported"][s]["ids"]) for s in SETS}
    lines += ["", f"90% prediction intervals for what the first observer's tracing measures "
              f"(weights `{m['model']['sha256'][:12]}`), calibrated on "
              f"{m['calibration']['photos']} photos that are not reported (DRIVE validation, "
              f"degraded DRIVE training photos, half of HRF) and checked on DRIVE test "
              f"({n['drive-test']}) and the other half of HRF ({n['hrf-reported']}); target: "
              f"pooled coverage >= {TARGET}. Bias: calibrated estimate - tracing; µm from "
              f"the assumed 13 mm field. Every cell, "
              f"the factored model and the observers' limits: "
              f"[docs/RESULTS.md](docs/RESULTS.md#vessel-biomarkers). Regenerate: `{COMMAND}`."]
    return "\n".join(lines) + "\n"


def measured_line() -> str | None:
    """README's one line on the biomarkers (None before they were calibrated)."""
    m = load("cnf-drive")
    if m is None:
        return None
    parts = []
    for s in SETS:
        p, ok = _pooled_verdict(m, s)
        parts.append(f"{m['reported'][s]['label']} {p['coverage']:.2f} ({ok})")
    d = m["reported"]["drive-test"]["per_biomarker"]
    narrower = [k for k in LOA if (d[k]["median_width"] or math.inf)
                <= (d[k].get("observer_loa_width") or 0)]
    return (f"- **Vessel biomarkers** (cnf-drive): calibrated 90% intervals cover the first "
            f"observer's value, pooled over {len(POOLED)} biomarkers (target >= {TARGET}): "
            + "; ".join(parts) + f"; median width within the observers' 95% limits of "
            f"agreement for {len(narrower)} of {len(LOA)} ({', '.join(narrower) or 'none'}).")


def build(bench: dict[str, Any] | None) -> str:
    """docs/RESULTS.md: per model, every biomarker by reported set, the calibration photos,
    and the biomarkers' speed from ``bench`` (``vesselflow bench``'s JSON, or None)."""
    lines = []
    for model in MODELS:
        m = load(model)
        if m is None:
            lines += [f"*{model}: not calibrated yet (results/biomarkers/{model}/)*", ""]
            continue
        lines += [f"**{model}** (weights `{m['model']['sha256'][:12]}`, {m['samples']} "
                  f"samples, seed {m['seed']}, analysis scale auto; calibrated on "
                  f"{m['calibration']['photos']} photos: "
                  + ", ".join(f"{k} {v}" for k, v in sorted(
                      m["calibration"]["per_stratum"].items()))
                  + f"; `results/biomarkers/{model}/`)", ""]
        for s in SETS:
            rep = m["reported"][s]
            human = "observer_loa_width" in rep["per_biomarker"]["vessel_density"]
            head = ["biomarker", "coverage (k/n, 95% CI)", "median width", "bias",
                    "model bias (raw)", "tracing mean", "sample-interval coverage"]
            if human:
                head += ["observers' 95% LoA width", "observer 2 covered"]
            p, ok = _pooled_verdict(m, s)
            lines += [f"*{rep['label']}* ({len(rep['ids'])} photos, analysis scale "
                      f"{', '.join(str(x) for x in rep['analysis_scales'])}); pooled over "
                      f"{', '.join(POOLED)}: {_cov(p)} (target >= {TARGET}: {ok})", "",
                      "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
            for name, c in rep["per_biomarker"].items():
                low = c["coverage"] is not None and c["coverage"] < LOW
                row = [f"**{name}**" if name in POOLED else name, _cov(c) + (" ⚠" if low
                                                                             else ""),
                       _f(c["median_width"]), _f(c["bias"]), _f(c["model_bias"]),
                       _f(c["tracing_mean"]), _f(c.get("sample_interval_coverage"), 2)]
                if human:
                    row += [_f(c.get("observer_loa_width")), _f(c.get("observer2_coverage"), 2)]
                lines.append("| " + " | ".join(row) + " |")
            lines.append("")
        lines += [f"HRF calibration half ({len(m['calibration']['hrf_ids'])}): "
                  + ", ".join(m["calibration"]["hrf_ids"]) + ". Reported half: "
                  + ", ".join(m["reported"]["hrf-reported"]["ids"]) + ".", ""]
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
    first = ROOT / "results" / "bench_first_image.json"
    for label, r in (json.loads(first.read_text())["runs"].items() if first.exists() else []):
        lines.append(
            f"- First photo of a fresh `vesselflow segment` ({label}; `benchmarks/"
            f"first_image.py`, {len(r['seconds_per_image'])} DRIVE test photos, 16 samples, "
            f"load average {r['load_average_before'][0]:.1f} on 2 cores): first "
            f"{r['first']:.2f} s, later median {r['later_median']:.2f} s, gap "
            f"{r['gap_s']:+.2f} s (target <= {r['target_gap_s']:g} s: "
            f"{'met' if r['met'] else 'MISSED'}).")
    return "\n".join(lines).rstrip() + "\n"
