"""Bicubic resizing with MATLAB ``imresize`` semantics, the standard SR degradation.

Every SR benchmark number (bicubic 33.66 dB on Set5 x2, SRCNN, SRFlow, ...) is computed on LR
images made by MATLAB's ``imresize(hr, 1/s, 'bicubic')``. PIL and OpenCV differ from it (no
antialiasing when downscaling, other boundary rules), which moves PSNR by tenths of a dB, so
the exact algorithm is reproduced here:

* cubic kernel with a = -0.5 (Keys 1981), support 4;
* when downscaling by ``scale < 1`` the kernel is stretched to ``h(x) = scale * k(scale * x)``
  (support ``4 / scale``): antialiasing;
* output pixel ``x`` (1-based) maps to input coordinate ``u = x / scale + 0.5 * (1 - 1/scale)``;
* taps falling outside the image are mirrored half-sample symmetrically
  (``[1..n, n..1]``), and the weights of each output pixel are normalised to sum to 1;
* the dimension with the smaller scale is resized first (rows first on ties);
* for uint8 input every pass rounds and saturates to uint8, as ``imresizemex`` returns the
  input's class (this matters by ~0.01 dB only, but it is what the published numbers used).
"""

from __future__ import annotations

import math

import numpy as np


def cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, as in MATLAB ``imresize``."""
    ax = np.abs(x)
    ax2, ax3 = ax**2, ax**3
    return ((1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
            + (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2)))


def contributions(in_length: int, out_length: int, scale: float,
                  antialiasing: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Weights and 0-based source indices of a 1-D MATLAB bicubic resize.

    Returns:
        (weights, indices), both (out_length, P): output ``i`` is
        ``sum_p weights[i, p] * input[indices[i, p]]``. Taps whose weight is zero for every
        output are dropped, as MATLAB does.
    """
    kernel_width = 4.0
    if scale < 1 and antialiasing:
        # Stretch the kernel: it then low-passes at the output's Nyquist rate.
        def h(t: np.ndarray) -> np.ndarray:
            return scale * cubic(scale * t)

        kernel_width /= scale
    else:
        h = cubic
    x = np.arange(1, out_length + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - kernel_width / 2.0)
    taps = math.ceil(kernel_width) + 2
    ind = left[:, None] + np.arange(taps)[None, :]          # 1-based, may leave [1, n]
    weights = h(u[:, None] - ind)
    weights /= weights.sum(axis=1, keepdims=True)
    # Half-sample symmetric mirroring: index sequence 1..n, n..1, repeated.
    aux = np.concatenate([np.arange(in_length), np.arange(in_length - 1, -1, -1)])
    indices = aux[np.mod(ind.astype(np.int64) - 1, aux.size)]
    keep = np.any(weights != 0, axis=0)
    return weights[:, keep], indices[:, keep]


def _resize_along(img: np.ndarray, axis: int, scale: float, out_length: int,
                  to_uint8: bool) -> np.ndarray:
    weights, indices = contributions(img.shape[axis], out_length, scale)
    src = np.moveaxis(img, axis, 0).astype(np.float64, copy=False)
    out = np.zeros((out_length, *src.shape[1:]), dtype=np.float64)
    extra = (1,) * (src.ndim - 1)
    for p in range(weights.shape[1]):
        out += weights[:, p].reshape(-1, *extra) * src[indices[:, p]]
    if to_uint8:
        out = np.clip(np.round(out), 0, 255)
    return np.moveaxis(out, 0, axis)


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB ``imresize(img, scale, 'bicubic')`` with antialiasing.

    Args:
        img: (H, W) or (H, W, C) array. uint8 input is resized with MATLAB's uint8 rules (each
            pass rounded and saturated) and returned as uint8; any other dtype is computed in
            float64 and returned as float64 without clipping.
        scale: one factor for both axes; the output is ``ceil(H * scale) x ceil(W * scale)``.

    Returns:
        The resized array, (H', W') or (H', W', C).
    """
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects (H, W) or (H, W, C), got shape {img.shape}")
    if scale <= 0:
        raise ValueError(f"scale must be positive, got {scale}")
    is_uint8 = img.dtype == np.uint8
    out = img.astype(np.float64)
    # MATLAB resizes the dimension with the smallest scale first; ties keep rows first.
    for axis in (0, 1):
        out_length = math.ceil(img.shape[axis] * scale)
        out = _resize_along(out, axis, scale, out_length, is_uint8)
    return out.astype(np.uint8) if is_uint8 else out


def bicubic_degrade(hr: np.ndarray, scale: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Standard SR degradation: crop HR to a multiple of ``scale``, bicubic-downscale it.

    Args:
        hr: (H, W) or (H, W, C) uint8 image.
        scale: integer SR factor.

    Returns:
        (hr_cropped, lr): uint8, (H - H % s, W - W % s[, C]) and (H // s, W // s[, C]).
    """
    if hr.dtype != np.uint8:
        raise TypeError(f"bicubic_degrade expects a uint8 image, got {hr.dtype}")
    h, w = hr.shape[:2]
    hr = hr[: h - h % scale, : w - w % scale]
    if hr.shape[0] == 0 or hr.shape[1] == 0:
        raise ValueError(f"image {h}x{w} is smaller than the scale {scale}")
    return np.ascontiguousarray(hr), imresize(hr, 1.0 / scale)


def bicubic_upscale(lr: np.ndarray, scale: int = 2) -> np.ndarray:
    """The bicubic SR baseline: MATLAB ``imresize(lr, scale, 'bicubic')`` on uint8.

    Args:
        lr: (h, w) or (h, w, C) uint8 image.

    Returns:
        uint8 image (h * scale, w * scale[, C]).
    """
    if lr.dtype != np.uint8:
        raise TypeError(f"bicubic_upscale expects a uint8 image, got {lr.dtype}")
    return imresize(lr, float(scale))
