"""``vesselflow bench``: the parser; the work is :func:`vesselflow.vessel.bench.run_bench`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vesselflow.vessel.bench import TARGETS  # stdlib-only module: --help stays fast

DEFAULT_OUT = Path("results/bench_segment.json")
"""Where ``vesselflow bench`` writes, relative to the folder it runs in."""


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``vesselflow bench``; sets ``func``."""
    p = sub.add_parser(
        "bench", help="time segmentation of a DRIVE-sized image (speed, memory)",
        description="Per-image latency, samples/s and peak memory for a DRIVE-sized image, "
        f"per model, each in a fresh process; targets for cnf-drive: 16 samples <= "
        f"{TARGETS['16']:g} s, 100 samples <= {TARGETS['100']:g} s, peak memory <= "
        f"{TARGETS['peak_rss_mb'] / 1024:g} GB. Writes JSON to --out.")
    p.add_argument("--model", action="append", default=None,
                   help="model to time (repeatable): cnf-drive, factored-drive, a folder, or "
                   "arch:cnf / arch:factored for the default architecture with random weights "
                   "(default: both shipped models)")
    p.add_argument("--samples", type=int, nargs="+", default=[16, 100],
                   help="sample counts to time (default 16 100)")
    p.add_argument("--drive", type=Path, help="DRIVE folder: time its first test image")
    p.add_argument("--threads", type=int, help="torch threads (default: torch's choice)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--repeats", type=int, default=1, help="best of R runs per sample count")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT,
                   help=f"JSON to write (default {DEFAULT_OUT}, relative to the current folder)")
    p.add_argument("--no-biomarkers", action="store_true",
                   help="skip timing the vessel biomarkers of 16 samples (target <= "
                   f"{TARGETS['biomarkers_16']:g} s)")
    p.add_argument("--large-photo", type=Path, default=None,
                   help="also time this high-resolution photo at 16 samples with "
                   f"--analysis-scale auto, first pass included (target <= "
                   f"{TARGETS['large_16']:g} s, peak <= "
                   f"{TARGETS['large_peak_rss_mb'] / 1024:g} GB)")
    p.set_defaults(func=_cmd_bench)
    return p


def _cmd_bench(a: argparse.Namespace) -> int:
    """0: every model timed; 1: some model failed; 2: bad arguments."""
    from vesselflow.vessel.bench import run_bench
    from vesselflow.vessel.models import SHIPPED

    try:
        record = run_bench(a.model or list(SHIPPED), a.samples, drive=a.drive,
                           threads=a.threads, batch_size=a.batch_size, repeats=a.repeats,
                           out=a.out, biomarkers=not a.no_biomarkers, large=a.large_photo)
    except (FileNotFoundError, ValueError) as e:
        print(f"vesselflow bench: error: {e}", file=sys.stderr)
        return 2
    return 1 if any("error" in r for r in record["results"]) else 0
