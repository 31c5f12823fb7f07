"""Opt-in ``torch.compile`` of the training forward (``--compile``), with an eager fallback.

The first optimisation step always runs eagerly: actnorm layers initialise from it (a
data-dependent branch that a compiled graph would have to break on). Then
:meth:`CompiledForward.enable` compiles the model and runs one *trial* forward + backward on
that batch, so any compiler failure (no C++ compiler, unsupported platform, an inductor bug)
surfaces there, is reported, and training continues eagerly. The trial leaves no trace: its
gradients are dropped and the RNG state and buffers (BatchNorm statistics) are restored, so a
compiled run draws the same random numbers as an eager one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

Batch = dict[str, torch.Tensor]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"


class CompiledForward:
    """Calls ``model(batch)`` eagerly, or compiled once :meth:`enable` succeeded.

    Args:
        model: The training module (``forward(batch) -> (loss, metrics)``), possibly DDP.
        say: Where messages go (``print`` on rank 0).
    """

    def __init__(self, model: nn.Module, say: Callable[..., None] = print) -> None:
        self.model = model
        self.say = say
        self._compiled: Callable[[Batch], Any] | None = None

    @property
    def active(self) -> bool:
        """True when calls go through the compiled model."""
        return self._compiled is not None

    def __call__(self, batch: Batch) -> Any:
        fn = self._compiled if self._compiled is not None else self.model
        return fn(batch)

    def enable(self, batch: Batch) -> bool:
        """Compile and trial-run on ``batch``; on any failure say why and stay eager."""
        if not hasattr(torch, "compile"):
            self.say("--compile: torch.compile is not available in this PyTorch; "
                     "training without it")
            return False
        t0 = time.time()
        self.say("--compile: compiling the training step (a few minutes on a small CPU) ...",
                 flush=True)
        rng = torch.get_rng_state()
        buffers = {k: v.detach().clone() for k, v in self.model.named_buffers()}
        try:
            compiled = torch.compile(self.model)
            loss, _ = compiled(batch)
            loss.backward()
        except Exception as exc:  # any compiler failure: keep training, eagerly
            self.say(f"--compile: torch.compile failed ({_first_line(exc)}); "
                     "training without it")
            return False
        finally:
            self.model.zero_grad(set_to_none=True)
            torch.set_rng_state(rng)
            with torch.no_grad():
                for k, v in self.model.named_buffers():
                    v.copy_(buffers[k])
        self._compiled = compiled
        self.say(f"--compile: compiled in {time.time() - t0:.0f} s", flush=True)
        return True
