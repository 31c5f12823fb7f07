"""Bring a user's fundus image to DRIVE's scale, and results back to the user's size.

A model trained on DRIVE has learned vessel widths in DRIVE pixels, so a photograph from
another camera (e.g. 3000 px wide, or a 300 px thumbnail) should be resized so that its field
of view (FOV) has DRIVE's diameter before inference. The FOV diameter is the scale-invariant
quantity: image sizes differ between cameras, and the black surround varies, but the retina
seen through the FOV is comparable.

Approach:

* :func:`vesselflow.vessel.preprocess.fov.fov_diameter` fits a circle to the FOV boundary
  (the true disc diameter even when a camera crops the top and bottom of the disc).
* :data:`DRIVE_FOV_DIAMETER` is that diameter averaged over DRIVE's 40 official masks
  (537.7 px; per image 534.6-539.2).
* :func:`rescale_to_drive` resizes image (bilinear, anti-aliased when shrinking) and FOV
  (nearest) by ``DRIVE_FOV_DIAMETER / diameter``; within ``tolerance`` (5%) nothing is resized,
  because a resampling costs sharpness and vessel widths vary more than that between DRIVE
  images anyway.
* :func:`restore_size` resizes a result map back to the original (H, W) recorded in
  :class:`ScaleInfo`: bilinear for probability maps, ``order=0`` (nearest) for masks and
  samples. Callers use it through
  :meth:`vesselflow.vessel.analysis.pipeline.Segmentation.at_original_size`.

The rescale and the bilinear map-back use ``skimage.transform.resize``. The nearest-neighbour
map-back picks pixels by index (:func:`nearest_indices`): the pixels ``resize(order=0)``
picks (pixel centres aligned) but ~10x faster, which matters for a stack of samples of a
3504 x 2336 photograph. The two differ only at exact ties, an output pixel centre halfway
between two input pixels (possible when shrinking back by certain ratios), where the index
takes the later pixel and skimage's rounding the earlier one; both are nearest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from skimage.transform import resize

from vesselflow.vessel.preprocess.fov import fov_diameter

DRIVE_FOV_DIAMETER = 537.7
"""Mean FOV diameter (pixels) of DRIVE's 40 official masks, by circle fit."""

DEFAULT_TOLERANCE = 0.05

DRIVE_FOV_DEGREES = 45.0
"""Angular field of view of DRIVE's camera (Canon CR5 3CCD), in degrees."""


def target_fov_diameter(fov_degrees: float = DRIVE_FOV_DEGREES) -> float:
    """FOV diameter (px) at which an image from a ``fov_degrees`` camera matches DRIVE's scale.

    The model learned vessel widths in DRIVE pixels, i.e. at DRIVE's pixels per degree of
    retina: ``DRIVE_FOV_DIAMETER / 45`` px/deg. A camera whose FOV disc spans ``fov_degrees``
    and ``D`` pixels has ``D / fov_degrees`` px/deg; the same retina at the same ``D`` is
    magnified by ``45 / fov_degrees`` (a 30-degree photo shows vessels 1.5x wider than a
    45-degree one). Matching px/deg gives the target diameter

        D_target = DRIVE_FOV_DIAMETER * fov_degrees / 45,

    so the rescale factor is ``D_target / D`` (first order: retinal distance proportional to
    the viewing angle, which holds to a few percent within 50 degrees). At 45 degrees this is
    DRIVE's 537.7 px; at 30 degrees 358.5 px; at 60 degrees 716.9 px.

    Raises:
        ValueError: ``fov_degrees`` outside (0, 180).
    """
    if not 0 < fov_degrees < 180:
        raise ValueError(f"fov_degrees must be in (0, 180) degrees, got {fov_degrees}")
    return DRIVE_FOV_DIAMETER * float(fov_degrees) / DRIVE_FOV_DEGREES


@dataclass(frozen=True)
class ScaleInfo:
    """How :func:`rescale_to_drive` changed an image.

    Attributes:
        original_shape: (H, W) before resizing.
        scaled_shape: (H', W') after resizing (equal to original_shape if not resized).
        factor: Linear scale applied (H' ~ factor * H); 1.0 if not resized.
        fov_diameter: FOV diameter measured on the original, in pixels.
    """

    original_shape: tuple[int, int]
    scaled_shape: tuple[int, int]
    factor: float
    fov_diameter: float

    @property
    def resized(self) -> bool:
        """Whether the image was actually resized."""
        return self.scaled_shape != self.original_shape


