"""SR metrics under the standard protocol: PSNR and SSIM on the BT.601 luma (Y) channel.

The protocol (SRCNN onwards): convert both images to Y with MATLAB's ``rgb2ycbcr`` (ITU-R
BT.601, studio swing, Y in [16, 235]), crop ``scale`` pixels from every border (the bicubic
boundary is unreliable there), then PSNR with peak 255 and SSIM with an 11x11 Gaussian window
(sigma 1.5) and population statistics, which is what MATLAB's ``ssim`` computes.

Single-channel (grey) images, e.g. Set14's ``bridge``, are scored on their grey values, as
the published evaluation scripts do (they convert only 3-channel images): pass the HR image
as (H, W); an RGB SR output is then reduced to its full-range luma 0.299 R + 0.587 G + 0.114 B
(exactly g when R = G = B). Scoring a grey image on Y = 16 + 219 g / 255 instead would shrink
its error by (219/255)^2 and lift its PSNR by 1.32 dB.

Y is not rounded to 8 bits: with rounding (MATLAB's ``rgb2ycbcr`` on uint8 input) bicubic
comes out 33.64 / 30.22 / 29.55 dB on Set5 / Set14 / BSD100, missing the published
33.66 / 30.24 / 29.56 by up to 0.02 dB; unrounded it is 33.67 / 30.23 / 29.56
(``tests/test_sr_metrics.py`` checks this on the real sets).
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

# BT.601 luma weights for RGB in [0, 1], output on the 0..255 scale (MATLAB rgb2ycbcr).
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966])


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma ``Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255`` on the 0..255 scale.

    Args:
        img: (H, W, 3) RGB or (H, W) grey, uint8 or float on the 0..255 scale. A grey image is
            treated as R = G = B, i.e. ``Y = 16 + 219 * gray / 255``.

    Returns:
        (H, W) float64 in [16, 235]; not rounded.
    """
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        return 16.0 + x * (_Y_WEIGHTS.sum() / 255.0)
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"rgb_to_y expects (H, W) or (H, W, 3), got shape {x.shape}")
    return 16.0 + (x @ _Y_WEIGHTS) / 255.0


def grey_values(img: np.ndarray) -> np.ndarray:
    """The grey value a single-channel image is scored on: (H, W) as is, or the full-range
    BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of an (H, W, 3) image; float64, 0..255."""
    x = np.asarray(img, dtype=np.float64)
    if x.ndim == 2:
        return x
    if x.ndim != 3 or x.shape[2] != 3:
        raise ValueError(f"grey_values expects (H, W) or (H, W, 3), got shape {x.shape}")
    return x @ (_Y_WEIGHTS / 219.0)  # 65.481 / 219 = 0.299, 128.553 / 219 = 0.587, ...


def _y_pair(sr: np.ndarray, hr: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    """The two channels the protocol compares: Y of RGB HR images, grey values of (H, W) ones."""
    if sr.shape[:2] != hr.shape[:2] or (hr.ndim == 3 and sr.shape != hr.shape):
        raise ValueError(f"SR {sr.shape} and HR {hr.shape} shapes differ")
    if hr.ndim == 2:  # a single-channel HR image: scored on grey values, not on Y
        y_sr, y_hr = grey_values(sr), grey_values(hr)
    else:
        y_sr, y_hr = rgb_to_y(sr), rgb_to_y(hr)
    if border > 0:
        if min(y_hr.shape) <= 2 * border:
            raise ValueError(f"image {y_hr.shape} too small for a {border}-pixel border crop")
        y_sr = y_sr[border:-border, border:-border]
        y_hr = y_hr[border:-border, border:-border]
    return y_sr, y_hr


def psnr_y(sr: np.ndarray, hr: np.ndarray, border: int = 2) -> float:
    """PSNR (dB, peak 255) between the Y channels, ``border`` pixels cropped on every side.

    Args:
        sr, hr: images on the 0..255 scale (uint8 or float): (H, W, 3) both, scored on Y; or
            a single-channel ``hr`` (H, W) and ``sr`` (H, W) or (H, W, 3), scored on grey.
        border: pixels cropped from each edge; the protocol uses the SR scale.

    Returns:
        PSNR in dB; ``inf`` for identical images.
    """
    y_sr, y_hr = _y_pair(sr, hr, border)
    mse = float(np.mean((y_sr - y_hr) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


def ssim_y(sr: np.ndarray, hr: np.ndarray, border: int = 2) -> float:
    """SSIM between the Y channels, matching MATLAB ``ssim`` (Gaussian 11x11, sigma 1.5).

    Args:
        sr, hr: as :func:`psnr_y` (a single-channel ``hr`` is scored on grey values).
        border: pixels cropped from each edge; the protocol uses the SR scale.
    """
    y_sr, y_hr = _y_pair(sr, hr, border)
    return float(structural_similarity(y_hr, y_sr, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255.0))
