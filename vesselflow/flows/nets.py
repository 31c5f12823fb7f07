"""Small convolutional networks used inside conditional layers (not invertible themselves)."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from vesselflow.flows.base import add_context_, project_context


class ConditionalConvNet(nn.Module):
    """conv3x3(concat[x, c]) -> ReLU -> conv1x1 -> ReLU -> conv3x3 (zero-initialised).

    The first convolution over the concatenation ``[x, c]`` is computed as
    ``conv_x(x) + conv_c(c)``, which is the same function with the same number of weights:
    splitting it lets one image's context term be computed once and broadcast to all of its
    samples (see :func:`~vesselflow.flows.base.add_context`). The last layer starts at zero so
    every coupling starts as the identity and every prior as N(0, 1).

    Shapes: x (N, C_in, H, W); c (B, C_c, H, W) with N a multiple of B; out (N, C_out, H, W).
    """

    def __init__(self, in_channels: int, context_channels: int, hidden: int, out_channels: int):
        super().__init__()
        if in_channels <= 0 and context_channels <= 0:
            raise ValueError("a conditional network needs an input or a context")
        self.conv_x = nn.Conv2d(in_channels, hidden, 3, padding=1) if in_channels else None
        self.conv_c = (
            nn.Conv2d(context_channels, hidden, 3, padding=1, bias=in_channels == 0)
            if context_channels
            else None
        )
        self.mid = nn.Conv2d(hidden, hidden, 1)
        self.out = nn.Conv2d(hidden, out_channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        self.context_channels = context_channels

    def forward(self, x: Tensor | None, c: Tensor | None) -> Tensor:
        if self.conv_c is not None:
            if c is None:
                raise ValueError(f"this layer is conditional: expected a context with "
                                 f"{self.context_channels} channels, got None")
            if c.shape[1] != self.context_channels:
                raise ValueError(f"context has {c.shape[1]} channels, expected "
                                 f"{self.context_channels}")
            if x is not None and c.shape[-2:] != x.shape[-2:]:
                raise ValueError(f"context is {tuple(c.shape[-2:])} but the flow is at "
                                 f"{tuple(x.shape[-2:])}: pass the features for this scale")
            c_term = project_context(self.conv_c, c)
        if self.conv_x is None:
            h = c_term
        else:
            h = self.conv_x(x)
            if self.conv_c is not None:
                h = add_context_(h, c_term)  # h is a fresh conv output: safe to modify
        h = F.relu(h, inplace=self.conv_x is not None)
        h = F.relu(self.mid(h), inplace=True)
        return self.out(h)
