"""The features a review verdict checks, all at the analysis scale (the image resized to DRIVE's
FOV diameter), so that they compare across cameras.

* **input** (:func:`input_features`, on the photo before any input normalisation): FOV
  roundness; brightness and contrast of the luminance inside the FOV; colour (chromaticity)
  and how grey the photo is; fine-scale noise and vessel-scale detail of the green channel,
  each relative to its contrast (noise and dithering raise the first, blur lowers the second).
* **output** (:func:`output_features`, on the map, from the per-image summary
  :class:`vesselflow.vessel.analysis.summary.ImageSummary`): vessel density inside the FOV;
  fragmentation (connected components of the mask per 1000 px of its skeleton); and the mean
  uncertainty *per unit of density*, which is too low for a confidently empty map and too
  high for a confused one. An almost empty map has almost no uncertainty, so uncertainty alone
  cannot flag it.
"""

from __future__ import annotations

import numpy as np

from vesselflow.vessel.preprocess.fov import fov_roundness

INPUT_FEATURES = ("fov_roundness", "brightness", "contrast", "red", "green", "colourfulness",
                  "noise", "detail")
OUTPUT_FEATURES = ("density", "fragmentation", "uncertainty")
FEATURES = INPUT_FEATURES + OUTPUT_FEATURES
"""Every feature a calibration may hold a range for, in report order."""

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def input_features(image: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """Input-quality features of an (H, W, 3) [0, 1] photo inside its (H, W) bool FOV."""
    import cv2

    fov = np.asarray(fov, bool)
    img = np.asarray(image, np.float32)
    px = img[fov]  # (N, 3)
    lum = px @ _LUMA
    total = px.sum(1) + 1e-3
    g = np.ascontiguousarray(img[..., 1])
    g1 = cv2.GaussianBlur(g, (0, 0), 1.0)
    g3 = cv2.GaussianBlur(g, (0, 0), 3.0)
    # Away from the FOV edge, whose step would dominate both measures.
    inner = cv2.erode(fov.astype(np.uint8), np.ones((15, 15), np.uint8)) > 0
    if not inner.any():
        inner = fov
    spread = float(g[inner].std()) + 1e-4
    residual = (g - g1)[inner]
    return {
        "fov_roundness": fov_roundness(fov),
        "brightness": float(lum.mean()),
        "contrast": float(lum.std()),
        "red": float((px[:, 0] / total).mean()),
        "green": float((px[:, 1] / total).mean()),
        "colourfulness": float(np.abs(px - px.mean(1, keepdims=True)).mean()),
        "noise": float(1.4826 * np.median(np.abs(residual - np.median(residual))) / spread),
        "detail": float((g1 - g3)[inner].std() / spread),
    }


def output_features(mask: np.ndarray, skeleton: np.ndarray, density: float,
                    mean_uncertainty: float) -> dict[str, float]:
    """Map features of a (H, W) bool mask (inside its FOV) and its skeleton (H, W) bool.

    ``density`` (mask fraction of the FOV) and ``mean_uncertainty`` (mean sample std in the
    FOV) are the per-image summary's: computed once, not again here.
    """
    from skimage.measure import label

    pieces = int(label(mask, connectivity=2).max()) if mask.any() else 0
    length = int(np.count_nonzero(skeleton))
    return {
        "density": float(density),
        # An empty map has no skeleton: it counts as one piece per px (caught by density).
        "fragmentation": 1000.0 * pieces / length if length else 1000.0,
        "uncertainty": float(mean_uncertainty) / max(float(density), 1e-3),
    }
