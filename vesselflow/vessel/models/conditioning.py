"""Conditioning network of the vessel models (Winkler et al. 2019, Table 5 / Figure 5)."""

from __future__ import annotations

from torch import Tensor, nn


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    raise ValueError(f"norm must be 'batch' or 'instance', got {kind!r}")


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
