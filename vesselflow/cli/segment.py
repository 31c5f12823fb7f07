"""``vesselflow segment``: the parser; the work is
:func:`vesselflow.vessel.segment.segment_inputs`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse_threshold(text: str) -> str | float:
    """``auto`` or a number in (0, 1] (argparse type: the library's check, as a usage error)."""
    from vesselflow.batch.inputs import BatchError
    from vesselflow.vessel.segment import parse_threshold as check

    try:
        return check(text)
    except BatchError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``vesselflow segment`` on a subparsers object; sets ``func``."""
    p = sub.add_parser(
        "segment", help="segment a batch of fundus images (file, folder, glob or CSV)",
        description="Segment retinal vessels in one image, a folder (recursive), a glob or a "
        "CSV of path[,id]. Per image: <id>_prob.tif (float32), _prob.png, _mask.png, "
        "_uncertainty.png, _overlay.png, _fov.png (and _samples.nii.gz), at the input's size; "
        "per run: run.json, metrics.csv and biomarkers.csv (vessel biomarkers with sample "
        "intervals). Images are brought to DRIVE's FOV scale for "
        "sampling and the maps resized back. Writes are atomic; --continue resumes an "
        "interrupted run. Shard with torchrun --nproc_per_node=N -m vesselflow segment ...")
    p.add_argument("-i", "--input", required=True,
                   help="image file, folder, glob (quote it) or CSV with path[,id]")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", default="cnf-drive",
                   help="cnf-drive (default), factored-drive, factored-bce, a model folder or a "
                   "checkpoint")
    p.add_argument("--samples", type=int, default=16,
                   help="samples per image for the mean and uncertainty maps (default 16)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--threshold", type=parse_threshold, default="auto",
                   help="mask threshold on the mean map: auto (the model's, chosen on DRIVE's "
                   "validation split) or a number in (0, 1]")
    p.add_argument("--seed", type=int, default=0,
                   help="run seed; each image's seed derives from it and the image id")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--fov-degrees", type=float, default=None,  # None: DRIVE's (the library's)
                   help="the camera's field of view in degrees (default 45, DRIVE's); images "
                   "are rescaled so a degree of retina spans as many pixels as in DRIVE")
    add_analysis_scale(p)
    p.add_argument("--batch-size", type=int, default=8,
                   help="samples drawn at once (memory-bounded; default 8)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--continue", dest="resume", action="store_true",
                      help="finish a previous run in OUT: skip images whose outputs are complete")
    mode.add_argument("--overwrite", action="store_true",
                      help="replace the outputs of a previous run in OUT")
    p.add_argument("--save-samples", action="store_true",
                   help="also write the samples as <id>_samples.nii.gz (uint8 H x W x N)")
    p.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                   help="micrometres per input pixel, for calibres in um (default: estimated "
                   "from the FOV, assuming a 45 degree field spans ~13 mm across it)")
    p.add_argument("--no-biomarkers", action="store_true",
                   help="skip the vessel biomarkers (biomarkers.csv)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar: one line per image instead (for logs)")
    p.set_defaults(func=_cmd_segment)
    return p


def analysis_scale(text: str) -> str | float:
    """argparse type of ``--analysis-scale``: ``auto`` or a number (the library checks it)."""
    from vesselflow.vessel.analysis.scale_rule import parse_scale

    try:
        return parse_scale(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_analysis_scale(p: argparse.ArgumentParser) -> None:
    """``--analysis-scale``, the same in segment and evaluate."""
    p.add_argument("--analysis-scale", type=analysis_scale, default="auto",
                   metavar="auto|1|1.5|2",
                   help="how large the photo is analysed, relative to its FOV at DRIVE's "
                   "diameter (1): auto (default) uses the pixels a large photo has, up to "
                   "where its main vessels reach 1.25x DRIVE's width and within the model's "
                   "trained scale range (a first pass measures them); a fixed scale is "
                   "clamped by the photo's pixels and the trained range")


def _cmd_segment(a: argparse.Namespace) -> int:
    """0: every image segmented; 1: some failed (the rest are written); 2: the run failed."""
    from vesselflow.batch.inputs import BatchError
    from vesselflow.vessel.segment import segment_inputs

    try:
        record = segment_inputs(a.input, a.out, model=a.model, samples=a.samples,
                                temperature=a.temperature, threshold=a.threshold, seed=a.seed,
                                device=a.device, resume=a.resume, overwrite=a.overwrite,
                                save_samples=a.save_samples, progress=not a.no_progress,
                                batch_size=a.batch_size, biomarkers=not a.no_biomarkers,
                                pixel_size=a.pixel_size, fov_degrees=a.fov_degrees,
                                analysis_scale=a.analysis_scale)
    except BatchError as e:
        print(f"vesselflow segment: error: {e}", file=sys.stderr)
        return 2
    return 1 if record["counts"]["failed"] else 0
