"""Per-image review verdict: is this vessel map one a person should check?

The verdict rests on the map's **predicted F1** (its expected agreement with a human grader,
with a 90% interval; :mod:`vesselflow.vessel.review.predictor`), computed from the review
features of :mod:`vesselflow.vessel.review.features` with the model's
:class:`ReviewCalibration`, which :mod:`vesselflow.vessel.evaluation.review_calibration` fits on
DRIVE's training and validation images under graded degradations and stores as
``quality.json`` next to the weights, with the weights' sha256.

* ``review``: the predicted F1 is below the calibration's threshold (chosen on calibration
  data only), the map is empty (:data:`MIN_DENSITY`), or no fundus field of view was found;
  the reasons say why in plain words.
* ``ok``: otherwise. The photo's colour, brightness and contrast are never a reason, nor is a
  FOV cut by the frame.
* ``not assessed``: the model has no calibration (or one made for other weights); the message
  gives the command that makes one. Never ``review`` by default.

With one sample the samples' agreement cannot be measured: the prediction then comes from the
calibration's second fit, without the agreement features, and the verdict says so.

The verdict of an image is computed once, in its per-image summary
(:func:`vesselflow.vessel.analysis.summary.summarise`), which segment, evaluate, the benchmarks
and the app all read.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vesselflow.vessel.review.features import AGREEMENT_FEATURES
from vesselflow.vessel.review.predictor import F1Model

CALIBRATION_FILE = "quality.json"
"""A model's review calibration, next to its weights (the name shipped weights carry)."""
CALIBRATION_VERSION = 2
GOOD_F1, BAD_F1 = 0.7, 0.6
"""Good maps: F1 >= 0.7 (should be ``ok``); failed maps: F1 < 0.6 (should be ``review``)."""
MIN_FOV_ROUNDNESS = 0.9
"""Below this (:func:`~vesselflow.vessel.preprocess.fov.fov_roundness`; a full rectangle
scores 0.79, fundus photos cut by the frame about 0.97 or more) no fundus field of view was
found. Fixed a priori."""
MIN_DENSITY = 0.005
"""A map marking less than 0.5% of its FOV as vessel is *empty* (the project's definition,
:data:`vesselflow.vessel.evaluation.labelled.EMPTY_FRACTION`; a retina has about 12%): it has
failed whatever the prediction says, which cannot extrapolate that far below the calibration's
emptiest maps."""
CALIBRATE_COMMAND = "vesselflow calibrate-review --model MODEL --drive DRIVE"

# term -> what a low prediction because of it means, in plain words
WHY = {
    "agreement": "the model's samples disagree with each other",
    "mask_agreement": "the samples disagree with the final map",
    "density_gap": "the map marks far fewer or far more vessels than a retina has",
    "log_density": "the map marks an unusual amount of vessel",
    "log_fragmentation": "the map is broken into many small pieces",
    "log_noise": "the photo is noisy or grainy relative to its contrast",
    "detail": "the photo shows little fine detail (blurred, hazy or out of focus)",
    "clipped": "parts of the photo are clipped to black or white",
}


@dataclass
class Verdict:
    """``ok``, ``review`` or ``not assessed`` for one image, with its predicted F1."""

    status: str
    codes_list: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    features: dict[str, float] = field(default_factory=dict)
    predicted_f1: float | None = None
    interval: tuple[float, float] | None = None
    threshold: float | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def review(self) -> bool:
        return self.status == "review"

    @property
    def codes(self) -> str:
        """Reason codes joined by ``;`` ("" when ok): the ``reasons`` column."""
        return ";".join(self.codes_list)

    def sentences(self) -> list[str]:
        """The reasons (and notes) in plain words."""
        return [*self.messages, *self.notes]

    def expected(self) -> str:
        """"expected agreement with a human grader about 0.78 (0.74-0.81)" or ""."""
        if self.predicted_f1 is None or self.interval is None:
            return ""
        return (f"expected agreement with a human grader (F1) about {self.predicted_f1:.2f} "
                f"({self.interval[0]:.2f}-{self.interval[1]:.2f})")

    def row(self) -> dict[str, Any]:
        """The verdict's columns of metrics.csv / per_image.csv."""
        p, i = self.predicted_f1, self.interval
        return {"review": self.status, "reasons": self.codes,
                "predicted_f1": None if p is None else round(p, 4),
                "predicted_f1_low": None if i is None else round(i[0], 4),
                "predicted_f1_high": None if i is None else round(i[1], 4)}

    def to_dict(self) -> dict[str, Any]:
        return {**self.row(), "reasons": list(self.codes_list),
                "messages": self.sentences(), "threshold": self.threshold,
                "features": {k: round(v, 6) for k, v in self.features.items()}}


