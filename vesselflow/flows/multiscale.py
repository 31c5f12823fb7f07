"""Multi-scale conditional flow (RealNVP/Glow layout with conditional priors, Winkler et al.).

Level l (l = 0..L-1) runs at 1/2^(l+1) of the input resolution: squeeze, then K steps of
[actnorm, invertible 1x1 conv, conditional coupling]; after every level but the last, half of
the channels are factored out and modelled by a conditional split prior; the last level's
output is modelled by a conditional top prior. Level l sees ``context[l]``, the conditioning
features at its own resolution.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vesselflow.flows.actnorm import ActNorm
from vesselflow.flows.base import Context, FlowLayer, FlowSequence, cached_context
from vesselflow.flows.conv1x1 import InvertibleConv1x1
from vesselflow.flows.coupling import ConditionalAdditiveCoupling, ConditionalAffineCoupling
from vesselflow.flows.priors import ConditionalGaussianPrior, ConditionalSplitPrior
from vesselflow.flows.registry import register_layer
from vesselflow.flows.squeeze import Squeeze


@register_layer
class FlowStep(FlowSequence):
    """One Glow step: actnorm -> invertible 1x1 conv -> conditional coupling.

    Normalisation inside the flow is actnorm, which is an exact bijection. The paper's vessel
    model uses instance normalisation, which is not invertible on the flow's activations (it
    discards each sample's own mean and scale), so vesselflow puts InstanceNorm in the
    conditioning network instead and keeps the flow exact.
    """

    def __init__(self, channels: int, context_channels: int = 0, hidden: int = 64,
                 coupling: str = "affine", clamp: float = 2.0, actnorm: bool = True) -> None:
        layers: list[FlowLayer] = [ActNorm(channels)] if actnorm else []
        layers.append(InvertibleConv1x1(channels))
        if coupling == "affine":
            layers.append(ConditionalAffineCoupling(channels, context_channels, hidden, clamp))
        elif coupling == "additive":
            layers.append(ConditionalAdditiveCoupling(channels, context_channels, hidden))
        else:
            raise ValueError(f"coupling must be 'affine' or 'additive', got {coupling!r}")
        super().__init__(layers)


@dataclass(frozen=True)
class FlowConfig:
    """Architecture of a :class:`MultiScaleFlow`; saved next to every checkpoint.

    Attributes:
        channels: target channels (1 for vessel maps, 3 for RGB).
        levels: L, number of scales; inputs must be divisible by 2^L.
        steps: K, flow steps per level.
        hidden: width of the coupling / prior networks, one int or one per level.
        context_channels: channels of the conditioning features at each level (0 = none).
        coupling: "affine" (soft-clamped scale) or "additive" (volume preserving).
        clamp: soft-clamp bound of the affine log-scale.
        actnorm: whether each step starts with actnorm.
    """

    channels: int = 1
    levels: int = 2
    steps: int = 8
    hidden: int | tuple[int, ...] = 64
    context_channels: int | tuple[int, ...] = 0
    coupling: str = "affine"
    clamp: float = 2.0
    actnorm: bool = True

    def per_level(self, value: int | Sequence[int], name: str) -> tuple[int, ...]:
        if isinstance(value, int):
            return (value,) * self.levels
        value = tuple(value)
        if len(value) != self.levels:
            raise ValueError(f"{name} has {len(value)} entries for {self.levels} levels")
        return value


@register_layer
class MultiScaleFlow(FlowLayer):
    """Conditional multi-scale flow with exact ``log_prob`` and temperature ``sample``.

    As a layer, ``forward(x, context)`` maps x (N, C, H, W) to a latent z of the same shape (the
    factored-out latents re-assembled by inverse squeezes) and the log-det of that bijection;
    the priors are separate and enter only through :meth:`log_prob` and :meth:`sample`.

    ``context`` is a sequence with one tensor (B, C_l, H / 2^(l+1), W / 2^(l+1)) per level, B
    dividing N; levels with ``context_channels == 0`` may get None.
    """

    def __init__(self, config: FlowConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.per_level(config.hidden, "hidden")
        ctx = config.per_level(config.context_channels, "context_channels")
        self.levels = nn.ModuleList()
        self.split_priors = nn.ModuleList()
        c = config.channels
        for level in range(config.levels):
            c *= 4
            steps = [FlowStep(c, ctx[level], hidden[level], config.coupling, config.clamp,
                              config.actnorm) for _ in range(config.steps)]
            self.levels.append(FlowSequence([Squeeze(), *steps]))
            if level < config.levels - 1:
                out = c // 2
                self.split_priors.append(
                    ConditionalSplitPrior(c - out, out, ctx[level], hidden[level]))
                c -= out
        self.top_prior = ConditionalGaussianPrior(c, ctx[-1], hidden[-1])
        self.top_channels = c

    # -- helpers ----------------------------------------------------------------------------
    def _contexts(self, context: Context) -> list[Tensor | None]:
        if context is None or isinstance(context, Tensor):
            if self.config.levels == 1:
                return [context]
            if context is None:
                return [None] * self.config.levels
            raise TypeError("MultiScaleFlow needs one context tensor per level")
        if len(context) != self.config.levels:
            raise ValueError(f"got {len(context)} contexts for {self.config.levels} levels")
        return list(context)

    def check_size(self, h: int, w: int) -> None:
        """Raise a clear error unless (h, w) is divisible by 2^L."""
        m = 2 ** self.config.levels
        if h % m or w % m:
            raise ValueError(f"flow input {h}x{w} is not divisible by 2^L = {m}; pad it first "
                             f"(vesselflow.vessel.data pads to the next multiple and crops back)")

    def _encode(self, x: Tensor, context: Context, with_prior: bool
                ) -> tuple[list[Tensor], Tensor, Tensor]:
        """x -> (latents per level, ladj, log prior); log prior is zeros if not asked."""
        self.check_size(*x.shape[-2:])
        cs = self._contexts(context)
        ladj = x.new_zeros(x.shape[0])
        log_prior = x.new_zeros(x.shape[0])
        latents: list[Tensor] = []
        h = x
        for level, flow in enumerate(self.levels):
            h, l = flow(h, cs[level])
            ladj = ladj + l
            if level < len(self.split_priors):
                out = self.split_priors[level].out_channels
                h, z1 = h[:, :-out], h[:, -out:]
                if with_prior:
                    log_prior = log_prior + self.split_priors[level].log_prob(z1, h, cs[level])
                latents.append(z1)
        latents.append(h)
        if with_prior:
            log_prior = log_prior + self.top_prior.log_prob(h, cs[-1])
        return latents, ladj, log_prior

    def _decode(self, latents: list[Tensor | None], context: Context, temperature: float = 1.0,
                generator: torch.Generator | None = None, log_prior: Tensor | None = None
                ) -> tuple[Tensor, Tensor]:
        """Latents (None entries are sampled from the priors) -> (x, ladj of the inverse).

        If ``log_prior`` (N,) is given, the split priors' log-densities of the latents they
        sample are added to it in place.
        """
        cs = self._contexts(context)
        h = latents[-1]
        if h is None:
            raise ValueError("the top latent must be given; sample() draws it")
        ladj = h.new_zeros(h.shape[0])
        for level in reversed(range(len(self.levels))):
            if level < len(self.split_priors):
                z1 = latents[level]
                if z1 is None:
                    z1 = self.split_priors[level].sample(h, cs[level], temperature, generator)
                    if log_prior is not None:
                        log_prior += self.split_priors[level].log_prob(z1, h, cs[level])
                h = torch.cat([h, z1], dim=1)
            h, l = self.levels[level].inverse(h, cs[level])
            ladj = ladj + l
        return h, ladj

    def _assemble(self, latents: list[Tensor]) -> Tensor:
        h = latents[-1]
        for level in reversed(range(len(self.levels))):
            if level < len(self.split_priors):
                h = torch.cat([h, latents[level]], dim=1)
            h = F.pixel_shuffle(h, 2)
        return h

    def _disassemble(self, z: Tensor) -> list[Tensor]:
        latents = []
        h = z
        for level in range(len(self.levels)):
            h = F.pixel_unshuffle(h, 2)
            if level < len(self.split_priors):
                out = self.split_priors[level].out_channels
                h, z1 = h[:, :-out], h[:, -out:]
                latents.append(z1)
        latents.append(h)
        return latents

    # -- layer contract -------------------------------------------------------------------
    def forward(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        latents, ladj, _ = self._encode(x, context, with_prior=False)
        return self._assemble(latents), ladj

    def inverse(self, z: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        self.check_size(*z.shape[-2:])
        return self._decode(list(self._disassemble(z)), context)

    # -- model API ------------------------------------------------------------------------
    def log_prob(self, x: Tensor, context: Context = None) -> Tensor:
        """Exact log p(x | c) in nats, shape (N,): priors' log-likelihood + log-det."""
        _, ladj, log_prior = self._encode(x, context, with_prior=True)
        return log_prior + ladj

    def log_prob_parts(self, x: Tensor, context: Context = None) -> tuple[Tensor, Tensor]:
        """(log prior, log-det), each (N,), kept apart for diagnostics."""
        _, ladj, log_prior = self._encode(x, context, with_prior=True)
        return log_prior, ladj

    def sample(self, context: Context, n: int = 1, temperature: float = 1.0,
               size: tuple[int, int] | None = None,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw ``n`` samples per context: returns (B, n, C, H, W).

        The spatial size comes from the last level's context (H = 2^L * its height) unless the
        flow is unconditional, where ``size=(H, W)`` is required. Temperature scales every
        prior's standard deviation; 0 gives the deterministic mode-like sample.
        """
        x, _ = self._sample(context, n, temperature, size, generator, with_log_prob=False)
        return x

    def rsample_with_log_prob(self, context: Context, n: int = 1,
                              size: tuple[int, int] | None = None,
                              generator: torch.Generator | None = None
                              ) -> tuple[Tensor, Tensor]:
        """Reparameterised samples (B, n, C, H, W) and their exact log-density (B, n).

        Gradients flow through the samples, as a variational dequantizer needs (Flow++).
        """
        return self._sample(context, n, 1.0, size, generator, with_log_prob=True)

    def _sample(self, context: Context, n: int, temperature: float,
                size: tuple[int, int] | None, generator: torch.Generator | None,
                with_log_prob: bool) -> tuple[Tensor, Tensor | None]:
        cs = self._contexts(context)
        top_c = cs[-1]
        m = 2 ** self.config.levels
        if top_c is not None:
            b, hh, ww = top_c.shape[0], top_c.shape[-2], top_c.shape[-1]
            if size is not None and tuple(size) != (hh * m, ww * m):
                raise ValueError(f"size {size} does not match the context ({hh * m}x{ww * m})")
        elif size is not None:
            self.check_size(*size)
            b, hh, ww = 1, size[0] // m, size[1] // m
        else:
            raise ValueError("an unconditional flow needs size=(H, W) to sample")
        shape = (b * n, self.top_channels, hh, ww)
        # The cache only serves no-grad sampling; with gradients on (the dequantizer in
        # training) it is skipped, which also keeps the step free of graph breaks.
        with cached_context() if not torch.is_grad_enabled() else contextlib.nullcontext():
            z_top = self.top_prior.sample(shape, top_c, temperature, generator)
            log_prior = self.top_prior.log_prob(z_top, top_c) if with_log_prob else None
            latents: list[Tensor | None] = [None] * len(self.split_priors) + [z_top]
            x, ladj_inv = self._decode(latents, cs, temperature, generator, log_prior)
        log_prob = None if log_prior is None else (log_prior - ladj_inv).view(b, n)
        return x.reshape(b, n, *x.shape[1:]), log_prob


def bits_per_dim(log_prob: Any, dims: int) -> Any:
    """Convert a log-likelihood in nats over ``dims`` dimensions to bits per dimension.

    The one definition, for every model and report: ``log_prob`` is a tensor (any shape) or a
    float; the result has its type."""
    return -log_prob / (dims * math.log(2.0))
