"""``vesselflow drive-stats``: recompute DRIVE's FOV channel statistics, the target of the
``fov-standardise`` input normalisation (:mod:`vesselflow.vessel.preprocess.normalise`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``vesselflow drive-stats``; sets ``func``."""
    p = sub.add_parser(
        "drive-stats", help="recompute DRIVE's FOV colour statistics (input normalisation)",
        description="Per-channel mean and std inside the official FOV masks of DRIVE's 20 "
        "training-folder images (averaged over images; 0-1 intensities): what fov-standardise "
        "matches each image to. Written as JSON to --out.")
    p.add_argument("--drive", type=Path, required=True, help="DRIVE folder")
    p.add_argument("--out", type=Path, default=None,
                   help="JSON to write (default: the packaged "
                   "vesselflow/weights/drive-fov-stats.json, which inference reads)")
    p.set_defaults(func=_cmd_drive_stats)
    return p


def _cmd_drive_stats(a: argparse.Namespace) -> int:
    """0: statistics written; 2: not a DRIVE folder."""
    from vesselflow.io.files import write_json
    from vesselflow.vessel.data.drive_stats import drive_channel_stats
    from vesselflow.vessel.preprocess.normalise import STATS_PATH

    out = STATS_PATH if a.out is None else a.out
    try:
        stats = drive_channel_stats(a.drive)
    except (FileNotFoundError, ValueError) as e:
        print(f"vesselflow drive-stats: error: {e}", file=sys.stderr)
        return 2
    write_json(out, stats)
    print(f"DRIVE {stats['split']} ({stats['n_images']} images) FOV mean {_rgb(stats['mean'])}, "
          f"std {_rgb(stats['std'])} (0-255) -> {out}")
    return 0


def _rgb(values: list[float]) -> str:
    """0-1 channel values as ``r / g / b`` on the 0-255 scale people read."""
    return " / ".join(f"{255 * v:.1f}" for v in values)
