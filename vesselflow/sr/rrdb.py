"""RRDB conditioning network (ESRGAN, Wang et al. 2018) producing per-level flow contexts.

The trunk is ESRGAN's: conv -> ``blocks`` x RRDB -> conv, plus a long skip. Each RRDB holds
three residual dense blocks (five 3x3 convs with dense connections, ``growth`` channels each),
and both the dense blocks and the RRDB scale their residual by 0.2 (keeps a deep trunk stable
without normalisation layers).

For SR the flow's level l runs at HR / 2^(l+1); for x2 SR that is LR / 2^l. The network
therefore returns one feature map per entry of ``out_scales`` (resolution relative to LR):
the trunk features concatenated with the (normalised) LR image at the matching resolution, so
every level sees both learned features and the raw colours it has to reproduce.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# Per-channel statistics of natural RGB images (ImageNet); centring the input helps the
# unnormalised trunk train from the start.
_RGB_MEAN = (0.485, 0.456, 0.406)
_RGB_STD = (0.229, 0.224, 0.225)


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs; output ``x + 0.2 * conv5([x, x1..x4])``.

    Shapes: x (N, F, H, W) -> (N, F, H, W).
    """

    def __init__(self, features: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.convs = nn.ModuleList(
            nn.Conv2d(features + i * growth, growth if i < 4 else features, 3, padding=1)
            for i in range(5))
        for conv in self.convs:
            # ESRGAN's init: Kaiming scaled by 0.1 so each residual starts small.
            nn.init.kaiming_normal_(conv.weight, a=0.2)
            conv.weight.data.mul_(0.1)
            nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        feats = [x]
        for conv in self.convs[:-1]:
            feats.append(F.leaky_relu(conv(torch.cat(feats, dim=1)), 0.2))
        return x + 0.2 * self.convs[-1](torch.cat(feats, dim=1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks and a 0.2-scaled skip.

    Shapes: x (N, F, H, W) -> (N, F, H, W).
    """

    def __init__(self, features: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.body = nn.Sequential(*(ResidualDenseBlock(features, growth) for _ in range(3)))

    def forward(self, x: Tensor) -> Tensor:
        return x + 0.2 * self.body(x)


class RRDBNet(nn.Module):
    """Conditioning network: LR image -> one context per flow level.

    Args:
        in_channels: image channels.
        features: trunk width F.
        blocks: number of RRDBs.
        growth: dense-block growth channels.
        out_scales: resolution of each output relative to the LR input, powers of two, e.g.
            ``(1, 0.5)`` for x2 SR with a 2-level flow (HR/2 = LR, HR/4 = LR/2) or
            ``(2, 1)`` for an HR-resolution head followed by LR.

    Attributes:
        context_channels: channels of each output, ``F + in_channels`` per level.

    Shapes: lr (N, C, h, w) in [0, 1]; output ``[(N, F + C, h * s, w * s) for s in
    out_scales]``. For scales < 1, h and w must be divisible by 1 / s.
    """

    def __init__(self, in_channels: int = 3, features: int = 64, blocks: int = 8,
                 growth: int = 32, out_scales: Sequence[float] = (1.0, 0.5)) -> None:
        super().__init__()
        self.in_channels = in_channels
        self.out_scales = tuple(float(s) for s in out_scales)
        for s in self.out_scales:
            if s <= 0 or not math.log2(s).is_integer():
                raise ValueError(f"out_scales must be powers of two, got {s}")
        self.conv_first = nn.Conv2d(in_channels, features, 3, padding=1)
        self.trunk = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_trunk = nn.Conv2d(features, features, 3, padding=1)
        # One small adapter per output: x2 nearest-upsample + conv per octave up, stride-2
        # conv per octave down (learned downsampling, as SRFlow's strided encoders).
        self.adapters = nn.ModuleList()
        for s in self.out_scales:
            octaves = round(math.log2(s))
            layers: list[nn.Module] = []
            for _ in range(abs(octaves)):
                if octaves > 0:
                    layers += [nn.Upsample(scale_factor=2, mode="nearest"),
                               nn.Conv2d(features, features, 3, padding=1)]
                else:
                    layers += [nn.Conv2d(features, features, 3, stride=2, padding=1)]
                layers.append(nn.LeakyReLU(0.2))
            self.adapters.append(nn.Sequential(*layers))
        self.context_channels = tuple(features + in_channels for _ in self.out_scales)
        self.register_buffer("mean", torch.tensor(_RGB_MEAN[:in_channels] if in_channels == 3
                                                  else (0.5,) * in_channels).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(_RGB_STD[:in_channels] if in_channels == 3
                                                 else (0.25,) * in_channels).view(1, -1, 1, 1))

    def trunk_features(self, lr: Tensor) -> Tensor:
        """Trunk output at LR resolution, (N, F, h, w), from lr (N, C, h, w) in [0, 1]."""
        fea = self.conv_first((lr - self.mean) / self.std)
        return fea + self.conv_trunk(self.trunk(fea))

    def forward(self, lr: Tensor) -> list[Tensor]:
        """lr (N, C, h, w) in [0, 1] -> list of contexts (N, F + C, h * s, w * s)."""
        fea = self.trunk_features(lr)
        x = (lr - self.mean) / self.std
        outs = []
        for s, adapter in zip(self.out_scales, self.adapters, strict=True):
            f = adapter(fea)
            if s > 1:
                img = F.interpolate(x, scale_factor=s, mode="bicubic", align_corners=False)
            elif s < 1:
                img = F.avg_pool2d(x, round(1 / s))
            else:
                img = x
            if f.shape[-2:] != img.shape[-2:]:
                raise ValueError(f"LR size {tuple(lr.shape[-2:])} is not divisible for "
                                 f"output scale {s}")
            outs.append(torch.cat([f, img], dim=1))
        return outs
