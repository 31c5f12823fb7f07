"""``vesselflow sr train|evaluate|upscale``: 2x super-resolution from the command line.

Heavy imports happen inside the commands so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sr", help="2x super-resolution: train, evaluate, upscale",
                       description="Super-resolution with the same conditional flow core: "
                       "the SR CNF and the factored logistic-mixture baseline.")
    srsub = p.add_subparsers(dest="sr_command", required=True)
    _add_train(srsub)
    from .evaluate import add_parser as add_evaluate
    from .upscale import add_parser as add_upscale

    add_evaluate(srsub)
    add_upscale(srsub)


def _add_train(sub: argparse._SubParsersAction) -> None:
    from ..cli import add_loop_arguments

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

    from ..cli import loop_options
    from ..training.trainer import NonFiniteLossError
    from .training import SRTrainOptions, train_sr

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
