"""Narrow-field views of labelled fundus photos: how a 30-degree camera sees the same retina.

A 30-degree camera images the central part of what a 45-degree camera sees, at more pixels
per degree: its vessels are wider *relative to its FOV diameter*. :func:`narrow_field_view`
makes such a view from a wide-field photo without resizing it: the central disc whose diameter
is ``fraction`` (two thirds: 30/45) of the photo's FOV diameter, black outside, cropped to its
bounding square. The vessels keep their pixel widths, the FOV shrinks to two thirds, so a rule
that judges scale by the FOV diameter alone would enlarge the view 1.5x past the vessel size
the model learned; one that judges by vessel size does not.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

NARROW_FRACTION = 2.0 / 3.0
"""30 / 45: a 30-degree field inside a 45-degree one."""


@dataclass(frozen=True)
class NarrowView:
    """A narrow-field view (all arrays cropped to the view's bounding square, not resized).

    Attributes:
        image: (h, w, 3) float32, black outside the view's disc.
        label: (h, w) bool tracing inside the view's FOV; label2 likewise or None.
        fov: (h, w) bool: the view's disc intersected with the photo's FOV.
        box: (top, left, bottom, right) of the crop in the photo.
    """

    image: np.ndarray
    label: np.ndarray
    fov: np.ndarray
    label2: np.ndarray | None
    box: tuple[int, int, int, int]


def narrow_field_view(image: np.ndarray, label: np.ndarray, fov: np.ndarray,
                      label2: np.ndarray | None = None, *,
                      fraction: float = NARROW_FRACTION) -> NarrowView:
    """The central ``fraction`` of a photo's FOV, as a camera with that narrower field sees it.

    The disc is centred on the FOV's circle fit (:func:`~vesselflow.vessel.preprocess.fov.
    fov_circle`), ``fraction`` times its diameter across; everything outside it is black and
    outside the FOV.

    Args:
        image: (H, W, 3) float in [0, 1]; label, fov (and label2): (H, W) bool.

    Raises:
        ValueError: ``fraction`` outside (0, 1], mismatched shapes or an empty FOV.
    """
    from vesselflow.vessel.preprocess.fov import fov_circle

    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    fov = np.asarray(fov, bool)
    shapes = {np.shape(image)[:2], np.shape(label), fov.shape}
    if label2 is not None:
        shapes.add(np.shape(label2))
    if len(shapes) != 1:
        raise ValueError(f"image, label and FOV sizes differ: {sorted(shapes)}")
    cy, cx, diameter = fov_circle(fov)
    r = fraction * diameter / 2
    h, w = fov.shape
    top, left = max(0, int(np.floor(cy - r))), max(0, int(np.floor(cx - r)))
    bottom, right = min(h, int(np.ceil(cy + r)) + 1), min(w, int(np.ceil(cx + r)) + 1)
    yy, xx = np.ogrid[top:bottom, left:right]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
    view_fov = disc & fov[top:bottom, left:right]
    crop = np.asarray(image, np.float32)[top:bottom, left:right] * view_fov[..., None]
    lab = np.asarray(label, bool)[top:bottom, left:right] & view_fov
    lab2 = None if label2 is None else np.asarray(label2, bool)[top:bottom, left:right] & view_fov
    return NarrowView(crop.astype(np.float32), lab, view_fov, lab2, (top, left, bottom, right))