@dataclass
class ReviewCalibration:
    """A model's fitted predictors (with and without the agreement features) and threshold.

    ``stale``: why it cannot be used with these weights ("" when it can)."""

    full: F1Model | None
    no_agreement: F1Model | None
    threshold: float
    meta: dict[str, Any] = field(default_factory=dict)
    stale: str = ""

    @classmethod
    def load(cls, folder: str | Path, sha256: str | None = None) -> ReviewCalibration | None:
        """The calibration stored in a model folder, or None if it has none. With ``sha256``
        (the weights'), a calibration made for other weights, or by an older vesselflow, comes
        back ``stale``: its verdicts are ``not assessed``."""
        path = Path(folder) / CALIBRATION_FILE
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise ValueError(f"{path}: not a review calibration ({e})") from None
        if not isinstance(d, dict) or d.get("version") != CALIBRATION_VERSION:
            return cls(None, None, 0.0, {}, "it was made by an older vesselflow")
        try:
            cal = cls(F1Model.from_dict(d["full"]), F1Model.from_dict(d["no_agreement"]),
                      float(d["threshold"]), {k: v for k, v in d.items()
                                              if k not in ("full", "no_agreement", "threshold")})
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise ValueError(f"{path}: not a review calibration ({e!r})") from None
        if sha256 is not None and cal.meta.get("model_sha256") != sha256:
            cal.stale = (f"it was made for other weights (sha256 "
                         f"{str(cal.meta.get('model_sha256'))[:12]}..., these are "
                         f"{sha256[:12]}...)")
        return cal

    def to_dict(self) -> dict[str, Any]:
        assert self.full is not None and self.no_agreement is not None
        return {"version": CALIBRATION_VERSION, **self.meta, "threshold": self.threshold,
                "full": self.full.to_dict(), "no_agreement": self.no_agreement.to_dict()}

    def assess(self, features: dict[str, float]) -> Verdict:
        """The verdict on one map's features."""
        if self.stale or self.full is None or self.no_agreement is None:
            return not_assessed(features, self.stale)
        feats = dict(features)
        if feats.get("fov_roundness", 1.0) < MIN_FOV_ROUNDNESS:
            return Verdict("review", ["no_fundus_fov"], [
                f"no round field of view was found (its outline is "
                f"{feats['fov_roundness']:.2f} of a disc): this may not be a fundus "
                f"photograph, or the field of view was detected wrongly"], feats)
        measured = all(k in feats for k in AGREEMENT_FEATURES)
        model = self.full if measured else self.no_agreement
        notes = [] if measured else [
            "the samples' agreement could not be measured (one sample): the prediction "
            "rests on the photo and the map alone; use 2 or more samples for a surer one"]
        pred = model.predict(feats)
        if pred is None:
            return not_assessed(features, "a review feature could not be measured")
        f1, lo, hi = pred
        v = Verdict("ok", [], [], feats, f1, (lo, hi), self.threshold, notes)
        if feats.get("density", 1.0) < MIN_DENSITY:
            v.status = "review"
            v.codes_list = ["map_empty"]
            v.messages = [f"the map marks almost no vessels ({feats['density']:.1%} of the "
                          f"field of view; a retina has about 12%): it has failed"]
        elif f1 < self.threshold:
            v.status = "review"
            v.codes_list = ["predicted_f1_low"]
            worst = sorted((c, t) for t, c in model.contributions(feats).items() if c < 0)
            why = "; ".join(WHY[t] for c, t in worst[:2] if c < -0.02)
            v.messages = [f"the map is expected to agree poorly with a human grader "
                          f"(F1 about {f1:.2f}, 90% interval {lo:.2f}-{hi:.2f}; maps below "
                          f"{self.threshold:.2f} are sent for review)"
                          + (f": {why}" if why else "")]
        return v


def not_assessed(features: dict[str, float], why: str = "") -> Verdict:
    """The verdict of a model without a usable calibration."""
    reason = (f"this model's review calibration cannot be used: {why}" if why
              else "this model has no review calibration")
    return Verdict("not assessed", [], [
        f"{reason}, so its maps' quality is not assessed: compute one with "
        f"{CALIBRATE_COMMAND}"], dict(features))


def assess(features: dict[str, float], calibration: ReviewCalibration | None) -> Verdict:
    """The verdict on an image's features; with no calibration, ``not assessed``."""
    if calibration is None:
        return not_assessed(features)
    return calibration.assess(features)
