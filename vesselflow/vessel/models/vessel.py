"""Vessel segmentation models: the conditional flow (CNF) and the factored baseline.

Both map a fundus image x (B, 3, H, W) in [0, 1] and a binary vessel map y (B, 1, H, W) to a
log-likelihood, and draw binary samples y ~ p(y | x). H and W must be divisible by 4
(``MULTIPLE``); :mod:`vesselflow.vessel.analysis.sampler` pads whole images and crops back.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from vesselflow.flows import FlowConfig, MultiScaleFlow, bits_per_dim, build_dequantizer
from vesselflow.vessel.models.conditioning import build_conditioning

MULTIPLE = 4  # 2^L for the two flow levels, and the two max-pools of the conditioning net


@dataclass(frozen=True)
class VesselConfig:
    """Architecture of a vessel model; stored as JSON next to its weights.

    Attributes:
        kind: "cnf" (conditional flow) or "factored" (per-pixel Bernoulli baseline).
        width: conditioning-network width w (features w at 1/2 and 2w at 1/4 resolution).
        norm: normalisation in the conditioning network, "batch", "instance" or "group".
        conditioning: "vgg" (the paper's network) or "unet" (a compact U-Net with a larger
            receptive field); :mod:`.conditioning`.
        input_norm: what the image goes through before the model, at training and at
            inference alike: "none" or "fov-standardise" (each colour channel standardised
            inside the FOV to DRIVE's statistics, :mod:`vesselflow.vessel.preprocess.normalise`).
        steps: flow steps K per level (the flow has L = 2 levels).
        hidden: width of the flow's coupling/prior networks, per level. The first level runs
            at 1/2 resolution and dominates sampling cost, hence the narrower default there.
        deq_steps, deq_hidden, deq_width: the dequantizer's single-scale flow and context net.
        beta: factored model's weight of the background class; vessels get 1 - beta (the
            paper's beta = 0.9 on the vessel term is ``beta=0.1`` here).
        scale_range: the (lo, hi) range of the random isotropic scale it was trained with
            (``vesselflow train --scale-range``): the analysis scales it has seen
            (:mod:`vesselflow.vessel.analysis.scale_rule`); None: not recorded (the paper's).
        likelihood: factored model only: "weighted" (the paper's weighted Bernoulli, with
            its normaliser) or "bernoulli" (plain, unweighted Bernoulli; ``beta`` unused).
    """

    kind: str = "cnf"
    width: int = 32
    norm: str = "batch"
    steps: int = 6
    hidden: int | tuple[int, int] = (32, 48)
    deq_steps: int = 4
    deq_hidden: int = 32
    deq_width: int = 16
    beta: float = 0.1
    likelihood: str = "weighted"
    conditioning: str = "vgg"
    input_norm: str = "none"
    scale_range: tuple[float, float] | None = None

    @classmethod
    def from_dict(cls, d: dict) -> VesselConfig:
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown vessel config keys: {sorted(unknown)}")
        d = dict(d)
        for key in ("hidden", "scale_range"):
            if isinstance(d.get(key), list):
                d[key] = tuple(d[key])
        return cls(**d)

    def to_dict(self) -> dict:
        return asdict(self)


class VesselCNF(nn.Module):
    r"""Conditional flow p(y | x) over binary maps with binary variational dequantization.

    Dequantized labels are :math:`v = 0.5 + (2y - 1)\,\mathrm{softplus}(\epsilon)` with
    :math:`\epsilon \sim q(\epsilon \mid y, x)` a single-scale conditional flow. The half-infinite
    noise makes the support of q match the flow's unbounded support, and

    .. math:: \log P(y \mid x) \ge E_q[\log p_{flow}(v \mid x) - \log q(v \mid y, x)],

    where :math:`\log q(v) = \log q(\epsilon) - \sum \log \sigma(\epsilon)` since
    :math:`|dv/d\epsilon| = \sigma(\epsilon)`. Samples are ``v > 0.5``.
    """

    def __init__(self, config: VesselConfig) -> None:
        super().__init__()
        self.config = config
        self.cond = build_conditioning(config.conditioning, config.width, config.norm)
        self.flow = MultiScaleFlow(FlowConfig(
            channels=1, levels=2, steps=config.steps, hidden=config.hidden,
            context_channels=self.cond.channels, coupling="additive"))
        wd = config.deq_width
        # q's context at 1/2 resolution: the squeezed label next to the image features A.
        self.deq_context = nn.Sequential(
            nn.Conv2d(4 + self.cond.channels[0], wd, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(wd, wd, 3, padding=1))
        self.dequantizer = build_dequantizer(1, config.deq_steps, config.deq_hidden, wd)

    def features(self, image: Tensor) -> list[Tensor]:
        """Conditioning features [(B, w, H/2, W/2), (B, 2w, H/4, W/4)], once per image."""
        return self.cond(image)

    def log_likelihood(self, image: Tensor, label: Tensor,
                       feats: list[Tensor] | None = None) -> Tensor:
        """One-sample variational lower bound on log P(y | x) in nats, shape (B,)."""
        feats = self.features(image) if feats is None else feats
        y = label.to(image.dtype)
        ctx = self.deq_context(torch.cat([F.pixel_unshuffle(y, 2), feats[0]], dim=1))
        eps, log_q_eps = self.dequantizer.rsample_with_log_prob(ctx, n=1)
        eps, log_q_eps = eps[:, 0], log_q_eps[:, 0]
        v = 0.5 + (2 * y - 1) * F.softplus(eps)
        log_q_v = log_q_eps - F.logsigmoid(eps).flatten(1).sum(1)
        return self.flow.log_prob(v, feats) - log_q_v

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Negative bound in bits per dimension, averaged over the batch."""
        ll = self.log_likelihood(batch["image"], batch["label"])
        dims = batch["label"][0].numel()
        bpd = bits_per_dim(ll.mean(), dims)
        return bpd, {"bpd": bpd.item()}

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """The training loss, so DistributedDataParallel can wrap the model directly."""
        return self.loss(batch)

    @torch.no_grad()
    def sample_labels(self, feats: list[Tensor], n: int, temperature: float = 1.0,
                      generator: torch.Generator | None = None) -> Tensor:
        """n binary samples for ONE image's features: (n, 1, H, W) float {0, 1}."""
        v = self.flow.sample(feats, n=n, temperature=temperature, generator=generator)[0]
        return (v > 0.5).to(v.dtype)


class VesselFactored(nn.Module):
    r"""Per-pixel baseline trained with the weighted Bernoulli likelihood (paper Sec. 5.2).

    With logits l, :math:`p = \sigma(l)` and weights :math:`w_1 = 1 - \beta` (vessel) and
    :math:`w_0 = \beta` (background), training maximises :math:`w_1 y \log p + w_0 (1 - y)
    \log(1 - p)`. Weighting convention: the paper writes the weight of the vessel term as
    its :math:`\beta = 0.9`; here ``config.beta`` is the background weight, so the default
    ``beta=0.1`` gives the vessel term weight 0.9 and the background term 0.1, the paper's
    choice. The normalised distribution it defines,
    :math:`q(y{=}1) = p^{w_1} / (p^{w_1} + (1 - p)^{w_0})`, is what vesselflow reports the
    likelihood of (so its bpd compares fairly with the CNF), samples from, and shows as the
    probability map. q is monotone in p, so thresholded maps and PR curves are unchanged.

    With ``config.likelihood == "bernoulli"`` (the ``factored-bce`` model) the same network
    is trained on the plain Bernoulli likelihood (binary cross-entropy): q(y=1) = p, already
    normalised. It separates what factorisation costs from what the class weighting costs.
    """

    def __init__(self, config: VesselConfig) -> None:
        super().__init__()
        if config.likelihood not in ("weighted", "bernoulli"):
            raise ValueError(f"factored likelihood must be 'weighted' or 'bernoulli', got "
                             f"{config.likelihood!r}")
        self.config = config
        self.cond = build_conditioning(config.conditioning, config.width, config.norm)
        a, b = self.cond.channels
        self.head_half = nn.Sequential(nn.Conv2d(a + b, a, 3, padding=1), nn.ReLU(inplace=True))
        self.head_full = nn.Sequential(nn.Conv2d(a, a, 3, padding=1), nn.ReLU(inplace=True),
                                       nn.Conv2d(a, 1, 1))

    def features(self, image: Tensor) -> list[Tensor]:
        return self.cond(image)

    def logits(self, feats: list[Tensor]) -> Tensor:
        a, b = feats
        h = self.head_half(torch.cat([a, F.interpolate(b, scale_factor=2.0)], dim=1))
        return self.head_full(F.interpolate(h, scale_factor=2.0, mode="bilinear"))

    def _weights(self) -> tuple[float, float]:
        """(vessel, background) weights of the log-likelihood terms; (1, 1) if unweighted."""
        if self.config.likelihood == "bernoulli":
            return 1.0, 1.0
        return 1.0 - self.config.beta, self.config.beta

    def _log_q(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """(log q(y=1), log q(y=0)) per pixel under the normalised (weighted) Bernoulli."""
        w1, w0 = self._weights()
        a, b = w1 * F.logsigmoid(logits), w0 * F.logsigmoid(-logits)
        if self.config.likelihood == "bernoulli":
            return a, b  # sigma(l) + sigma(-l) = 1: already normalised
        log_norm = torch.logaddexp(a, b)
        return a - log_norm, b - log_norm

    def prob_map(self, feats: list[Tensor]) -> Tensor:
        """q(y = 1 | x) per pixel, (B, 1, H, W)."""
        return self._log_q(self.logits(feats))[0].exp()

    def log_likelihood(self, image: Tensor, label: Tensor,
                       feats: list[Tensor] | None = None) -> Tensor:
        """Exact log q(y | x) in nats WITH the normaliser, shape (B,)."""
        feats = self.features(image) if feats is None else feats
        log_q1, log_q0 = self._log_q(self.logits(feats))
        y = label.to(log_q1.dtype)
        return (y * log_q1 + (1 - y) * log_q0).flatten(1).sum(1)

    def loss(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """Weighted cross-entropy (the unnormalised numerator), per pixel; plain BCE if
        ``likelihood == "bernoulli"``."""
        logits = self.logits(self.features(batch["image"]))
        y = batch["label"].to(logits.dtype)
        w1, w0 = self._weights()
        loss = -(w1 * y * F.logsigmoid(logits) + w0 * (1 - y) * F.logsigmoid(-logits)).mean()
        with torch.no_grad():
            log_q1, log_q0 = self._log_q(logits)
            ll = (y * log_q1 + (1 - y) * log_q0).mean()
        name = "bce" if self.config.likelihood == "bernoulli" else "wce"
        return loss, {name: loss.item(), "bpd": bits_per_dim(ll, 1).item()}

    def forward(self, batch: dict[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        """The training loss, so DistributedDataParallel can wrap the model directly."""
        return self.loss(batch)

    @torch.no_grad()
    def sample_labels(self, feats: list[Tensor], n: int, temperature: float = 1.0,
                      generator: torch.Generator | None = None) -> Tensor:
        """n samples from the factorised Bernoulli q for ONE image: (n, 1, H, W).

        Temperature has no meaning for independent pixels beyond 0 (the thresholded mode).
        """
        q = self.prob_map(feats)[0]
        if temperature == 0:
            return (q > 0.5).to(q.dtype).expand(n, *q.shape).clone()
        u = torch.rand((n, *q.shape), generator=generator, device=q.device, dtype=q.dtype)
        return (u < q).to(q.dtype)


VesselModel = VesselCNF | VesselFactored

# What ``vesselflow train --model NAME`` builds: config fields over the VesselConfig defaults.
TRAIN_PRESETS: dict[str, dict[str, str]] = {
    "cnf": {"kind": "cnf"},
    "factored": {"kind": "factored"},
    "factored-bce": {"kind": "factored", "likelihood": "bernoulli"},
}


def build_model(config: VesselConfig) -> VesselModel:
    from vesselflow.vessel.preprocess.normalise import INPUT_NORMS

    if config.input_norm not in INPUT_NORMS:
        raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {config.input_norm!r}")
    if config.kind == "cnf":
        return VesselCNF(config)
    if config.kind == "factored":
        return VesselFactored(config)
    raise ValueError(f"model kind must be 'cnf' or 'factored', got {config.kind!r}")
