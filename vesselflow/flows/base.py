"""The one contract every invertible layer follows, plus helpers shared by conditional layers.

Names used throughout ``vesselflow.flows`` (as in zuko):

* ``x`` - the layer's input (data side), shape (N, C, H, W);
* ``z`` - the layer's output (latent side), same number of elements as ``x``;
* ``c`` / ``context`` - conditioning features for this layer's scale, shape (B, C_c, H, W),
  where N is a multiple of B: sample ``i * (N // B) + j`` uses context ``i``. This lets many
  samples share one image's features without copying them;
* ``ladj`` - log-absolute-determinant of the Jacobian, shape (N,).

Every layer implements ``forward(x, context) -> (z, ladj)`` and ``inverse(z, context) -> (x,
ladj)``; the inverse's ``ladj`` is the log-det of the inverse map, i.e. the negative of the
forward's at the corresponding point.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from vesselflow.flows.registry import register_layer

Context = Tensor | Sequence[Tensor] | None


class FlowLayer(nn.Module):
    """Base class of all invertible layers: ``forward`` and ``inverse`` with log-dets (N,)."""

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


@register_layer
class FlowSequence(FlowLayer):
    """Composition of layers that all see the same context; log-dets add up."""

    def __init__(self, layers: Sequence[FlowLayer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        ladj = x.new_zeros(x.shape[0])
        for layer in self.layers:
            x, l = layer(x, context)
            ladj = ladj + l
        return x, ladj

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        ladj = z.new_zeros(z.shape[0])
        for layer in reversed(self.layers):
            z, l = layer.inverse(z, context)
            ladj = ladj + l
        return z, ladj


def add_context(x_term: Tensor, c_term: Tensor) -> Tensor:
    """Add a per-image context term (B, ...) to a per-sample term (N, ...), N = B * r.

    Sample ``i * r + j`` receives context ``i``; with B == 1 this is a plain broadcast and no
    context copy is made, which is what makes drawing many samples per image cheap.
    """
    n, b = x_term.shape[0], c_term.shape[0]
    if n == b or b == 1:
        return x_term + c_term
    if n % b:
        raise ValueError(f"batch of {n} samples is not a multiple of {b} contexts")
    r = n // b
    out = x_term.reshape(b, r, *x_term.shape[1:]) + c_term.unsqueeze(1)
    return out.reshape(n, *x_term.shape[1:])


def add_context_(x_term: Tensor, c_term: Tensor) -> Tensor:
    """In-place :func:`add_context` for a freshly computed ``x_term`` (saves a large copy)."""
    n, b = x_term.shape[0], c_term.shape[0]
    if n == b or b == 1:
        return x_term.add_(c_term)
    return add_context(x_term, c_term)


def sum_except_batch(t: Tensor) -> Tensor:
    """Sum over every dimension but the first: (N, ...) -> (N,)."""
    return t.reshape(t.shape[0], -1).sum(dim=1)


# While sampling many batches for one image, the context branch of every conditional network
# gives the same result each time. Inside ``cached_context()`` (and with autograd off) such
# results are memoised per (module, context tensor); outside it nothing is cached.
_CACHE: contextvars.ContextVar[dict[tuple[int, int], Any] | None] = contextvars.ContextVar(
    "vesselflow_context_cache", default=None
)


@contextlib.contextmanager
def cached_context() -> Iterator[None]:
    """Memoise context projections of conditional layers for the duration of the block.

    Re-entrant: an inner block shares the outer block's cache, so a sampler can hold one cache
    across many ``sample`` calls for the same image.
    """
    if _CACHE.get() is not None:
        yield
        return
    token = _CACHE.set({})
    try:
        yield
    finally:
        _CACHE.reset(token)


def project_context(module: nn.Module, c: Tensor) -> Tensor:
    """``module(c)``, memoised inside :func:`cached_context` when gradients are off."""
    # Grad mode first: training never caches, and skipping the ContextVar keeps the step
    # traceable by torch.compile (ContextVar.get is a graph break).
    if torch.is_grad_enabled():
        return module(c)
    cache = _CACHE.get()
    if cache is None:
        return module(c)
    key = (id(module), id(c))
    hit = cache.get(key)
    if hit is None or hit[0] is not c:
        # Keep ``c`` in the entry so its id cannot be reused by another tensor meanwhile.
        hit = (c, module(c))
        cache[key] = hit
    return hit[1]
