"""``vesselflow`` command line: ``train`` and ``evaluate`` here, one module per other command
(``segment``, ``bench``, ``prepare-drive``, ``drive-stats``, ``calibrate-review``, ``sr``,
``app``). Every argument parser of the package lives in ``vesselflow/cli/``.

Heavy libraries (torch, MONAI, ...) are imported inside each command, so ``vesselflow --help``
and argument errors answer immediately.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from vesselflow import __version__
from vesselflow.cli.loop_args import add_loop_arguments, loop_options
from vesselflow.cli.segment import add_analysis_scale


def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train a vessel model on DRIVE",
                       description="Train the CNF or the factored baseline on DRIVE's training "
                       "split (16 images; 4 fixed images validate). Checkpoints go to OUT "
                       "atomically; --resume continues a killed run. Works under torchrun.")
    # The names of vesselflow.vessel.models.vessel.TRAIN_PRESETS (not imported: --help stays fast).
    p.add_argument("--model", choices=["cnf", "factored", "factored-bce"], required=True,
                   help="cnf, factored (weighted Bernoulli, the paper's baseline) or "
                   "factored-bce (the same network, plain Bernoulli likelihood)")
    p.add_argument("--drive", type=Path, required=True, help="DRIVE folder (training/, test/)")
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    add_loop_arguments(p, patch_size=128, batch_size=8, lr=1e-3, val_every=500, ckpt_every=200,
                       log_every=50)
    p.add_argument("--width", type=int, help="conditioning-network width (default 32)")
    p.add_argument("--flow-steps", type=int, help="flow steps K per level (default 6)")
    p.add_argument("--conditioning", choices=["vgg", "unet"],
                   help="conditioning network: vgg (the paper's, default) or unet (compact "
                   "U-Net, larger receptive field)")
    p.add_argument("--norm", choices=["batch", "instance", "group"],
                   help="normalisation in the conditioning network (default batch)")
    p.add_argument("--input-norm", choices=["none", "fov-standardise"],
                   help="image normalisation before the model, in training and inference "
                   "(default none; fov-standardise: each channel standardised inside the FOV "
                   "to DRIVE's statistics)")
    p.add_argument("--photometric", choices=["none", "camera"], default="none",
                   help="photometric augmentation: none (the paper's geometry only) or camera "
                   "(exposure, contrast, gamma, colour cast, grey, blur, noise, JPEG)")
    p.add_argument("--scale-range", type=float, nargs=2, default=(0.8, 1.2),
                   metavar=("LO", "HI"), help="range of the random isotropic scale "
                   "(paper: 0.8 1.2; 0.75 1.5 covers 30-50 degree cameras)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(a: argparse.Namespace) -> int:
    import torch

    from vesselflow.training.loop import NonFiniteLossError
    from vesselflow.vessel.train.task import TrainOptions, train

    torch.set_num_threads(max(1, torch.get_num_threads()))
    overrides = {k: v for k, v in {"width": a.width, "steps": a.flow_steps,
                                   "conditioning": a.conditioning, "norm": a.norm,
                                   "input_norm": a.input_norm}.items() if v is not None}
    if not 0 < a.scale_range[0] <= a.scale_range[1]:
        print(f"vesselflow train: error: --scale-range must be 0 < LO <= HI, got "
              f"{a.scale_range}", file=sys.stderr)
        return 2
    opts = TrainOptions(model=a.model, drive=a.drive, out=a.out, model_overrides=overrides,
                        photometric=a.photometric, scale=tuple(a.scale_range),
                        **loop_options(a))
    try:
        train(opts)
    except (FileExistsError, FileNotFoundError, ValueError, NonFiniteLossError) as e:
        print(f"vesselflow train: error: {e}", file=sys.stderr)
        return 2
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="evaluate a model on DRIVE or labelled pairs",
                       description="Paper protocol (bpd, PR curve of the mean of N samples, "
                       "max F1, per-sample precision/recall) and field protocol (FOV, F1 at "
                       "the a-priori threshold, AUC-ROC, AP, ECE). Writes OUT/metrics.json, "
                       "OUT/per_image.csv, OUT/curves.npz and OUT/figures/.")
    p.add_argument("--model", required=True,
                   help="cnf-drive, factored-drive, factored-bce, a model folder or a "
                   "training run folder")
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--drive", type=Path, help="DRIVE folder: evaluates the 20 test images")
    src.add_argument("--pairs", type=Path,
                     help="CSV with columns image,label[,fov,label2] (paths relative to it)")
    p.add_argument("--split", default="test", choices=["test", "val"],
                   help="DRIVE split (default test)")
    p.add_argument("--samples", type=int, default=100, help="samples per image (paper: 100)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--limit", type=int, default=None, help="only the first N images")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bpd-canvas", type=int, default=None, metavar="N",
                   help="also report bpd with images zero-padded to an N x N canvas and "
                   "divided by N*N (the paper's figure if it divided by its 1024 x 1024 "
                   "canvas, which it does not state); default 1024 with --drive, off with "
                   "--pairs; 0 turns it off")
    p.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                   help="resamples of the images for 95%% confidence intervals (seeded by "
                   "--seed; default 1000, 0 = none)")
    p.add_argument("--no-biomarkers", action="store_true",
                   help="skip the vessel-biomarker comparison with the tracing")
    p.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda or mps")
    add_analysis_scale(p)
    p.add_argument("--fov-degrees", type=float, default=None,
                   help="the camera's field of view in degrees (default 45, DRIVE's), as in "
                   "vesselflow segment")
    p.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                   help="micrometres per input pixel, for calibres in um (default: estimated "
                   "from the FOV and --fov-degrees)")
    p.add_argument("--out", type=Path, required=True)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from vesselflow.runtime import pick_device
    from vesselflow.vessel.evaluation.evaluate import drive_cases, evaluate, pairs_cases

    if a.fov_degrees is not None and not 0 < a.fov_degrees < 180:
        print(f"vesselflow evaluate: error: --fov-degrees must be in (0, 180), got "
              f"{a.fov_degrees}", file=sys.stderr)
        return 2
    if a.pixel_size is not None and not 0 < a.pixel_size < float("inf"):
        print(f"vesselflow evaluate: error: --pixel-size must be a positive number of um, "
              f"got {a.pixel_size}", file=sys.stderr)
        return 2
    try:
        cases = drive_cases(a.drive, a.split) if a.drive else pairs_cases(a.pairs)
        if a.limit:
            cases = cases[: a.limit]
        canvas = a.bpd_canvas if a.bpd_canvas is not None else (1024 if a.drive else 0)
        m = evaluate(a.model, cases, a.out, n_samples=a.samples, temperature=a.temperature,
                     seed=a.seed, device=pick_device(a.device), canvas=canvas or None,
                     biomarkers=not a.no_biomarkers, n_bootstrap=a.bootstrap,
                     analysis_scale=a.analysis_scale, fov_degrees=a.fov_degrees,
                     pixel_size=a.pixel_size)
    except (FileNotFoundError, ValueError) as e:
        print(f"vesselflow evaluate: error: {e}", file=sys.stderr)
        return 2
    human = m["human"]["f1"] if m["human"] else float("nan")
    canvas_note = (f" ({m['bpd_canvas']:.4f} on the {m['canvas']}^2 canvas)"
                   if m["bpd_canvas"] is not None else "")
    ci = m.get("ci95") or {}
    bpd_ci = f" [{ci['bpd'][0]:.4f}, {ci['bpd'][1]:.4f}]" if "bpd" in ci else ""
    print(f"{m['model']['name']} on {m['n_images']} images, {m['n_samples']} samples: "
          f"bpd {m['bpd']:.4f}{bpd_ci} per pixel, {m['bpd_fov']:.4f} per FOV pixel"
          f"{canvas_note} | max F1 {m['max_f1']:.4f} | F1@{m['threshold']:.3f} "
          f"{m['f1']:.4f} (specificity {m['specificity']:.4f}, MCC {m['mcc']:.4f}, clDice "
          f"{m['cldice']:.4f}) | AUC {m['auc_roc']:.4f} | AP {m['average_precision']:.4f} | "
          f"ECE {m['ece']:.4f} | 2nd observer F1 {human:.4f}\nwrote {a.out}/metrics.json")
    bio = m.get("biomarkers")
    if bio:
        per = bio["per_biomarker"]
        cov = ", ".join(f"{k} {per[k]['coverage']:.2f}" for k in bio["key_biomarkers"]
                        if per[k]["coverage"] is not None)
        print(f"biomarkers vs the tracing: interval coverage {cov} (target >= 0.80); "
              f"per biomarker in metrics.json and {a.out}/biomarkers_per_image.csv")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vesselflow",
        description="Retinal vessel segmentation with conditional normalizing flows.")
    parser.add_argument("--version", action="version", version=f"vesselflow {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    from vesselflow.cli.app import add_parser as _add_app
    from vesselflow.cli.bench import add_parser as _add_bench
    from vesselflow.cli.calibrate import add_parser as _add_calibrate
    from vesselflow.cli.drive_stats import add_parser as _add_drive_stats
    from vesselflow.cli.prepare import add_parser as _add_prepare
    from vesselflow.cli.segment import add_parser as _add_segment
    from vesselflow.cli.sr import add_parser as _add_sr

    _add_segment(sub)
    _add_bench(sub)
    _add_prepare(sub)
    _add_drive_stats(sub)
    _add_calibrate(sub)
    _add_sr(sub)
    _add_app(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("\ninterrupted: finished outputs are kept; rerun with --continue/--resume",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
