"""The analysis scale: how many pixels of a photo the model looks at.

Scale 1 is the FOV brought to DRIVE's diameter (for the camera's ``--fov-degrees``,
:func:`vesselflow.vessel.preprocess.scale.target_fov_diameter`): the scale the models were
trained around. A high-resolution photo (HRF: 3504 px, a 2000 px FOV) holds vessels that vanish
at scale 1, so it is better analysed larger; a small photo has nothing more to give and keeps
scale 1. The FOV diameter alone is no ruler for vessel size, though: a 30-degree camera shows
the same vessels 1.5x wider per FOV diameter than a 45-degree one, and enlarging it pushes its
vessels past the widths the model learned. So ``auto`` judges by the vessels themselves:

1. ``pixel_limit`` = the photo's FOV diameter over scale 1's (at least 1): the largest scale
   its own pixels support (beyond it the image would only be interpolated);
2. when the photo has more pixels than scale 1 needs, a quick first pass at scale 1
   (:data:`FIRST_PASS_SAMPLES` samples) measures the main vessels' calibre
   (:func:`main_vessel_calibre`) and its ratio to the same measure on DRIVE's tracings
   (:data:`DRIVE_MAIN_CALIBRE_PX`);
3. the scale is the one that brings the main vessels to :data:`TARGET_VESSEL_WIDTH` times
   DRIVE's, within the pixel limit and the model's trained scale range, and never below
   scale 1 unless the vessels at scale 1 are already wider than the trained range allows.

A fixed scale (``1``, ``1.5``, ``2``) skips the first pass and is clamped by the photo's pixels
and the model's trained scale range, with a note saying so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AUTO = "auto"
SCALE_CHOICES = ("auto", "1", "1.5", "2")
"""What the CLI and the app offer (``auto`` the default)."""

TARGET_VESSEL_WIDTH = 1.25
"""``auto``'s main-vessel width, in multiples of DRIVE's at scale 1. Fixed on DRIVE's
validation photos enlarged 2x (``benchmarks/analysis_scale.py``, set ``drive-val-x2``), by
the rule written before the runs (results/training/README.md): the best fixed scale of
cnf-drive among 1, 1.25, 1.5, 1.75 and 2 (16 samples, mean F1 0.8087, 0.8135, 0.8120,
0.8120, 0.8120; the last two are clamped to the trained range's 1.5). The curve is flat
from 1.25 up, within noise of 4 images; 1 is lower."""

FIRST_PASS_SAMPLES = 4
"""Samples of ``auto``'s first pass at scale 1 (only the main vessels' calibre is read)."""

FIRST_PASS_THRESHOLD = 0.5
"""The first pass's mask threshold (a calibre, not a reported mask)."""

CALIBRE_PERCENTILE = 90.0
"""The main vessels: this percentile of the widths along the mask's skeleton."""

DRIVE_MAIN_CALIBRE_PX = 6.0
"""DRIVE's main-vessel calibre (px) at scale 1: :func:`main_vessel_calibre` of the first
observer's tracings of the 20 training-folder images, median over images (5.99; a test
recomputes it)."""

DEFAULT_TRAINED_RANGE = (0.8, 1.2)
"""The paper's scale augmentation: the trained range of a model that records none."""

TOLERANCE = 0.05
"""Scales within 5% of 1 are scale 1 (as the rescale's own tolerance)."""


def rule_settings() -> dict[str, float]:
    """``auto``'s constants, for the caches of benchmarks whose rows depend on them."""
    return {"target_vessel_width": TARGET_VESSEL_WIDTH, "first_pass_samples": FIRST_PASS_SAMPLES,
            "first_pass_threshold": FIRST_PASS_THRESHOLD,
            "calibre_percentile": CALIBRE_PERCENTILE,
            "drive_main_calibre_px": DRIVE_MAIN_CALIBRE_PX}


def settings_match(saved: dict[str, object], want: dict[str, object], rule_free: bool) -> bool:
    """Whether a cached result whose settings are ``saved`` (a mapping holding at least the
    keys of ``want``) serves ``want``. With ``rule_free`` (a DRIVE-sized photo analysed at
    scale 1: it never takes ``auto``'s first pass) the scale rule's constants
    (``want["scale_rule"]``, :func:`rule_settings`) do not matter."""
    return all(saved.get(k) == v for k, v in want.items()
               if not (rule_free and k == "scale_rule"))


def parse_scale(value: str | float) -> str | float:
    """``"auto"`` or a positive number (``"1.5"`` -> 1.5).

    Raises:
        ValueError: anything else, or a scale outside [0.25, 4].
    """
    if isinstance(value, str) and value.strip().lower() == AUTO:
        return AUTO
    try:
        scale = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"analysis scale must be 'auto' or a number, got {value!r}") from None
    if not 0.25 <= scale <= 4:
        raise ValueError(f"analysis scale must be in [0.25, 4], got {scale:g}")
    return scale


