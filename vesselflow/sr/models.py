r"""x2 super-resolution models: the conditional flow (SRFlow-style) and the factored baseline.

Both model :math:`p(y \mid x)` for an 8-bit HR image y given its LR image x, with the same RRDB
conditioning network, and both report bits per dimension over the D = 3 H W HR sub-pixels.

* :class:`SRFlow` - the shared :class:`~vesselflow.flows.MultiScaleFlow` on dequantized HR
  pixels. With uniform dequantization, :math:`y + u`, :math:`u \sim U[0, 1)^D`,
  Jensen gives the lower bound

  .. math:: \log P(y) \ge E_u[\log p(y + u)] = E_u[\log p_{flow}((y + u) / 256 - 1/2)] - D \log 256

  (the density of :math:`t = (y + u)/256 - 1/2` is :math:`256^D` times that of y + u).
  Variational dequantization (Flow++, Ho et al. 2019) replaces U[0, 1) by a learned
  :math:`q(u \mid y, x)` and tightens it to :math:`E_q[\log p(y + u) - \log q(u \mid y, x)]`.
* :class:`SRFactored` - a per-pixel discretized logistic mixture: every HR sub-pixel is
  independent given the LR image (PixelCNN++ likelihood without the autoregression).

Images enter as integer-valued tensors on the 0..255 grid (uint8 or float): HR (N, 3, H, W),
LR (N, 3, H / s, W / s).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vesselflow.flows import FlowConfig, MultiScaleFlow, bits_per_dim, build_dequantizer
from vesselflow.sr.logistic import (
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_mean,
    discretized_logistic_mixture_mode,
    sample_discretized_logistic_mixture,
)
from vesselflow.sr.rrdb import RRDBNet

_LOG_256 = math.log(256.0)


@dataclass(frozen=True)
class SRConfig:
    """Architecture of the SR models; saved next to every checkpoint.

    Attributes:
        scale: SR factor s (the HR/LR size ratio).
        features, blocks, growth: RRDB trunk width, number of RRDBs, dense growth.
        levels, steps, hidden: flow scales L, steps K per level, coupling/prior width.
        clamp: soft clamp of the flow's affine log-scales.
        dequantization: "uniform" or "variational" (Flow++), SRFlow only.
        deq_steps, deq_hidden: the variational dequantizer's 1-level flow and its context width.
        kind: "cnf" (:class:`SRFlow`) or "factored" (:class:`SRFactored`).
        n_mix: logistic mixture components per channel, SRFactored only.
        residual: SRFlow models the HR image minus the bicubically upsampled LR image. The
            shift depends only on the condition, so its Jacobian is 1 and the likelihood is
            unchanged; it makes the untrained flow's temperature-0 sample the bicubic image,
            so training spends its steps on detail instead of on reproducing colours.
    """

    kind: str = "cnf"
    scale: int = 2
    features: int = 64
    blocks: int = 8
    growth: int = 32
    levels: int = 2
    steps: int = 8
    hidden: int = 64
    clamp: float = 2.0
    dequantization: str = "uniform"
    deq_steps: int = 4
    deq_hidden: int = 32
    n_mix: int = 10
    residual: bool = True

    def __post_init__(self) -> None:
        if self.kind not in ("cnf", "factored"):
            raise ValueError(f"kind must be 'cnf' or 'factored', got {self.kind!r}")
        if self.dequantization not in ("uniform", "variational"):
            raise ValueError(f"dequantization must be 'uniform' or 'variational', got "
                             f"{self.dequantization!r}")
        if self.scale < 1 or self.scale & (self.scale - 1):
            raise ValueError(f"scale must be a power of two, got {self.scale}")
        if 2**self.levels < self.scale:
            # The coarsest flow level (HR / 2^L) must not be finer than LR for the contexts.
            raise ValueError(f"levels={self.levels} too few for scale {self.scale}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SRConfig:
        """Build from a saved dict; unknown keys are an error, not silently dropped."""
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown SRConfig keys: {sorted(unknown)}")
        return cls(**d)


def _as_float_image(img: Tensor) -> Tensor:
    return img.to(torch.get_default_dtype()) if not img.is_floating_point() else img


def _check_pair(hr: Tensor, lr: Tensor, scale: int) -> None:
    if hr.dim() != 4 or lr.dim() != 4:
        raise ValueError(f"expected (N, C, H, W) tensors, got HR {tuple(hr.shape)} and LR "
                         f"{tuple(lr.shape)}")
    if (hr.shape[0] != lr.shape[0] or hr.shape[-2] != lr.shape[-2] * scale
            or hr.shape[-1] != lr.shape[-1] * scale):
        raise ValueError(f"HR {tuple(hr.shape)} is not LR {tuple(lr.shape)} times {scale}")


class _SRBase(nn.Module):
    """Shared conditioning, bpd bookkeeping and the trainer-facing ``loss``."""

    config: SRConfig

    def log_prob(self, hr: Tensor, lr: Tensor) -> Tensor:
        raise NotImplementedError

    def bpd(self, hr: Tensor, lr: Tensor) -> Tensor:
        """Bits per HR sub-pixel, (N,): ``-log P(hr | lr) / (D ln 2)`` (a bound for SRFlow)."""
        return bits_per_dim(self.log_prob(hr, lr), hr[0].numel())

    def loss(self, hr: Tensor, lr: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Mean bits/dim over the batch and a dict of metrics (floats) for logging."""
        bpd = self.bpd(hr, lr).mean()
        return bpd, {"bpd": float(bpd.detach())}

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Training objective of a batch ``{"hr", "lr"}`` (forward is the loss, for DDP)."""
        return self.loss(batch["hr"], batch["lr"])

    def predict_many(self, lr: Tensor, temperatures: Sequence[float],
                     generator: torch.Generator | None = None) -> list[Tensor]:
        raise NotImplementedError

    def predict(self, lr: Tensor, temperature: float = 0.0,
                generator: torch.Generator | None = None) -> Tensor:
        """One SR image per LR image at ``temperature``: (N, 3, s h, s w) uint8 (temperature 0
        is the model's point estimate)."""
        return self.predict_many(lr, [temperature], generator)[0]


class SRFlow(_SRBase):
    """Conditional normalizing flow for x``scale`` SR: RRDB contexts + :class:`MultiScaleFlow`.

    Flow level l runs at HR / 2^(l+1), i.e. LR * s / 2^(l+1); the RRDB returns one context per
    level at exactly those resolutions.

    Attributes:
        rrdb: the conditioning network.
        flow: the shared, unmodified :class:`~vesselflow.flows.MultiScaleFlow`.
        deq_flow, deq_context: the variational dequantizer (None with uniform).
    """

    def __init__(self, config: SRConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SRConfig()
        scales = tuple(config.scale / 2 ** (lv + 1) for lv in range(config.levels))
        self.rrdb = RRDBNet(3, config.features, config.blocks, config.growth, scales)
        self.flow = MultiScaleFlow(FlowConfig(
            channels=3, levels=config.levels, steps=config.steps, hidden=config.hidden,
            context_channels=self.rrdb.context_channels, coupling="affine",
            clamp=config.clamp))
        self.deq_flow: MultiScaleFlow | None = None
        self.deq_context: nn.Module | None = None
        if config.dequantization == "variational":
            # Context at HR / 2 for the dequantizer's single level: the RRDB's finest context
            # (already at HR / 2) plus the HR image space-to-depth, mixed by two convs.
            c_in = self.rrdb.context_channels[0] + 12
            self.deq_context = nn.Sequential(
                nn.Conv2d(c_in, config.deq_hidden, 3, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(config.deq_hidden, config.deq_hidden, 3, padding=1),
                nn.LeakyReLU(0.2))
            self.deq_flow = build_dequantizer(3, config.deq_steps, config.deq_hidden,
                                              config.deq_hidden, clamp=config.clamp)

    # -- conditioning ---------------------------------------------------------------------
    def contexts(self, lr: Tensor) -> list[Tensor]:
        """LR on the 0..255 grid (N, 3, h, w) -> one context per flow level."""
        return self.rrdb(_as_float_image(lr) / 255.0)

    # -- dequantization -------------------------------------------------------------------
    def dequantize(self, hr: Tensor, contexts: list[Tensor],
                   generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
        """Draw u in (0, 1)^D and its log q(u | hr, lr), (N, 3, H, W) and (N,).

        Uniform: u ~ U[0, 1), log q = 0. Variational: eps ~ q_flow(eps | c) by
        reparameterisation and u = sigmoid(eps), so
        ``log q(u) = log q_flow(eps) - sum log sigmoid'(eps)``.
        """
        hr = _as_float_image(hr)
        if self.deq_flow is None:
            u = torch.rand(hr.shape, generator=generator, device=hr.device, dtype=hr.dtype)
            return u, hr.new_zeros(hr.shape[0])
        assert self.deq_context is not None
        c = self.deq_context(torch.cat(
            [contexts[0], F.pixel_unshuffle(hr / 127.5 - 1.0, 2)], dim=1))
        eps, log_q_eps = self._sample_deq(c, generator)
        u = torch.sigmoid(eps)
        return u, log_q_eps - sigmoid_ladj(eps)

    def _sample_deq(self, c: Tensor, generator: torch.Generator | None
                    ) -> tuple[Tensor, Tensor]:
        """Reparameterised eps ~ q_flow(. | c) with its log-density, in one inverse pass.

        ``MultiScaleFlow.sample`` returns no density, so the top latent is drawn from the
        (public) top prior and mapped through ``inverse``; a 1-level flow's assembled latent
        is the pixel shuffle of its top latent. Costs one pass instead of sample + log_prob.
        """
        assert self.deq_flow is not None
        n, _, h, w = c.shape
        shape = (n, self.deq_flow.top_channels, h, w)
        z_top = self.deq_flow.top_prior.sample(shape, c, 1.0, generator)
        log_prior = self.deq_flow.top_prior.log_prob(z_top, c)
        eps, ladj_inv = self.deq_flow.inverse(F.pixel_shuffle(z_top, 2), [c])
        return eps, log_prior - ladj_inv

    def _base(self, lr: Tensor, size: tuple[int, int] | torch.Size) -> Tensor | float:
        """The condition-only shift of the flow's input: bicubic(LR) on [0, 1], or 1/2."""
        if not self.config.residual:
            return 0.5
        return F.interpolate(_as_float_image(lr) / 255.0, size=tuple(size), mode="bicubic",
                             align_corners=False)

    # -- likelihood -----------------------------------------------------------------------
    def log_prob_parts(self, hr: Tensor, lr: Tensor) -> dict[str, Tensor]:
        """Per-image terms (each (N,), nats): flow log-density, dequantizer entropy term."""
        _check_pair(hr, lr, self.config.scale)
        self.flow.check_size(*hr.shape[-2:])
        contexts = self.contexts(lr)
        u, log_q = self.dequantize(hr, contexts)
        x = (_as_float_image(hr) + u) / 256.0 - self._base(lr, hr.shape[-2:])
        log_p = self.flow.log_prob(x, contexts)
        d = hr[0].numel()
        return {"log_p": log_p - d * _LOG_256, "log_q": log_q}

    def log_prob(self, hr: Tensor, lr: Tensor) -> Tensor:
        """Single-sample estimate of the dequantization lower bound on log P(hr | lr), (N,).

        ``log p_flow((hr + u) / 256 - base(lr)) - D log 256 - log q(u)`` in nats, D = 3 H W,
        with base the bicubic upsampling of LR (``residual``) or 1/2.
        """
        parts = self.log_prob_parts(hr, lr)
        return parts["log_p"] - parts["log_q"]

    def loss(self, hr: Tensor, lr: Tensor) -> tuple[Tensor, dict[str, float]]:
        parts = self.log_prob_parts(hr, lr)
        d = hr[0].numel()
        bpd = bits_per_dim((parts["log_p"] - parts["log_q"]).mean(), d)
        # bpd = bpd_flow + bpd_deq. bpd_deq = E[log q] / (D ln 2) = -entropy(q) >= 0, since the
        # uniform q (bpd_deq = 0) has the largest entropy on the unit cube; a learned q pays it
        # back through a larger flow term.
        return bpd, {"bpd": float(bpd.detach()),
                     "bpd_flow": float(bits_per_dim(parts["log_p"].detach().mean(), d)),
                     "bpd_deq": float(-bits_per_dim(parts["log_q"].detach().mean(), d)) + 0.0}

    # -- sampling -------------------------------------------------------------------------
    def _padded(self, lr: Tensor) -> tuple[Tensor, tuple[int, int]]:
        """LR as float, edge-padded so HR is divisible by 2^L, and its original (h, w)."""
        m = max(1, 2**self.config.levels // self.config.scale)
        h, w = lr.shape[-2:]
        lr_f = _as_float_image(lr)
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            lr_f = F.pad(lr_f, (0, pw, 0, ph), mode="replicate")
        return lr_f, (h, w)

    def _to_pixels(self, x: Tensor, lr_f: Tensor, size: tuple[int, int]) -> Tensor:
        """Flow samples (N, n, 3, H, W) -> uint8 images cropped to ``size`` times the scale."""
        s = self.config.scale
        base = self._base(lr_f, x.shape[-2:])
        x = x + (base.unsqueeze(1) if isinstance(base, Tensor) else base)
        x = x[..., : size[0] * s, : size[1] * s]
        return torch.floor(x * 256.0).clamp(0, 255).to(torch.uint8)

    @torch.no_grad()
    def sample(self, lr: Tensor, n: int = 1, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """Draw n SR images per LR image: (N, n, 3, s h, s w) uint8.

        LR sizes the flow cannot take (HR not divisible by 2^L) are padded by edge replication
        and the result cropped back. Samples map back with ``floor((x + base) * 256)``.
        """
        lr_f, size = self._padded(lr)
        x = self.flow.sample(self.contexts(lr_f), n, temperature, generator=generator)
        return self._to_pixels(x, lr_f, size)

    @torch.no_grad()
    def predict_many(self, lr: Tensor, temperatures: Sequence[float],
                     generator: torch.Generator | None = None) -> list[Tensor]:
        """One SR image per LR image at each temperature, the RRDB run once: a list of
        (N, 3, s h, s w) uint8, the same draws as calling :meth:`predict` per temperature."""
        lr_f, size = self._padded(lr)
        contexts = self.contexts(lr_f)
        return [self._to_pixels(self.flow.sample(contexts, 1, t, generator=generator), lr_f,
                                size)[:, 0] for t in temperatures]


def sigmoid_ladj(eps: Tensor) -> Tensor:
    """sum log |d sigmoid(eps) / d eps| per sample: log s(e) + log s(-e), (N, ...) -> (N,)."""
    return (F.logsigmoid(eps) + F.logsigmoid(-eps)).flatten(1).sum(dim=1)


class SRFactored(_SRBase):
    """Factored baseline: per-pixel discretized logistic mixtures from RRDB features.

    The RRDB features are brought to HR resolution by nearest upsampling + conv per octave
    (ESRGAN's upsampler), and a head predicts, for every HR sub-pixel, K weights, means and
    log-scales. The means are residual to the bicubically upsampled LR image, so the untrained
    model already centres every pixel on the bicubic estimate.
    """

    def __init__(self, config: SRConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or SRConfig()
        self.rrdb = RRDBNet(3, config.features, config.blocks, config.growth,
                            (float(config.scale),))
        k = config.n_mix
        self.head = nn.Sequential(
            nn.Conv2d(self.rrdb.context_channels[0], config.features, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(config.features, 3 * 3 * k, 3, padding=1))
        last = self.head[-1]
        assert isinstance(last, nn.Conv2d)
        # Start as: equal weights, means spread slightly around the bicubic value so the
        # components are not identical (symmetry breaking), scales ~ 8 grey levels.
        nn.init.normal_(last.weight, std=1e-3)
        with torch.no_grad():
            bias = torch.zeros(3, 3, k)
            bias[:, 1] = torch.linspace(-0.05, 0.05, k)
            bias[:, 2] = math.log(8 / 127.5)
            last.bias.copy_(bias.flatten())

    def params(self, lr: Tensor) -> Tensor:
        """LR on the 0..255 grid (N, 3, h, w) -> mixture params (N, 9 K, s h, s w)."""
        lr_f = _as_float_image(lr) / 255.0
        raw = self.head(self.rrdb(lr_f)[0])
        n, _, h, w = raw.shape
        k = self.config.n_mix
        up = F.interpolate(lr_f, size=(h, w), mode="bicubic", align_corners=False) * 2 - 1
        p = raw.view(n, 3, 3, k, h, w)
        means = p[:, :, 1] + up.unsqueeze(2)
        return torch.stack([p[:, :, 0], means, p[:, :, 2]], dim=2).view(n, -1, h, w)

    def log_prob(self, hr: Tensor, lr: Tensor) -> Tensor:
        """Exact log P(hr | lr) in nats, (N,)."""
        _check_pair(hr, lr, self.config.scale)
        return discretized_logistic_mixture_log_prob(hr, self.params(lr), self.config.n_mix)

    @torch.no_grad()
    def sample(self, lr: Tensor, n: int = 1, temperature: float = 1.0,
               generator: torch.Generator | None = None) -> Tensor:
        """n independent SR images per LR image: (N, n, 3, s h, s w) uint8."""
        p = self.params(lr)
        draws = [sample_discretized_logistic_mixture(p, self.config.n_mix, temperature,
                                                     generator) for _ in range(n)]
        return torch.stack(draws, dim=1).to(torch.uint8)

    @torch.no_grad()
    def predict_many(self, lr: Tensor, temperatures: Sequence[float],
                     generator: torch.Generator | None = None) -> list[Tensor]:
        """One SR image per LR image and temperature, the RRDB run once: the rounded
        mixture mean at temperature 0 (the factored model's best point estimate), else a
        sample. A list of (N, 3, s h, s w) uint8."""
        p = self.params(lr)
        k = self.config.n_mix
        return [discretized_logistic_mixture_mean(p, k).round().clamp(0, 255).to(torch.uint8)
                if t == 0 else sample_discretized_logistic_mixture(p, k, t, generator).to(
                    torch.uint8) for t in temperatures]

    @torch.no_grad()
    def mode(self, lr: Tensor) -> Tensor:
        """Per-sub-pixel most probable value: (N, 3, s h, s w) uint8."""
        return discretized_logistic_mixture_mode(self.params(lr), self.config.n_mix).to(
            torch.uint8)

    @torch.no_grad()
    def mean(self, lr: Tensor) -> Tensor:
        """Per-sub-pixel expected value (MSE-optimal): (N, 3, s h, s w) float on 0..255."""
        return discretized_logistic_mixture_mean(self.params(lr), self.config.n_mix)


SRModel = SRFlow | SRFactored


def build_sr_model(config: SRConfig) -> SRModel:
    """The model named by ``config.kind``."""
    return SRFlow(config) if config.kind == "cnf" else SRFactored(config)
