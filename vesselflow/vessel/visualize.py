"""Rendering vessel maps for people, and encoding them for download.

Pure NumPy / Pillow / tifffile helpers shared by the web app and scripts; nothing here knows
about Streamlit or torch.

* display: :func:`gray`, :func:`colorize`, :func:`overlay`, :func:`agreement_map`,
  :func:`thumbnail`;
* encoding: :func:`png_bytes` (8-bit, lossless), :func:`tiff_bytes` (float32, for
  quantitative work), :func:`zip_bytes`.

Conventions: probability maps and images are float in [0, 1]; masks are bool; every display
function returns uint8 ((H, W) gray or (H, W, 3) RGB), ready for ``PIL.Image.fromarray``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

VESSEL_COLOR = (40 / 255, 1.0, 90 / 255)
"""Overlay colour of vessel pixels (RGB in [0, 1]): a green that stands out on a red fundus
(the colour of ``vesselflow segment``'s overlays)."""

AGREEMENT_COLORS = {
    "true positive": (1.0, 1.0, 1.0),
    "false positive": (1.0, 0.2, 0.2),
    "false negative": (0.2, 0.5, 1.0),
    "true negative": (0.0, 0.0, 0.0),
    "outside FOV": (0.25, 0.25, 0.25),
}
"""Colours of :func:`agreement_map`, in legend order."""


def to_uint8(arr: np.ndarray, vmin: float = 0.0, vmax: float = 1.0) -> np.ndarray:
    """Linearly map [vmin, vmax] to 0..255 (clipped, rounded); bool maps to {0, 255}."""
    arr = np.asarray(arr)
    if arr.dtype == bool:
        return arr.astype(np.uint8) * 255
    if arr.dtype == np.uint8:
        return arr
    if vmax <= vmin:
        raise ValueError(f"vmax ({vmax}) must be greater than vmin ({vmin})")
    scaled = (np.asarray(arr, dtype=np.float32) - vmin) / (vmax - vmin)
    return np.round(np.clip(np.nan_to_num(scaled), 0.0, 1.0) * 255).astype(np.uint8)


def gray(map_2d: np.ndarray, vmax: float = 1.0) -> np.ndarray:
    """A [0, vmax] map as an 8-bit grayscale picture (H, W): black 0, white vmax."""
    return to_uint8(map_2d, 0.0, vmax)


def colorize(map_2d: np.ndarray, cmap: str = "magma", vmin: float = 0.0, vmax: float = 1.0
             ) -> np.ndarray:
    """A scalar map through a matplotlib colormap -> uint8 RGB (H, W, 3)."""
    from matplotlib import colormaps  # imported here: matplotlib is slow to import

    index = to_uint8(map_2d, vmin, vmax)
    lut = np.round(colormaps[cmap](np.arange(256))[:, :3] * 255).astype(np.uint8)
    return lut[index]


def overlay(image: np.ndarray, mask: np.ndarray, color: Sequence[float] = VESSEL_COLOR,
            alpha: float = 0.6) -> np.ndarray:
    """Blend ``color`` over the ``mask`` pixels of an RGB image.

    Args:
        image: (H, W, 3) float in [0, 1] (or uint8).
        mask: (H, W) bool, e.g. the thresholded vessel map.
        color: RGB in [0, 1].
        alpha: Opacity of the colour on mask pixels (0 = invisible, 1 = opaque).

    Returns:
        uint8 (H, W, 3).
    """
    img = np.asarray(image)
    img = img.astype(np.float32) / 255.0 if img.dtype == np.uint8 else img.astype(np.float32)
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != img.shape[:2]:
        raise ValueError(f"mask {mask.shape} and image {img.shape[:2]} sizes differ")
    out = img.copy()
    out[mask] = (1 - alpha) * img[mask] + alpha * np.asarray(color, dtype=np.float32)
    return to_uint8(out)


def agreement_map(pred: np.ndarray, truth: np.ndarray, fov: np.ndarray | None = None
                  ) -> np.ndarray:
    """Colour-code a binary prediction against a reference tracing (see AGREEMENT_COLORS).

    Returns:
        uint8 (H, W, 3): white true positives, red false positives, blue false negatives,
        black true negatives, dark grey outside the field of view.
    """
    pred = np.asarray(pred, dtype=bool)
    truth = np.asarray(truth, dtype=bool)
    fov = np.ones_like(pred) if fov is None else np.asarray(fov, dtype=bool)
    out = np.zeros((*pred.shape, 3), dtype=np.float32)
    cases = {
        "true positive": pred & truth,
        "false positive": pred & ~truth,
        "false negative": ~pred & truth,
        "outside FOV": ~fov,
    }
    for name, where in cases.items():
        out[where] = AGREEMENT_COLORS[name]
    return to_uint8(out)


def thumbnail(arr: np.ndarray, max_side: int = 1200) -> np.ndarray:
    """Downsize a uint8 picture so its long side is at most ``max_side`` (for display only)."""
    arr = np.asarray(arr)
    h, w = arr.shape[:2]
    if max(h, w) <= max_side:
        return arr
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(to_uint8(arr)).resize(size, Image.Resampling.LANCZOS))
