"""``vesselflow calibrate-review``: calibrate a model's review verdicts and store the calibration
with the model. The work is :func:`vesselflow.vessel.evaluation.review_calibration.calibrate`; this
command loads the model, runs it and writes the calibration file into the model's folder."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``vesselflow calibrate-review``; sets ``func``."""
    p = sub.add_parser(
        "calibrate-review", help="calibrate a model's review verdicts on DRIVE's training images",
        description="Segment DRIVE's 20 training-folder images, clean and under graded "
        "degradations (harmless to destroying), score each map against its tracing, fit the "
        "predicted F1 (and the threshold for review) on them and store it as the model's "
        "review calibration (quality.json in the model's folder: the shipped "
        "vesselflow/weights/NAME/ or a run's best/), with the weights' sha256. segment, "
        "evaluate and the app assess every map with it. The test set is never used.")
    p.add_argument("--model", required=True, help="shipped name, model folder or run folder")
    p.add_argument("--drive", type=Path, default=Path("../shared/data/DRIVE"),
                   help="DRIVE folder (default ../shared/data/DRIVE)")
    p.add_argument("--samples", type=int, default=16,
                   help="samples per map (default 16, segment's default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache", type=Path, default=None,
                   help="JSON-lines file of per-map records: reused and extended, so an "
                   "interrupted calibration resumes")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.set_defaults(func=_cmd_calibrate)
    return p


def command_line(a: argparse.Namespace) -> str:
    """The command with every setting spelled out, as recorded in the calibration file."""
    return shlex.join(["vesselflow", "calibrate-review", "--model", str(a.model), "--drive",
                       str(a.drive), "--samples", str(a.samples), "--seed", str(a.seed)])


def _cmd_calibrate(a: argparse.Namespace) -> int:
    """0: calibration written; 2: bad arguments, or a model too poor to calibrate."""
    import torch

    from vesselflow.io.files import write_json
    from vesselflow.vessel.evaluation.review_calibration import calibrate
    from vesselflow.vessel.models import load_model
    from vesselflow.vessel.review.verdict import CALIBRATION_FILE

    if a.samples < 2:
        print(f"vesselflow calibrate-review: error: --samples must be >= 2 (the samples' "
              f"agreement is measured), got {a.samples}", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        loaded = load_model(a.model)
        cal, _ = calibrate(loaded, a.drive, samples=a.samples, seed=a.seed, cache=a.cache)
    except (FileNotFoundError, ValueError) as e:
        print(f"vesselflow calibrate-review: error: {e}", file=sys.stderr)
        return 2
    cal.meta["command"] = command_line(a)
    path = Path(loaded.path) / CALIBRATION_FILE
    write_json(path, cal.to_dict())
    c = cal.meta["calibration"]
    print(f"{loaded.name}: {c['n_maps']} calibration maps ({c['n_good']} with F1 >= 0.7, "
          f"{c['n_bad']} below 0.6); leave-one-family-out MAE {c['lofo_mae']:.3f}; review "
          f"below predicted F1 {cal.threshold:.2f} -> {path}")
    return 0
