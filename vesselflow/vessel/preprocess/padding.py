"""Pad images to a multiple of 2^L for multi-scale flows, and undo it exactly.

DRIVE images are 584x565 (H x W); a flow with L squeeze levels needs both sides divisible by
2^L. vesselflow pads to the next multiple (584x568), far cheaper than the paper's padding to
1024x1024. The two are NOT equivalent: the model sees a different amount of padding (which
can change what it learns and its likelihood of the padded pixels), and a bpd divided by the
1024x1024 canvas is about 0.31x one divided by the image's pixels. vesselflow reports bpd
over the image's own pixels (``vesselflow.vessel.analysis.sampler.log_likelihood``;
``canvas=`` measures the 1024x1024 variant).

Convention: padding is added at the **bottom and right only**, so pixel (i, j) of the padded
array is pixel (i, j) of the original and coordinates never shift. The returned ``pad`` tuple
follows ``torch.nn.functional.pad``'s order for the last two dims, ``(left, right, top,
bottom)``; here ``left == top == 0``. :func:`crop_padding` accepts any such tuple, so
symmetric padding produced elsewhere can be undone too.

Both functions accept a torch tensor or a numpy array of any dtype with shape (..., H, W) and
return the same type. Reflection uses index arithmetic rather than ``F.pad``, so it works for
any dtype (bool, uint8) and for pads larger than the image (reflecting repeatedly).
"""

from __future__ import annotations

from typing import Literal, TypeVar

import numpy as np
import torch
from torch import Tensor

Pad = tuple[int, int, int, int]
PadMode = Literal["reflect", "constant", "replicate"]
ArrayT = TypeVar("ArrayT", Tensor, np.ndarray)


def padded_size(size: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``size``."""
    if multiple < 1:
        raise ValueError(f"multiple must be >= 1, got {multiple}")
    return -(-size // multiple) * multiple


def pad_to_multiple(
    t: ArrayT, multiple: int, mode: PadMode = "reflect", value: float = 0.0
) -> tuple[ArrayT, Pad]:
    """Pad the last two dims at the bottom/right up to the next multiple of ``multiple``.

    Args:
        t: Tensor or array (..., H, W).
        multiple: Target divisor, e.g. 2**L for a flow with L levels.
        mode: "reflect" (mirror without repeating the edge pixel, like ``F.pad``),
            "replicate" (repeat the edge) or "constant" (fill with ``value``).
        value: Fill value for mode "constant".

    Returns:
        (padded (..., H', W'), pad) with H', W' multiples of ``multiple`` and
        pad = (left=0, right, top=0, bottom).
    """
    if t.ndim < 2:
        raise ValueError(f"expected an array (..., H, W), got shape {tuple(t.shape)}")
    h, w = int(t.shape[-2]), int(t.shape[-1])
    bottom, right = padded_size(h, multiple) - h, padded_size(w, multiple) - w
    pad: Pad = (0, right, 0, bottom)
    if bottom == 0 and right == 0:
        return t, pad
    if mode == "constant":
        return _pad_constant(t, h + bottom, w + right, value), pad
    if mode not in ("reflect", "replicate"):
        raise ValueError(f"mode must be 'reflect', 'replicate' or 'constant', got {mode!r}")
    rows = _source_index(h, h + bottom, mode)
    cols = _source_index(w, w + right, mode)
    if isinstance(t, Tensor):
        rows_t = torch.from_numpy(rows).to(t.device)
        cols_t = torch.from_numpy(cols).to(t.device)
        return t.index_select(-2, rows_t).index_select(-1, cols_t), pad
    return np.take(np.take(t, rows, axis=-2), cols, axis=-1), pad


def crop_padding(t: ArrayT, pad: Pad) -> ArrayT:
    """Undo :func:`pad_to_multiple` (or any ``(left, right, top, bottom)`` padding).

    Args:
        t: Padded tensor or array (..., H', W'), or a model output of the same size.
        pad: The tuple returned by :func:`pad_to_multiple`.

    Returns:
        A view (..., H, W) of the original region; bit-exact for padded inputs.
    """
    left, right, top, bottom = (int(p) for p in pad)
    h, w = int(t.shape[-2]), int(t.shape[-1])
    if min(left, right, top, bottom) < 0 or left + right > w or top + bottom > h:
        raise ValueError(f"padding {pad} does not fit an array of size {h}x{w}")
    return t[..., top : h - bottom, left : w - right]


def _source_index(n: int, total: int, mode: str) -> np.ndarray:
    """For each output position 0..total-1, the input position it copies (length total)."""
    idx = np.arange(total)
    if mode == "replicate" or n == 1:
        return np.minimum(idx, n - 1)
    period = 2 * (n - 1)  # reflect: 0 1 .. n-1 n-2 .. 1 | 0 1 ..
    idx = idx % period
    return np.where(idx < n, idx, period - idx)


def _pad_constant(t: ArrayT, h: int, w: int, value: float) -> ArrayT:
    if isinstance(t, Tensor):
        out = torch.full((*t.shape[:-2], h, w), value, dtype=t.dtype, device=t.device)
    else:
        out = np.full((*t.shape[:-2], h, w), value, dtype=t.dtype)
    out[..., : t.shape[-2], : t.shape[-1]] = t
    return out