def rescale_to_drive(
    image: np.ndarray,
    fov: np.ndarray,
    *,
    target_diameter: float = DRIVE_FOV_DIAMETER,
    tolerance: float = DEFAULT_TOLERANCE,
) -> tuple[np.ndarray, np.ndarray, ScaleInfo]:
    """Resize an image and its FOV so the FOV diameter matches DRIVE's.

    Args:
        image: (H, W, C) or (H, W) float image.
        fov: bool (H, W) FOV mask (e.g. from :func:`vesselflow.vessel.preprocess.fov.detect_fov`).
        target_diameter: Diameter to match, in pixels.
        tolerance: Relative difference below which nothing is resized.

    Returns:
        (image (H', W', C) float32, fov (H', W') bool, ScaleInfo).
    """
    fov = np.asarray(fov, dtype=bool)
    h, w = fov.shape
    if tuple(image.shape[:2]) != (h, w):
        raise ValueError(f"image {image.shape[:2]} and FOV {fov.shape} sizes differ")
    diameter = fov_diameter(fov)
    factor = target_diameter / diameter
    if abs(factor - 1.0) <= tolerance:
        info = ScaleInfo((h, w), (h, w), 1.0, diameter)
        return np.asarray(image, dtype=np.float32), fov, info
    new_shape = (max(1, round(h * factor)), max(1, round(w * factor)))
    out = resize(
        np.asarray(image, dtype=np.float32),
        new_shape + tuple(image.shape[2:]),
        order=1,
        anti_aliasing=factor < 1,
        preserve_range=True,
    ).astype(np.float32)
    fov_out = resize(fov, new_shape, order=0, anti_aliasing=False).astype(bool)
    return out, fov_out, ScaleInfo((h, w), new_shape, float(factor), diameter)


def nearest_indices(n_out: int, n_in: int) -> np.ndarray:
    """For each of ``n_out`` pixels along an axis, the input pixel (of ``n_in``) nearest its
    centre when the axis is resized: ``floor((i + 0.5) * n_in / n_out)`` (intp, (n_out,))."""
    return np.minimum(((np.arange(n_out) + 0.5) * n_in / n_out).astype(np.intp), n_in - 1)


def restore_size(map_2d: np.ndarray, info: ScaleInfo, *, order: int = 1) -> np.ndarray:
    """Map a result computed on the rescaled image back to the original size.

    Args:
        map_2d: (H', W') result, e.g. a vessel probability map or a binary mask.
        info: The ScaleInfo returned by :func:`rescale_to_drive`.
        order: 1 (bilinear, anti-aliased when shrinking) for probability maps; 0 (nearest,
            by :func:`nearest_indices`) for masks, labels and samples.

    Returns:
        (H, W) array in the original size (``map_2d`` itself when nothing was resized), same
        dtype as ``map_2d`` (float32 for order 1 on float input).
    """
    map_2d = np.asarray(map_2d)
    if tuple(map_2d.shape[:2]) != tuple(info.scaled_shape):
        raise ValueError(
            f"map has size {map_2d.shape[:2]}, expected the rescaled size {info.scaled_shape}"
        )
    if not info.resized:
        return map_2d
    if order == 0:
        (h, w), (big_h, big_w) = info.scaled_shape, info.original_shape
        rows = np.take(map_2d, nearest_indices(big_h, h), axis=0)
        return np.take(rows, nearest_indices(big_w, w), axis=1)
    if order != 1:
        raise ValueError(f"order must be 0 (nearest) or 1 (bilinear), got {order}")
    shrinking = info.original_shape[0] < info.scaled_shape[0]
    out = resize(
        map_2d,
        tuple(info.original_shape) + tuple(map_2d.shape[2:]),
        order=1,
        anti_aliasing=shrinking,
        preserve_range=True,
    )
    if map_2d.dtype == bool:
        return out.astype(bool)
    return out.astype(np.result_type(map_2d.dtype, np.float32))
