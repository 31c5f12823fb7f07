"""Conditional coupling layers (RealNVP / Glow with a context, as in Winkler et al. 2019)."""

from __future__ import annotations

import torch
from torch import Tensor

from vesselflow.flows.base import Context, FlowLayer, sum_except_batch
from vesselflow.flows.nets import ConditionalConvNet
from vesselflow.flows.registry import register_layer


def _split(x: Tensor) -> tuple[Tensor, Tensor]:
    half = x.shape[1] // 2
    return x[:, :half], x[:, half:]


def _as_tensor(context: Context) -> Tensor | None:
    if context is None or isinstance(context, Tensor):
        return context
    raise TypeError("a coupling layer takes one context tensor for its scale")


@register_layer
class ConditionalAffineCoupling(FlowLayer):
    r"""Affine coupling :math:`z_b = x_b \odot e^{s(x_a, c)} + t(x_a, c)`, :math:`z_a = x_a`.

    The passive half ``x_a`` (first ``C // 2`` channels) is concatenated with the context
    ``c`` before the network. The log-scale is soft-clamped, :math:`s = \kappa \tanh(\hat s /
    \kappa)`, which keeps every scale in :math:`[e^{-\kappa}, e^{\kappa}]` and training finite.

    Shapes: x, z (N, C, H, W), C >= 2; c (B, C_c, H, W); ladj (N,) = sum(s).
    """

    def __init__(self, channels: int, context_channels: int = 0, hidden: int = 64,
                 clamp: float = 2.0) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError("coupling needs at least 2 channels (squeeze first)")
        self.n_active = channels - channels // 2
        self.net = ConditionalConvNet(channels // 2, context_channels, hidden, 2 * self.n_active)
        self.clamp = clamp

    def _params(self, xa: Tensor, context: Context) -> tuple[Tensor, Tensor]:
        out = self.net(xa, _as_tensor(context))
        shift, raw = out[:, : self.n_active], out[:, self.n_active :]
        return shift, self.clamp * torch.tanh(raw / self.clamp)

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        xa, xb = _split(x)
        shift, s = self._params(xa, context)
        return torch.cat([xa, xb * torch.exp(s) + shift], dim=1), sum_except_batch(s)

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        za, zb = _split(z)
        shift, s = self._params(za, context)
        return torch.cat([za, (zb - shift) * torch.exp(-s)], dim=1), -sum_except_batch(s)


@register_layer
class ConditionalAdditiveCoupling(FlowLayer):
    r"""Additive (volume-preserving) coupling :math:`z_b = x_b + t(x_a, c)`, ladj = 0.

    Used by the vessel flow (paper Sec. 5.2): with no scale there is nothing to blow up.

    Shapes: x, z (N, C, H, W), C >= 2; c (B, C_c, H, W); ladj (N,) zeros.
    """

    def __init__(self, channels: int, context_channels: int = 0, hidden: int = 64) -> None:
        super().__init__()
        if channels < 2:
            raise ValueError("coupling needs at least 2 channels (squeeze first)")
        self.net = ConditionalConvNet(channels // 2, context_channels, hidden,
                                      channels - channels // 2)

    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        xa, xb = _split(x)
        return torch.cat([xa, xb + self.net(xa, _as_tensor(context))], dim=1), x.new_zeros(
            x.shape[0])

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        za, zb = _split(z)
        return torch.cat([za, zb - self.net(za, _as_tensor(context))], dim=1), z.new_zeros(
            z.shape[0])
