"""Per-image review verdict: is this vessel map one a person should check?

The verdict compares the features of :mod:`vesselflow.vessel.review.features` (the photo's and
the map's, at the analysis scale) with a model's :class:`ReviewCalibration`: per feature, the
range seen on its *good* calibration maps (F1 >= 0.7 against the tracing): DRIVE's training
and validation images, clean and under the corruptions of
:mod:`vesselflow.vessel.data.corruptions` (:mod:`vesselflow.vessel.evaluation.review_calibration`
computes it when a model is shipped and stores it as ``quality.json`` next to the weights). A
feature outside its range is a *finding*, with a reason code and a sentence a person can act
on; any finding makes the verdict ``review``. A model without a calibration cannot vouch for
its maps: every verdict is ``review`` with reason ``no_calibration``. An image that cannot be
analysed at all (no FOV, a FOV under
:data:`~vesselflow.vessel.preprocess.fov.MIN_FOV_DIAMETER`) is an error, never a verdict.

The verdict of an image is computed once, in its per-image summary
(:func:`vesselflow.vessel.analysis.summary.summarise`), which segment, evaluate, the benchmarks
and the app all read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vesselflow.vessel.review.features import FEATURES

CALIBRATION_FILE = "quality.json"
"""A model's review calibration, next to its weights (the name shipped weights carry)."""
GOOD_F1 = 0.7
"""A calibration map is *good* at F1 >= 0.7: the ranges are those of good maps."""
CALIBRATE_COMMAND = "vesselflow calibrate-review --model MODEL --drive DRIVE"

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
    "no_calibration": "this model has no review calibration, so its maps cannot be checked: "
                      f"compute one with {CALIBRATE_COMMAND}",
}
ONE_SIDED = {"fov_roundness": "low", "noise": "high", "detail": "low", "colourfulness": "low",
             "fragmentation": "high"}
"""Features flagged on one side only: the other side is harmless (a FOV cannot be rounder than
a disc; a smooth, sharp, colourful photo or a well-connected map is no reason to doubt it).
Chosen a priori, before any evaluation of the flags."""


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
class ReviewCalibration:
    """Per-feature ranges ``{name: (lo, hi)}`` of a model's good calibration maps."""

    ranges: dict[str, tuple[float, float]]
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, folder: str | Path) -> ReviewCalibration | None:
        """The calibration stored in a model folder, or None if it has none."""
        path = Path(folder) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
            ranges = {k: (float(v[0]), float(v[1])) for k, v in d["ranges"].items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError) as e:
            raise ValueError(f"{path}: not a review calibration ({e})") from None
        unknown = set(ranges) - set(FEATURES)
        if unknown:
            raise ValueError(f"{path}: unknown review features {sorted(unknown)}")
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


def assess(features: dict[str, float], calibration: ReviewCalibration | None) -> Verdict:
    """The verdict on an image's features; with no calibration, ``review`` with reason
    ``no_calibration``."""
    if calibration is None:
        nan = float("nan")
        return Verdict([Finding("no_calibration", MESSAGES["no_calibration"], nan, nan, nan)],
                       dict(features))
    return calibration.assess(features)
