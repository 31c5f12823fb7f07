"""The options every training command shares (``vesselflow train``, ``vesselflow sr train``)."""

from __future__ import annotations

import argparse

LOOP_ARGS = ("patch_size", "batch_size", "steps", "minutes", "lr", "warmup", "seed", "device",
             "resume", "val_every", "ckpt_every", "log_every", "compile")


def add_loop_arguments(p: argparse.ArgumentParser, *, patch_size: int, batch_size: int,
                       lr: float, val_every: int, ckpt_every: int, log_every: int) -> None:
    """The options every training command shares (the fields of ``LoopOptions``)."""
    p.add_argument("--patch-size", type=int, default=patch_size)
    p.add_argument("--batch-size", type=int, default=batch_size, help="per process")
    p.add_argument("--steps", type=int, default=20000, help="maximum optimiser steps")
    p.add_argument("--minutes", type=float, default=None, help="wall-time budget")
    p.add_argument("--lr", type=float, default=lr)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (GPU if any), cpu, cuda or mps")
    p.add_argument("--resume", action="store_true", help="continue the run in --out")
    p.add_argument("--val-every", type=int, default=val_every)
    p.add_argument("--ckpt-every", type=int, default=ckpt_every)
    p.add_argument("--log-every", type=int, default=log_every)
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the training step after the first step (a few minutes "
                   "to compile; falls back to eager with a message if compiling fails)")


def loop_options(a: argparse.Namespace) -> dict:
    """The parsed shared training options, as keyword arguments of ``LoopOptions``."""
    return {k: getattr(a, k) for k in LOOP_ARGS}
