"""Squeeze: trade spatial resolution for channels (RealNVP's space-to-depth)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from vesselflow.flows.base import Context, FlowLayer
from vesselflow.flows.registry import register_layer


@register_layer
class Squeeze(FlowLayer):
    """(N, C, H, W) -> (N, 4C, H/2, W/2) by 2x2 blocks; volume preserving (ladj = 0).

    H and W must be even; the error says so rather than silently cropping.
    """

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        h, w = x.shape[-2:]
        if h % 2 or w % 2:
            raise ValueError(f"Squeeze needs even height and width, got {h}x{w}")
        return F.pixel_unshuffle(x, 2), x.new_zeros(x.shape[0])

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        return F.pixel_shuffle(z, 2), z.new_zeros(z.shape[0])
