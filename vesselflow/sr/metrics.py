"""SR metrics under the standard protocol: PSNR and SSIM on the BT.601 luma (Y) channel.

The protocol (SRCNN onwards): convert both images to Y with MATLAB's ``rgb2ycbcr`` (ITU-R
BT.601, studio swing, Y in [16, 235]), crop ``scale`` pixels from every border (the bicubic
boundary is unreliable there), then PSNR with peak 255 and SSIM with an 11x11 Gaussian window
(sigma 1.5) and population statistics, which is what MATLAB's ``ssim`` computes.
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


def _y_pair(sr: np.ndarray, hr: np.ndarray, border: int) -> tuple[np.ndarray, np.ndarray]:
    if sr.shape != hr.shape:
        raise ValueError(f"SR {sr.shape} and HR {hr.shape} shapes differ")
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
        sr, hr: (H, W, 3) or (H, W) images on the 0..255 scale (uint8 or float).
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
        sr, hr: (H, W, 3) or (H, W) images on the 0..255 scale (uint8 or float).
        border: pixels cropped from each edge; the protocol uses the SR scale.
    """
    y_sr, y_hr = _y_pair(sr, hr, border)
    return float(structural_similarity(y_hr, y_sr, gaussian_weights=True, sigma=1.5,
                                       use_sample_covariance=False, data_range=255.0))
