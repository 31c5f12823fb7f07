"""``vesselflow sr train|evaluate|upscale``: 2x super-resolution from the command line.

Heavy imports happen inside the commands so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sr", help="2x super-resolution: train, evaluate, upscale",
                       description="Super-resolution with the same conditional flow core: "
                       "the SR CNF and the factored logistic-mixture baseline.")
    srsub = p.add_subparsers(dest="sr_command", required=True)
    _add_train(srsub)
    _add_evaluate(srsub)
    _add_upscale(srsub)


def _doc_paragraph(module: str) -> str | None:
    """The second paragraph of a ``vesselflow.sr`` module's docstring (what a command does).

    Read from the source file, not imported: importing anything under ``vesselflow.sr`` runs
    its ``__init__``, which imports torch, and ``--help`` must answer at once.
    """
    import ast

    path = Path(__file__).resolve().parents[1] / "sr" / f"{module}.py"
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
    return doc.split("\n\n")[1] if doc else None


def _add_train(sub: argparse._SubParsersAction) -> None:
    from vesselflow.cli.loop_args import add_loop_arguments

    p = sub.add_parser("train", help="train an SR model on T91 + BSD200 patches",
                       description="Train the SR CNF or the factored baseline on random "
                       "aligned patches (LR by MATLAB bicubic). Eight BSD200 images are held "
                       "out for validation. Checkpoints go to OUT atomically; --resume "
                       "continues a killed run. Works under torchrun.")
    p.add_argument("--model", choices=["cnf", "factored"], required=True)
    p.add_argument("--data", type=Path, required=True,
                   help="SR data root holding the training sets (../shared/data/SR)")
    p.add_argument("--out", type=Path, required=True, help="run folder to write")
    p.add_argument("--train-sets", default="T91,BSD200",
                   help="comma-separated folders under --data (default T91,BSD200)")
    add_loop_arguments(p, patch_size=64, batch_size=16, lr=5e-4, val_every=250,
                       ckpt_every=100, log_every=25)
    p.add_argument("--features", type=int, help="RRDB width (default 64)")
    p.add_argument("--blocks", type=int, help="number of RRDBs (default 8)")
    p.add_argument("--growth", type=int, help="dense-block growth (default 32)")
    p.add_argument("--flow-steps", type=int, help="flow steps K per level (default 8)")
    p.add_argument("--hidden", type=int, help="coupling/prior width (default 64)")
    p.add_argument("--dequantization", choices=["uniform", "variational"])
    p.add_argument("--n-mix", type=int, help="logistic components (factored, default 10)")
    p.set_defaults(func=_cmd_train)


def _cmd_train(a: argparse.Namespace) -> int:
    import torch

    from vesselflow.cli.loop_args import loop_options
    from vesselflow.sr.training import SRTrainOptions, train_sr
    from vesselflow.training.loop import NonFiniteLossError

    torch.set_num_threads(max(1, torch.get_num_threads()))
    overrides = {k: v for k, v in {
        "features": a.features, "blocks": a.blocks, "growth": a.growth,
        "steps": a.flow_steps, "hidden": a.hidden, "dequantization": a.dequantization,
        "n_mix": a.n_mix}.items() if v is not None}
    opts = SRTrainOptions(model=a.model, data=a.data, out=a.out,
                          train_sets=tuple(s for s in a.train_sets.split(",") if s),
                          model_overrides=overrides, **loop_options(a))
    try:
        train_sr(opts)
    except (FileExistsError, FileNotFoundError, ValueError, OSError,
            NonFiniteLossError) as e:
        print(f"vesselflow sr train: error: {e}", file=sys.stderr)
        return 2
    return 0


def _add_evaluate(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="PSNR/SSIM (Y) and bpd on SR benchmark sets",
                       description=_doc_paragraph("evaluate"))
    p.add_argument("--model", required=True,
                   help="sr-cnf, sr-factored, a model folder or a training run folder")
    p.add_argument("--data", type=Path, required=True,
                   help="SR data root with one folder per set (../shared/data/SR)")
    p.add_argument("--out", type=Path, required=True, help="folder for metrics and figures")
    p.add_argument("--sets", default="Set5,Set14,BSD100",
                   help="comma-separated set folders under --data (default Set5,Set14,BSD100)")
    p.add_argument("--temperatures", default="0,0.5,0.8,1.0",
                   help="comma-separated sampling temperatures (default 0,0.5,0.8,1.0)")
    p.add_argument("--limit", type=int, default=None, help="only the first N images per set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--update", action="store_true",
                   help="re-evaluate only --sets and merge them into OUT's existing results "
                   "(same weights, temperatures and seed required)")
    p.set_defaults(func=_cmd_evaluate)


def parse_temperatures(text: str) -> list[float]:
    """"0,0.5,1" -> [0.0, 0.5, 1.0]; each must be a finite number >= 0."""
    try:
        temps = [float(t) for t in text.split(",") if t.strip()]
    except ValueError as err:
        raise ValueError(f"--temperatures: {text!r} is not a comma-separated list of numbers")\
            from err
    if not temps or any(not math.isfinite(t) or t < 0 for t in temps):
        raise ValueError(f"--temperatures: need one or more numbers >= 0, got {text!r}")
    return temps


def _cmd_evaluate(a: argparse.Namespace) -> int:
    from vesselflow.sr.evaluate import evaluate_sr, summary_table

    try:
        temps = parse_temperatures(a.temperatures)
        sets = [s for s in a.sets.split(",") if s]
        for s in sets:
            if not (a.data / s).is_dir():
                raise FileNotFoundError(f"set {s!r} not found: {a.data / s} is not a folder")
        m = evaluate_sr(a.model, a.data, a.out, sets, temps, limit=a.limit, seed=a.seed,
                        device=a.device, update=a.update)
    except (FileNotFoundError, ValueError, OSError) as e:
        print(f"vesselflow sr evaluate: error: {e}", file=sys.stderr)
        return 2
    print(summary_table(m))
    print(f"wrote {a.out / 'metrics.json'}, {a.out / 'per_image.csv'}, {a.out / 'figures'}")
    return 0


def _add_upscale(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="2x super-resolve your own images",
                       description=_doc_paragraph("upscale"))
    p.add_argument("-i", "--input", required=True,
                   help="image file, folder, glob or CSV of path[,id]")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", default="sr-cnf",
                   help="sr-cnf (default), sr-factored, a model folder or a run folder")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature (0 = point estimate, default; 0.8 = sharper "
                   "but invented detail)")
    p.add_argument("--samples", type=int, default=1, help="samples per image (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--continue", dest="resume", action="store_true",
                      help="finish a previous run in OUT (same settings)")
    mode.add_argument("--overwrite", action="store_true", help="replace a previous run in OUT")
    p.set_defaults(func=_cmd_upscale)


def _cmd_upscale(a: argparse.Namespace) -> int:
    """0: every image upscaled; 1: some failed (the rest are written); 2: the run failed."""
    from vesselflow.batch.inputs import BatchError
    from vesselflow.sr.upscale import upscale

    try:
        record = upscale(a.input, a.out, model=a.model, temperature=a.temperature,
                         samples=a.samples, seed=a.seed, device=a.device, resume=a.resume,
                         overwrite=a.overwrite)
    except BatchError as e:
        print(f"vesselflow sr upscale: error: {e}", file=sys.stderr)
        return 2
    return 1 if record["counts"]["failed"] else 0