def distance_transform(m: np.ndarray) -> np.ndarray:
    """Exact Euclidean distance of every pixel of ``m`` to the nearest background pixel.

    OpenCV's (installed with albumentations; ~20x faster than scipy's, which also builds
    the feature transform); scipy's when OpenCV is missing. Outside the image counts as
    background, as in OpenCV.
    """
    try:
        import cv2
    except ImportError:
        from scipy import ndimage as ndi

        return ndi.distance_transform_edt(np.pad(m, 1))[1:-1, 1:-1]
    return cv2.distanceTransform(m.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def vessel_widths(mask: np.ndarray, skeleton: np.ndarray) -> np.ndarray:
    """Vessel width (px) at each skeleton pixel of a binary (H, W) mask: the pixel's distance
    to the background plus the largest such distance of its 4-neighbours off the skeleton.

    For a bar 2k + 1 px wide the ridge pixel is k + 1 from the background and its neighbours
    k; for 2k px the ridge falls between two pixels of distance k each: the sum is the width
    in both cases. Returns a float64 array with one width per skeleton pixel. The one width
    measure of the package: the biomarkers' calibre and ``auto``'s main-vessel calibre.
    """
    edt = np.pad(distance_transform(np.asarray(mask, bool)), 1)
    on = np.pad(np.asarray(skeleton, bool), 1)
    ys, xs = np.nonzero(on)
    across = np.zeros(len(ys))
    for dy, dx in ((0, 1), (1, 0), (0, -1), (-1, 0)):
        across = np.maximum(across, np.where(on[ys + dy, xs + dx], 0.0, edt[ys + dy, xs + dx]))
    return edt[ys, xs] + across


def main_vessel_calibre(mask: np.ndarray, skeleton: np.ndarray | None = None,
                        percentile: float = CALIBRE_PERCENTILE) -> float | None:
    """The main vessels' calibre (px) of a binary (H, W) mask: ``percentile`` of the widths
    along its skeleton; None for a mask with too little skeleton (< 50 px) to say."""
    from skimage.morphology import skeletonize

    m = np.asarray(mask, bool)
    sk = skeletonize(m) if skeleton is None else np.asarray(skeleton, bool)
    if np.count_nonzero(sk) < 50:
        return None
    return float(np.percentile(vessel_widths(m, sk), percentile))


@dataclass(frozen=True)
class ScaleChoice:
    """The analysis scale chosen for one photo, and why.

    Attributes:
        requested: ``"auto"`` or the fixed scale asked for.
        scale: the scale used (1 = FOV at DRIVE's diameter for the camera's field).
        pixel_limit: the largest scale the photo's own pixels support (>= 1).
        calibre_ratio: main-vessel calibre at scale 1 over DRIVE's (``auto``'s first pass),
            or None when not measured.
        note: a sentence when the scale differs from what was asked (clamped), else "".
    """

    requested: str | float
    scale: float
    pixel_limit: float
    trained_range: tuple[float, float]
    calibre_ratio: float | None = None
    note: str = ""

    def to_dict(self) -> dict[str, object]:
        return {"requested": self.requested, "scale": round(self.scale, 4),
                "pixel_limit": round(self.pixel_limit, 4),
                "trained_range": list(self.trained_range),
                "calibre_ratio": None if self.calibre_ratio is None
                else round(self.calibre_ratio, 4), "note": self.note}


def trained_range(config: object) -> tuple[float, float]:
    """The scale range a model was trained on (``VesselConfig.scale_range``), else the
    paper's augmentation range."""
    rng = getattr(config, "scale_range", None)
    return (float(rng[0]), float(rng[1])) if rng else DEFAULT_TRAINED_RANGE


def pixel_limit(fov_diameter: float, target_diameter: float) -> float:
    """The largest analysis scale a photo's own pixels support: its FOV diameter over scale
    1's target diameter, and never below 1 (a small photo is enlarged to scale 1, as ever)."""
    return max(1.0, float(fov_diameter) / float(target_diameter))


def needs_first_pass(requested: str | float, limit: float) -> bool:
    """Whether ``auto`` must measure the vessels: only a photo with pixels to spare."""
    return requested == AUTO and limit > 1 + TOLERANCE


def choose_scale(requested: str | float, *, limit: float,
                 trained_range: tuple[float, float] = DEFAULT_TRAINED_RANGE,
                 calibre_ratio: float | None = None,
                 target_width: float = TARGET_VESSEL_WIDTH) -> ScaleChoice:
    """The analysis scale for a photo whose pixels allow up to ``limit``.

    ``auto``: ``target_width / calibre_ratio`` (the main vessels at ``target_width`` times
    DRIVE's), at most ``limit`` and the trained range's top, at least 1 unless the vessels at
    scale 1 already exceed the trained range (then brought to its top, but not below its
    bottom). Without
    a ratio (no first pass: a small photo, or a map with too few vessels to measure) it is
    DRIVE's (1). A fixed scale is clamped to ``limit`` and to the trained range's top.
    """
    lo, hi = (float(trained_range[0]), float(trained_range[1]))
    if requested == AUTO:
        ratio = 1.0 if calibre_ratio is None or calibre_ratio <= 0 else float(calibre_ratio)
        if limit <= 1 + TOLERANCE and ratio * 1.0 <= hi:
            return ScaleChoice(AUTO, 1.0, limit, (lo, hi), calibre_ratio)
        wanted = min(target_width, hi) / ratio
        # never past the photo's pixels nor the largest scale the model was trained at; below
        # scale 1 only to bring vessels wider than the trained range back into it
        floor = min(1.0, max(lo, hi / ratio))
        scale = max(min(wanted, limit, hi), floor)
        return ScaleChoice(AUTO, 1.0 if abs(scale - 1) <= TOLERANCE else scale, limit,
                           (lo, hi), calibre_ratio)
    asked = float(requested)
    scale, notes = asked, []
    if scale > limit + 1e-9:
        scale = limit
        notes.append(f"the photo's pixels support at most {limit:.2f}")
    if scale > hi + 1e-9:
        scale = hi
        notes.append(f"the model was trained at scales {lo:g}-{hi:g}")
    note = (f"analysis scale {asked:g} clamped to {scale:.2f}: " + "; ".join(notes)) if notes \
        else ""
    return ScaleChoice(asked, scale, limit, (lo, hi), None, note)
