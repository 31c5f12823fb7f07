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
        description="Segment DRIVE's 20 training-folder images (clean) and the 16 training images "
        "under seeded corruptions, score each map against its tracing, and store the feature "
        "ranges of the good maps as the model's review calibration (quality.json in the "
        "model's folder: the shipped vesselflow/weights/NAME/ or a run's best/), which "
        "segment, evaluate and the app check every image against. The test set is never used.")
    p.add_argument("--model", required=True, help="shipped name, model folder or run folder")
    p.add_argument("--drive", type=Path, required=True, help="DRIVE folder")
    p.add_argument("--samples", type=int, default=16,
                   help="samples per map (default 16, segment's default)")
    p.add_argument("--per-image", type=int, default=4,
                   help="corruptions per training image (default 4)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.set_defaults(func=_cmd_calibrate)
    return p


def command_line(a: argparse.Namespace) -> str:
    """The command with every setting spelled out, as recorded in the calibration file."""
    return shlex.join(["vesselflow", "calibrate-review", "--model", str(a.model), "--drive",
                       str(a.drive), "--samples", str(a.samples), "--per-image",
                       str(a.per_image), "--seed", str(a.seed)])


def _cmd_calibrate(a: argparse.Namespace) -> int:
    """0: calibration written; 2: bad arguments, or a model too poor to calibrate."""
    import torch

    from vesselflow.io.files import write_json
    from vesselflow.vessel.evaluation.review_calibration import calibrate
    from vesselflow.vessel.models import load_model
    from vesselflow.vessel.review.verdict import CALIBRATION_FILE, GOOD_F1

    if a.samples < 1 or a.per_image < 0:
        print(f"vesselflow calibrate-review: error: --samples must be >= 1 and --per-image "
              f">= 0, got {a.samples} and {a.per_image}", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    try:
        loaded = load_model(a.model)
        ref, rows = calibrate(loaded, a.drive, samples=a.samples, per_image=a.per_image,
                              seed=a.seed)
    except (FileNotFoundError, ValueError) as e:
        print(f"vesselflow calibrate-review: error: {e}", file=sys.stderr)
        return 2
    ref.meta["command"] = command_line(a)
    path = Path(loaded.path) / CALIBRATION_FILE
    write_json(path, ref.to_dict())
    print(f"{loaded.name}: {ref.meta['n_good']} of {len(rows)} calibration maps good "
          f"(F1 >= {GOOD_F1}); ranges -> {path}")
    for name, (lo, hi) in ref.ranges.items():
        print(f"  {name:14s} {lo:9.4f} .. {hi:9.4f}")
    return 0
