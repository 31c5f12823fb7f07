"""Activation normalisation (Glow, Kingma & Dhariwal 2018)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from vesselflow.flows.base import Context, FlowLayer
from vesselflow.flows.registry import register_layer


@register_layer
class ActNorm(FlowLayer):
    r"""Per-channel affine map :math:`z = (x - b) \odot e^{-s}`.

    The first forward pass *in training mode* sets ``b`` and ``s`` so the batch has zero mean
    and unit variance per channel. Whether that happened is the persisted buffer
    ``initialized``, so a loaded checkpoint never re-initialises and eval mode never does.
    Once the buffer has been seen true, the plain attribute ``_known_initialized`` answers
    instead: reading the buffer is a tensor-to-bool sync that ``torch.compile`` cannot trace
    (a graph break in every flow step).

    Shapes: x, z (N, C, H, W); ladj (N,) = -H * W * sum(s).
    """

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))
        self.eps = eps
        self._known_initialized = False

    def _load_from_state_dict(self, *args: Any, **kwargs: Any) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._known_initialized = False  # the loaded buffer decides again on the next forward

    @torch.no_grad()
    def _init_from(self, x: Tensor) -> None:
        mean = x.mean(dim=(0, 2, 3), keepdim=True)
        std = x.std(dim=(0, 2, 3), keepdim=True, unbiased=False)
        self.bias.copy_(mean)
        self.log_scale.copy_(torch.log(std + self.eps))
        self.initialized.fill_(True)
        self._known_initialized = True

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        if self.training and not self._known_initialized:
            if bool(self.initialized):
                self._known_initialized = True
            else:
                self._init_from(x)
        z = (x - self.bias) * torch.exp(-self.log_scale)
        ladj = -self.log_scale.sum() * (x.shape[2] * x.shape[3])
        return z, ladj.expand(x.shape[0])

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        x = z * torch.exp(self.log_scale) + self.bias
        ladj = self.log_scale.sum() * (z.shape[2] * z.shape[3])
        return x, ladj.expand(z.shape[0])
