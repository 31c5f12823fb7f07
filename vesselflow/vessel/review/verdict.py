"""Per-image quality assessment (issue 14): is this vessel map one a person should check?

Two groups of features, all measured at the analysis scale (the image resized to DRIVE's FOV
diameter), so that they compare across cameras:

* **input** (:func:`input_features`, on the photo before any input normalisation): FOV
  roundness; brightness and contrast of the luminance inside the FOV; colour (chromaticity)
  and how grey the photo is; fine-scale noise and vessel-scale detail of the green channel,
  each relative to its contrast (noise and dithering raise the first, blur lowers the second).
* **output** (:func:`output_features`, on the maps): vessel density inside the FOV;
  fragmentation (connected components of the mask per 1000 px of its skeleton); and the mean
  uncertainty *per unit of density*, which is too low for a confidently empty map and too
  high for a confused one. An almost empty map has almost no uncertainty, so uncertainty alone
  cannot flag it (the old banner's blind spot).

A model's :class:`Reference` holds, per feature, the range seen on its *good* calibration
maps (F1 >= 0.7 against the tracing): DRIVE's training and validation images, clean and under
the corruptions of :mod:`vesselflow.vessel.data.corruptions`
(:mod:`vesselflow.vessel.review.calibration` computes it when a model is shipped and stores it
as ``quality.json`` next to the weights). A feature outside its range is a *finding*, with a
reason code and a sentence a person can act on; any finding makes the verdict ``review``.
An image that cannot be analysed at all (no FOV, a FOV under :data:`MIN_FOV_DIAMETER`) is an
error, never a verdict.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

MIN_FOV_DIAMETER = 150
"""Smallest FOV diameter (px, in the input image) analysed: a 150 px FOV is enlarged ~3.6x to
DRIVE's 538 px, beyond which vessels are a few blurred pixels. Smaller ones are refused."""

REFERENCE_FILE = "quality.json"
GOOD_F1 = 0.7
"""A calibration map is *good* at F1 >= 0.7: the ranges are those of good maps."""

_LUMA = np.array([0.299, 0.587, 0.114], np.float32)

# code -> sentence; {v} is the value, {lo}/{hi} the model's range.
MESSAGES = {
    "fov_roundness_low": "the field of view is not round ({v:.2f} of a disc, usually "
                         "{lo:.2f} or more): the photo may be cropped, not a fundus photo, or "
                         "the FOV was detected wrongly",
    "brightness_low": "the photo is much darker than the images this model handles well "
                      "(brightness {v:.2f}, usual {lo:.2f}-{hi:.2f}): check the exposure",
    "brightness_high": "the photo is much brighter than the images this model handles well "
                       "(brightness {v:.2f}, usual {lo:.2f}-{hi:.2f}): check the exposure",
    "contrast_low": "the photo has very low contrast ({v:.3f}, usual {lo:.3f}-{hi:.3f}): "
                    "it may be hazy, over-exposed or out of focus",
    "contrast_high": "the photo has unusually high contrast ({v:.3f}, usual "
                     "{lo:.3f}-{hi:.3f})",
    "red_low": "the colour balance is unusual (too little red: {v:.2f}, usual "
               "{lo:.2f}-{hi:.2f})",
    "red_high": "the colour balance is unusual (too much red: {v:.2f}, usual "
                "{lo:.2f}-{hi:.2f})",
    "green_low": "the colour balance is unusual (too little green: {v:.2f}, usual "
                 "{lo:.2f}-{hi:.2f}): a strong colour cast",
    "green_high": "the colour balance is unusual (too much green: {v:.2f}, usual "
                  "{lo:.2f}-{hi:.2f}): a strong colour cast",
    "colourfulness_low": "the photo looks greyscale or washed out (colour {v:.3f}, usual "
                         "{lo:.3f}-{hi:.3f}); the model was trained on colour photos",
    "noise_high": "the photo is noisy or dithered (fine-scale noise {v:.2f} of its contrast, "
                  "usual up to {hi:.2f}): use the original, uncompressed file if there is one",
    "detail_low": "the photo is blurred (vessel-scale detail {v:.2f} of its contrast, usual "
                  "{lo:.2f} or more): check the focus",
    "density_low": "the map finds very few vessels ({v:.1%} of the FOV, usual "
                   "{lo:.1%}-{hi:.1%}): it has probably failed",
    "density_high": "the map marks far more vessel than usual ({v:.1%} of the FOV, usual "
                    "{lo:.1%}-{hi:.1%}): it has probably failed",
    "fragmentation_high": "the map is fragmented ({v:.1f} pieces per 1000 px of vessel, usual "
                          "up to {hi:.1f}): vessels are broken up or speckled",
    "uncertainty_low": "the model is more certain than usual for a map this dense "
                       "({v:.2f} per unit density, usual {lo:.2f}-{hi:.2f}): a confident "
                       "failure is possible",
    "uncertainty_high": "the model is unusually unsure for a map this dense ({v:.2f} per "
                        "unit density, usual {lo:.2f}-{hi:.2f})",
}
ONE_SIDED = {"fov_roundness": "low", "noise": "high", "detail": "low", "colourfulness": "low",
             "fragmentation": "high"}
"""Features flagged on one side only: the other side is harmless (a FOV cannot be rounder than
a disc; a smooth, sharp, colourful photo or a well-connected map is no reason to doubt it).
Chosen a priori, before any evaluation of the flags."""
FEATURES = ("fov_roundness", "brightness", "contrast", "red", "green", "colourfulness",
            "noise", "detail", "density", "fragmentation", "uncertainty")


