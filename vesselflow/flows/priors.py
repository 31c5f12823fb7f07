"""Conditional Gaussian priors: the top prior p(z | c) and the split prior p(z1 | z0, c).

Priors are densities, not bijections: they expose ``log_prob`` and ``sample`` and never add
their log-likelihood to a log-det (SRFlow/Glow code often does, which hides bugs).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from vesselflow.flows.base import sum_except_batch
from vesselflow.flows.nets import ConditionalConvNet

_LOG_2PI = math.log(2 * math.pi)


def _per_sample(t: Tensor, n: int) -> Tensor:
    """Broadcast per-context parameters (B, ...) to n = B * r samples, sample-major per image."""
    b = t.shape[0]
    if b == n:
        return t
    if n % b:
        raise ValueError(f"{n} samples is not a multiple of {b} contexts")
    return t.expand(n, *t.shape[1:]) if b == 1 else t.repeat_interleave(n // b, dim=0)


def gaussian_log_prob(z: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
    """Diagonal Gaussian log-density summed per sample: (N, ...) -> (N,)."""
    return sum_except_batch(-0.5 * ((z - mean) * torch.exp(-log_std)) ** 2 - log_std
                            - 0.5 * _LOG_2PI)


class _GaussianHead(nn.Module):
    """Maps a network output (N, 2C, H, W) to (mean, soft-clamped log-std)."""

    def __init__(self, log_std_clamp: float) -> None:
        super().__init__()
        self.clamp = log_std_clamp

    def forward(self, out: Tensor) -> tuple[Tensor, Tensor]:
        mean, raw = out.chunk(2, dim=1)
        return mean, self.clamp * torch.tanh(raw / self.clamp)


class ConditionalGaussianPrior(nn.Module):
    r"""Top prior :math:`p(z \mid c) = \mathcal N(\mu(c), \sigma(c)^2)`.

    Without context (``context_channels=0``) the mean and log-std are learned per channel.
    Sampling at temperature :math:`\tau` scales the standard deviation: :math:`z = \mu + \tau
    \sigma \epsilon`, so :math:`\tau = 0` gives the mean.

    Shapes: z (N, C, H, W); c (B, C_c, H, W) with N a multiple of B; log_prob (N,).
    """

    def __init__(self, channels: int, context_channels: int = 0, hidden: int = 64,
                 log_std_clamp: float = 6.0) -> None:
        super().__init__()
        self.channels = channels
        self.net = (ConditionalConvNet(0, context_channels, hidden, 2 * channels)
                    if context_channels else None)
        self.const = nn.Parameter(torch.zeros(1, 2 * channels, 1, 1))
        self.head = _GaussianHead(log_std_clamp)

    def params(self, context: Tensor | None, shape: tuple[int, ...]) -> tuple[Tensor, Tensor]:
        """Mean and log-std broadcast to ``shape`` = (N, C, H, W)."""
        if self.net is None:
            out = self.const.expand(1, -1, *shape[2:])
        else:
            if context is None:
                raise ValueError("this prior is conditional: a context is required")
            out = self.net(None, context) + self.const
        mean, log_std = self.head(out)
        return _per_sample(mean, shape[0]), _per_sample(log_std, shape[0])

    def log_prob(self, z: Tensor, context: Tensor | None = None) -> Tensor:
        return gaussian_log_prob(z, *self.params(context, tuple(z.shape)))

    def sample(self, shape: tuple[int, ...], context: Tensor | None = None,
               temperature: float = 1.0, generator: torch.Generator | None = None) -> Tensor:
        mean, log_std = self.params(context, shape)
        if temperature == 0:
            return mean.clone()
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + temperature * torch.exp(log_std) * eps


class ConditionalSplitPrior(nn.Module):
    r"""Split prior :math:`p(z_1 \mid z_0, c) = \mathcal N(\mu(z_0, c), \sigma(z_0, c)^2)`.

    ``z_0`` is the half that stays in the flow, ``z_1`` the half factored out at this level;
    the context is concatenated to ``z_0`` before the network (learned prior as in SRFlow).

    Shapes: z0 (N, C0, H, W); z1 (N, C1, H, W); c (B, C_c, H, W); log_prob (N,).
    """

    def __init__(self, kept_channels: int, out_channels: int, context_channels: int = 0,
                 hidden: int = 64, log_std_clamp: float = 6.0) -> None:
        super().__init__()
        self.out_channels = out_channels
        self.net = ConditionalConvNet(kept_channels, context_channels, hidden, 2 * out_channels)
        self.head = _GaussianHead(log_std_clamp)

    def params(self, z0: Tensor, context: Tensor | None) -> tuple[Tensor, Tensor]:
        return self.head(self.net(z0, context))

    def log_prob(self, z1: Tensor, z0: Tensor, context: Tensor | None = None) -> Tensor:
        return gaussian_log_prob(z1, *self.params(z0, context))

    def sample(self, z0: Tensor, context: Tensor | None = None, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        mean, log_std = self.params(z0, context)
        if temperature == 0:
            return mean
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + temperature * torch.exp(log_std) * eps
