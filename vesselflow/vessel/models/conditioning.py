"""Conditioning networks of the vessel models: image -> features at 1/2 and 1/4 resolution.

Two options (``VesselConfig.conditioning``):

* ``"vgg"``: the paper's VGG-like network (Winkler et al. 2019, Table 5 / Figure 5). Its
  receptive field is small (~40 px at full resolution), so it sees a vessel and little of its
  surroundings.
* ``"unet"``: a compact U-Net: an encoder down to 1/16 resolution and a decoder
  back to 1/4 and 1/2 with skip connections, about 0.35 M parameters. Its receptive field
  covers most of a 128 px patch, so a vessel is judged against its neighbourhood (local
  contrast) rather than against absolute colour.

Both return ``[(B, w, H/2, W/2), (B, 2w, H/4, W/4)]`` for ``x`` (B, 3, H, W) in [0, 1], with H
and W divisible by 4 (the U-Net pads internally to a multiple of 16 and crops back).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

CONDITIONINGS = ("vgg", "unet")
NORMS = ("batch", "instance", "group")


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        # Per-sample statistics over groups of 8 channels (no running statistics).
        return nn.GroupNorm(max(1, channels // 8), channels)
    raise ValueError(f"norm must be one of {NORMS}, got {kind!r}")


class Block(nn.Sequential):
    """[norm, ReLU, conv3x3]: the paper's pre-activation block."""

    def __init__(self, c_in: int, c_out: int, norm: str) -> None:
        super().__init__(_norm(norm, c_in), nn.ReLU(inplace=True),
                         nn.Conv2d(c_in, c_out, 3, padding=1))


class ConditioningNet(nn.Module):
    """image -> stem -> block -> maxpool -> 2 blocks (A, 1/2) -> maxpool -> 2 blocks (B, 1/4).

    A conditions the flow's first level and B its second. A stem convolution comes first so
    the first normalisation acts on features rather than on the raw RGB values.

    The paper normalises with InstanceNorm. vesselflow defaults to BatchNorm because it trains
    on patches and predicts on whole images: per-image statistics of a 128x128 patch inside the
    FOV differ from those of a whole fundus photo with its black surround, while BatchNorm's
    running statistics are the same in both. ``norm="instance"`` gives the paper's choice.

    Shapes: x (B, 3, H, W) in [0, 1], H and W divisible by 4 -> [(B, w, H/2, W/2),
    (B, 2w, H/4, W/4)].
    """

    def __init__(self, in_channels: int = 3, width: int = 32, norm: str = "batch") -> None:
        super().__init__()
        w = width
        self.stem = nn.Conv2d(in_channels, w, 3, padding=1)
        self.full = Block(w, w, norm)
        self.level_a = nn.Sequential(Block(w, w, norm), Block(w, w, norm))
        self.level_b = nn.Sequential(Block(w, 2 * w, norm), Block(2 * w, 2 * w, norm))
        self.pool = nn.MaxPool2d(2)
        self.channels = (w, 2 * w)

    def forward(self, x: Tensor) -> list[Tensor]:
        h = self.full(self.stem(x - 0.5))
        a = self.level_a(self.pool(h))
        b = self.level_b(self.pool(a))
        return [a, b]


class UNetConditioning(nn.Module):
    """Compact U-Net: encoder 1, 1/2, 1/4, 1/8, 1/16; decoder to 1/8, 1/4 (B) and 1/2 (A).

    Channels with ``width`` w = 32: w/2 at full resolution, w at 1/2, 2w from 1/4 down.
    Upsampling is nearest followed by a block on the concatenated skip (no transposed
    convolutions: no checkerboard artefacts in the features the flow is conditioned on).

    Shapes: x (B, 3, H, W) in [0, 1], H and W divisible by 4 -> [(B, w, H/2, W/2),
    (B, 2w, H/4, W/4)].
    """

    DEPTH = 16  # total downsampling of the encoder

    def __init__(self, in_channels: int = 3, width: int = 32, norm: str = "batch") -> None:
        super().__init__()
        w = width
        c0, c1, c2 = max(8, w // 2), w, 2 * w
        self.stem = nn.Conv2d(in_channels, c0, 3, padding=1)
        self.enc0 = Block(c0, c0, norm)                                          # 1
        self.enc1 = nn.Sequential(Block(c0, c1, norm), Block(c1, c1, norm))      # 1/2
        self.enc2 = nn.Sequential(Block(c1, c2, norm), Block(c2, c2, norm))      # 1/4
        self.enc3 = nn.Sequential(Block(c2, c2, norm), Block(c2, c2, norm))      # 1/8
        self.enc4 = Block(c2, c2, norm)                                          # 1/16
        self.dec3 = Block(2 * c2, c2, norm)                                      # 1/8
        self.dec2 = Block(2 * c2, c2, norm)                                      # 1/4 -> B
        self.dec1 = Block(c2 + c1, c1, norm)                                     # 1/2 -> A
        self.pool = nn.MaxPool2d(2)
        self.channels = (c1, c2)

    @staticmethod
    def _up(x: Tensor, like: Tensor) -> Tensor:
        return F.interpolate(x, size=like.shape[-2:], mode="nearest")

    def forward(self, x: Tensor) -> list[Tensor]:
        h, w = x.shape[-2:]
        ph, pw = (-h) % self.DEPTH, (-w) % self.DEPTH
        # Zero padding of the centred image = black surround, as around a real FOV.
        x = F.pad(x - 0.5, (0, pw, 0, ph), value=-0.5) if ph or pw else x - 0.5
        e0 = self.enc0(self.stem(x))
        e1 = self.enc1(self.pool(e0))
        e2 = self.enc2(self.pool(e1))
        e3 = self.enc3(self.pool(e2))
        e4 = self.enc4(self.pool(e3))
        d3 = self.dec3(torch.cat([self._up(e4, e3), e3], 1))
        b = self.dec2(torch.cat([self._up(d3, e2), e2], 1))
        a = self.dec1(torch.cat([self._up(b, e1), e1], 1))
        return [a[..., : h // 2, : w // 2], b[..., : h // 4, : w // 4]]


def build_conditioning(kind: str, width: int, norm: str) -> nn.Module:
    """The conditioning network named ``kind`` (one of :data:`CONDITIONINGS`)."""
    if kind == "vgg":
        return ConditioningNet(width=width, norm=norm)
    if kind == "unet":
        return UNetConditioning(width=width, norm=norm)
    raise ValueError(f"conditioning must be one of {CONDITIONINGS}, got {kind!r}")