def fov_roundness(fov: np.ndarray) -> float:
    """IoU of the FOV with the disc its width implies, cut to the FOV's rows (0-1).

    Fundus FOVs are discs, often cut at the top and bottom by the sensor (HRF); a disc of the
    FOV's horizontal extent, centred on its bounding box and cut to the same rows, covers
    them. A full rectangle scores pi/4 ~ 0.79.
    """
    fov = np.asarray(fov, bool)
    rows, cols = np.flatnonzero(fov.any(1)), np.flatnonzero(fov.any(0))
    if rows.size == 0:
        return 0.0
    r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    radius = (c1 - c0) / 2
    cy, cx = (r0 + r1 - 1) / 2, (c0 + c1 - 1) / 2
    yy, xx = np.ogrid[r0:r1, c0:c1]
    disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= radius**2
    box = fov[r0:r1, c0:c1]
    union = np.count_nonzero(disc | box)
    return float(np.count_nonzero(disc & box) / union) if union else 0.0


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


def output_features(mean: np.ndarray, std: np.ndarray, mask: np.ndarray, fov: np.ndarray
                    ) -> dict[str, float]:
    """Map features: density, fragmentation, uncertainty per unit density (all in the FOV)."""
    from skimage.measure import label
    from skimage.morphology import skeletonize

    fov = np.asarray(fov, bool)
    mask = np.asarray(mask, bool) & fov
    density = float(mask[fov].mean()) if fov.any() else 0.0
    skeleton = int(np.count_nonzero(skeletonize(mask))) if mask.any() else 0
    pieces = int(label(mask, connectivity=2).max()) if mask.any() else 0
    uncertainty = float(np.asarray(std)[fov].mean()) if fov.any() else 0.0
    return {
        "density": density,
        # An empty map has no skeleton: it counts as one piece per px (caught by density).
        "fragmentation": 1000.0 * pieces / skeleton if skeleton else 1000.0,
        "uncertainty": uncertainty / max(density, 1e-3),
    }


@dataclass
class Finding:
    """One reason for review: code, sentence, the value and the model's range."""

    code: str
    message: str
    value: float
    lo: float
    hi: float


@dataclass
class Verdict:
    """``ok`` or ``review`` for one image, with the findings behind it."""

    findings: list[Finding] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)

    @property
    def review(self) -> bool:
        return bool(self.findings)

    @property
    def status(self) -> str:
        return "review" if self.review else "ok"

    @property
    def codes(self) -> str:
        """Reason codes joined by ``;`` ("" when ok): the ``reasons`` column."""
        return ";".join(f.code for f in self.findings)

    def sentences(self) -> list[str]:
        return [f.message for f in self.findings]

    def to_dict(self) -> dict[str, Any]:
        return {"review": self.status, "reasons": [f.code for f in self.findings],
                "messages": self.sentences(),
                "features": {k: round(v, 6) for k, v in self.features.items()}}


@dataclass
class Reference:
    """Per-feature ranges ``{name: (lo, hi)}`` of a model's good calibration maps."""

    ranges: dict[str, tuple[float, float]]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str | Path) -> Reference | None:
        """The reference stored in a model folder, or None if it has none."""
        path = Path(folder) / REFERENCE_FILE
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
            ranges = {k: (float(v[0]), float(v[1])) for k, v in d["ranges"].items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{path}: not a quality reference ({e})") from None
        unknown = set(ranges) - set(FEATURES)
        if unknown:
            raise ValueError(f"{path}: unknown quality features {sorted(unknown)}")
        return cls(ranges, {k: v for k, v in d.items() if k != "ranges"})

    def to_dict(self) -> dict[str, Any]:
        return {"ranges": {k: [lo, hi] for k, (lo, hi) in self.ranges.items()}, **self.meta}

    def assess(self, features: dict[str, float]) -> Verdict:
        """Findings for every feature outside its range (features without a range pass)."""
        findings = []
        for name in FEATURES:
            if name not in features or name not in self.ranges:
                continue
            v, (lo, hi) = features[name], self.ranges[name]
            side = "low" if v < lo else "high" if v > hi else None
            if side is None or ONE_SIDED.get(name, side) != side:
                continue
            code = f"{name}_{side}"
            findings.append(Finding(code, MESSAGES[code].format(v=v, lo=lo, hi=hi), v, lo, hi))
        return Verdict(findings, dict(features))


def ranges_from(rows: list[dict[str, float]], margin: float = 0.05
                ) -> dict[str, tuple[float, float]]:
    """Per feature, [min, max] over ``rows`` widened by ``margin`` of the span each side."""
    out = {}
    for name in FEATURES:
        vals = np.array([r[name] for r in rows if name in r], float)
        if vals.size == 0:
            continue
        lo, hi = float(vals.min()), float(vals.max())
        pad = margin * (hi - lo)
        out[name] = (lo - pad, hi + pad)
    return out


def assess_segmentation(seg: Any, mask: np.ndarray, reference: Reference | None) -> Verdict:
    """The verdict for a :class:`~vesselflow.vessel.analysis.pipeline.Segmentation` and its mask at
    the analysis scale; with no reference, a ``review`` with reason ``no_reference``."""
    feats = {**(seg.input_quality or {}), **output_features(seg.mean, seg.std, mask, seg.fov)}
    if reference is None:
        return Verdict([Finding("no_reference", "this model has no quality reference, so "
                                "its maps cannot be checked: compute one with python -m "
                                "vesselflow.vessel.review.calibration", float("nan"),
                                float("nan"), float("nan"))], feats)
    return reference.assess(feats)
