"""Affine warps of just the output region a patch needs (the training augmentation's geometry).

Warping a whole 565x584 image and then cropping a 128x128 patch spends ~90% of the work on
pixels that are thrown away. :func:`warp_region` computes, for one output rectangle, the source
window its pixels sample from (the bounding box of the inverse-mapped rectangle plus the
bilinear neighbours), and warps only that window with the correspondingly shifted matrix. The
result equals the crop of the full warp up to OpenCV's fixed-point coordinate rounding (1/32
pixel), which the shifted origin can move by one step for a few pixels.

The matrix is albumentations' own (:func:`affine_matrix`), so the geometry is the one
``albumentations.Affine`` applies (rotation about the image centre, isotropic scale, x-shear).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import cv2
import numpy as np
from albumentations.augmentations.geometric import functional as fgeometric

# Margin (pixels) around the inverse-mapped output box: bilinear reads floor(x) and floor(x)+1,
# and OpenCV's fixed-point coordinates may sit 1/32 pixel off the exact value.
_MARGIN = 2


def affine_matrix(params: Mapping[str, float | bool], shape: tuple[int, int]) -> np.ndarray:
    """The 2x3 forward matrix (source xy -> output xy) ``albumentations.Affine`` builds.

    Args:
        params: ``rotate`` and ``shear`` (degrees), ``scale`` as drawn by
            :meth:`vesselflow.vessel.data.augment.TrainAugment.sample_params`.
        shape: (H, W) of the image; rotation and scale are about its centre.
    """
    scale = float(params["scale"])
    m = fgeometric.create_affine_transformation_matrix(
        translate={"x": 0, "y": 0},
        # Affine negates the drawn x-shear (albumentations 2.x ``_get_shear_params``).
        shear={"x": -float(params["shear"]), "y": -0.0},
        scale={"x": scale, "y": scale},
        rotate=float(params["rotate"]),
        shift=fgeometric.center(shape),
    )
    return np.ascontiguousarray(m[:2], dtype=np.float64)


def warp_full(src: np.ndarray, matrix: np.ndarray, interpolation: int) -> np.ndarray:
    """Warp the whole array (H, W[, C]) into its own frame, constant-zero border."""
    h, w = src.shape[:2]
    out = cv2.warpAffine(np.ascontiguousarray(src), matrix, (w, h), flags=interpolation,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(src.shape)


def source_window(matrix: np.ndarray, top: int, left: int, out_h: int, out_w: int,
                  shape: tuple[int, int]) -> tuple[int, int, int, int]:
    """(y0, y1, x0, x1): the source box (clipped to ``shape``) output pixels
    [top, top + out_h) x [left, left + out_w) read from; empty when the box misses the image."""
    inv = cv2.invertAffineTransform(matrix)
    corners = np.array([[left, top, 1.0], [left + out_w - 1, top, 1.0],
                        [left, top + out_h - 1, 1.0], [left + out_w - 1, top + out_h - 1, 1.0]])
    src = corners @ inv.T  # (4, 2) source xy
    h, w = shape
    x0 = max(0, math.floor(src[:, 0].min()) - _MARGIN)
    x1 = min(w, math.floor(src[:, 0].max()) + _MARGIN + 1)
    y0 = max(0, math.floor(src[:, 1].min()) - _MARGIN)
    y1 = min(h, math.floor(src[:, 1].max()) + _MARGIN + 1)
    return y0, max(y0, y1), x0, max(x0, x1)


def warp_region(src: np.ndarray, matrix: np.ndarray, top: int, left: int, out_h: int,
                out_w: int, interpolation: int) -> np.ndarray:
    """Output pixels [top, top + out_h) x [left, left + out_w) of the full warp of ``src``.

    Args:
        src: (H, W) or (H, W, C) array; may be a strided view (e.g. flipped or transposed):
            only the source window is copied.
        matrix: 2x3 forward matrix in full-image coordinates (as for ``cv2.warpAffine``).
        top, left: Output-frame origin of the region (may lie partly outside the frame: the
            affine simply continues there, the caller decides what to keep).
        out_h, out_w: Region size.
        interpolation: ``cv2.INTER_LINEAR`` (image) or ``cv2.INTER_NEAREST`` (labels).

    Returns:
        (out_h, out_w[, C]) array of ``src``'s dtype; zero where the source is outside.
    """
    y0, y1, x0, x1 = source_window(matrix, top, left, out_h, out_w, src.shape[:2])
    out_shape = (out_h, out_w, *src.shape[2:])
    if y1 <= y0 or x1 <= x0:  # the region only sees the zero border
        return np.zeros(out_shape, dtype=src.dtype)
    window = np.ascontiguousarray(src[y0:y1, x0:x1])
    # p_region = A (s_window + (x0, y0)) + t - (left, top)
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)
    shifted[:, 2] -= (left, top)
    out = cv2.warpAffine(window, shifted, (out_w, out_h), flags=interpolation,
                         borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out.reshape(out_shape)
