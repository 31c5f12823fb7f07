"""Invertible 1x1 convolution with an LU-parameterised weight (Glow, Sec. 3.2)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vesselflow.flows.base import Context, FlowLayer
from vesselflow.flows.registry import register_layer


@register_layer
class InvertibleConv1x1(FlowLayer):
    r"""Channel mixing :math:`z = W x` at every pixel, with :math:`W = P L (U + \mathrm{diag}(
    \sigma e^{s}))`.

    P is a fixed permutation, L unit lower-triangular, U strictly upper-triangular, sigma the
    fixed signs and s learned log-magnitudes, so ``log|det W| = sum(s)`` is exact and cheap.
    The inverse weight is computed in float64: inverting W in float32 is a known source of
    forward/inverse mismatch in Glow implementations.

    Shapes: x, z (N, C, H, W); ladj (N,) = H * W * sum(s).
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        q, _ = torch.linalg.qr(torch.randn(channels, channels, dtype=torch.float64))
        p, l, u = torch.linalg.lu(q)
        s = torch.diagonal(u)
        dt = torch.get_default_dtype()
        self.register_buffer("perm", p.to(dt))
        self.register_buffer("sign_s", torch.sign(s).to(dt))
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels, dtype=dt), -1))
        self.lower = nn.Parameter(l.to(dt) * self.lower_mask)
        self.upper = nn.Parameter(torch.triu(u, 1).to(dt))
        self.log_s = nn.Parameter(torch.log(torch.abs(s)).to(dt))

    def weight(self) -> Tensor:
        """The (C, C) matrix W."""
        eye = torch.eye(self.lower.shape[0], dtype=self.lower.dtype, device=self.lower.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * torch.exp(self.log_s))
        return self.perm @ lower @ upper

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        c = x.shape[1]
        z = F.conv2d(x, self.weight().view(c, c, 1, 1))
        ladj = self.log_s.sum() * (x.shape[2] * x.shape[3])
        return z, ladj.expand(x.shape[0])

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        c = z.shape[1]
        w = self.weight()
        # Apple's MPS has no float64: invert there on the CPU (a C x C matrix, cheap).
        w64 = w.cpu().double() if w.device.type == "mps" else w.double()
        w_inv = torch.linalg.inv(w64).to(device=z.device, dtype=z.dtype)
        x = F.conv2d(z, w_inv.view(c, c, 1, 1))
        ladj = -self.log_s.sum() * (z.shape[2] * z.shape[3])
        return x, ladj.expand(z.shape[0])
