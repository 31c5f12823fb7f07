"""Calibrated prediction intervals for the vessel biomarkers: what a grader's tracing of the
same photo would measure.

A model's biomarker (measured on its thresholded mean map, :func:`vesselflow.vessel.
biomarkers.measure`) differs from a tracing's by a bias and by a spread that the model's
samples do not show (they under-disperse). Split-conformal calibration of the residual fixes
both from labelled photos that are never reported (``scripts/calibrate_biomarkers.py``):

* residual ``r = log(tracing / model)`` for the biomarkers that scale with the vessel map's
  size or resolution (densities, calibres; :data:`RELATIVE`), ``r = tracing - model`` for the
  dimensionless ones (fractal dimension, tortuosity);
* the model's bias: ``r`` predicted by a line in the model value ``x`` (its log for relative
  biomarkers), fitted by least squares on the calibration photos. A model whose value swings
  more than the tracing's (a blurred photo widens the model's calibre, not the grader's)
  gets a negative slope: the estimate shrinks towards what tracings measure. ``x`` is
  clamped to the calibration photos' range, so a photo outside it is not extrapolated;
* ``half_width``: the ``ceil((n + 1) * level)``-th smallest leave-one-out absolute residual
  of the n calibration photos (each predicted by the line fitted without it: split-conformal
  with a jackknife for the two fitted numbers);
* estimate = the model value corrected by the predicted residual (``model * exp(r_hat)`` or
  ``model + r_hat``), interval = estimate ``* exp(+-half_width)`` or ``+- half_width``: the
  estimate is its centre (on the log scale for relative biomarkers).

Photos are calibrated in strata of the analysis scale (:data:`STRATA`: 1 for photos at
DRIVE's resolution, > 1 where ``auto`` used a high-resolution photo's extra pixels): a
camera-free covariate, fitted on calibration photos only. The file lives beside the weights
(:data:`CALIBRATION_FILE`) and names the model's sha256; loading it for other weights is
refused (:class:`CalibrationMismatch`), so intervals are never borrowed across weights.
Plain JSON numbers; nothing is pickled.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

CALIBRATION_FILE = "biomarkers.json"
LEVEL = 0.9
RELATIVE = ("vessel_density", "length_density", "branch_point_density", "end_point_density",
            "calibre_mean_px", "calibre_median_px", "calibre_mean_um", "calibre_median_um")
"""Biomarkers calibrated on the log ratio (they scale with the map's size); others additive."""
STRATA = ((0.0, 1.05, "scale 1"), (1.05, math.inf, "scale > 1"))
"""(low, high], name: analysis-scale strata, each calibrated on its own photos. ``auto``
returns exactly 1 within its 5 % tolerance (:data:`vesselflow.vessel.analysis.scale_rule.
TOLERANCE`), so "scale > 1" holds every photo it enlarged to use a camera's extra pixels."""
MIN_STRATUM = 10
"""A stratum with fewer calibration photos uses the pooled calibration."""


class CalibrationMismatch(ValueError):
    """A calibration file made for other weights (sha256 differs) or unreadable."""


@dataclass(frozen=True)
class Interval:
    """One biomarker's residual model: ``kind`` "relative" or "additive"; the residual
    predicted from the model value ``x`` (its log for relative biomarkers, clamped to the
    calibration photos' range ``x_range``) as ``intercept + slope * x``; the conformal
    ``half_width``; the calibration photos ``n``."""

    kind: str
    intercept: float
    slope: float
    half_width: float
    n: int
    x_range: tuple[float, float] = (-math.inf, math.inf)

    def apply(self, value: float) -> tuple[float, float, float]:
        """(estimate, lo, hi) for a model value; NaN where the value (or the calibration) is
        missing or a relative biomarker's value is not positive."""
        nan = (math.nan,) * 3
        if not (math.isfinite(value) and math.isfinite(self.intercept)):
            return nan
        if self.kind == "relative" and value <= 0:
            return nan
        x = math.log(value) if self.kind == "relative" else value
        r = self.intercept + self.slope * min(max(x, self.x_range[0]), self.x_range[1])
        if self.kind == "relative":
            est = value * math.exp(r)
            return est, est * math.exp(-self.half_width), est * math.exp(self.half_width)
        return value + r, value + r - self.half_width, value + r + self.half_width


def residual(name: str, model: float, tracing: float) -> float:
    """The calibrated residual of one photo (NaN when it does not exist)."""
    if not (math.isfinite(model) and math.isfinite(tracing)):
        return math.nan
    if name in RELATIVE:
        return math.log(tracing / model) if model > 0 and tracing > 0 else math.nan
    return tracing - model


def _line(x: np.ndarray, r: np.ndarray) -> tuple[float, float]:
    """Least-squares intercept and slope of r on x (slope 0 when x does not vary or there
    are fewer than 3 photos)."""
    if len(r) < 3 or float(np.ptp(x)) == 0.0:
        return float(np.mean(r)), 0.0
    slope, intercept = np.polyfit(x, r, 1)
    return float(intercept), float(slope)


def conformal_interval(name: str, model: Sequence[float], tracing: Sequence[float],
                       level: float = LEVEL) -> Interval:
    """The :class:`Interval` of biomarker ``name`` from calibration photos' model and tracing
    values (pairs with a missing value dropped): the residual's line on the model value,
    and as half width the ``ceil((n + 1) * level)``-th smallest leave-one-out absolute
    residual (each photo predicted by the line fitted without it, so the width is not
    flattered by the fit); too few photos for ``level`` give an infinite half width."""
    kind = "relative" if name in RELATIVE else "additive"
    pairs = [(m, residual(name, m, t)) for m, t in zip(model, tracing, strict=True)]
    pairs = [(m, r) for m, r in pairs if math.isfinite(r)]
    if not pairs:
        return Interval(kind, math.nan, 0.0, math.nan, 0)
    m, r = np.array(pairs, dtype=np.float64).T
    x = np.log(m) if kind == "relative" else m
    intercept, slope = _line(x, r)
    loo = []
    for i in range(len(r)):
        keep = np.arange(len(r)) != i
        a, b = _line(x[keep], r[keep]) if keep.any() else (0.0, 0.0)
        loo.append(abs(r[i] - a - b * x[i]))
    k = math.ceil((len(r) + 1) * level)
    half = float(np.sort(loo)[k - 1]) if k <= len(r) else math.inf
    return Interval(kind, intercept, slope, half, len(r), (float(x.min()), float(x.max())))


def stratum(analysis_scale: float | None) -> str:
    """The name of the analysis-scale stratum a photo falls in (None: analysed as it is = 1)."""
    s = 1.0 if analysis_scale is None else float(analysis_scale)
    return next((n for lo, hi, n in STRATA if lo < s <= hi), STRATA[0][2])


@dataclass
class BiomarkerCalibration:
    """Per stratum (and ``"pooled"``) and biomarker, the :class:`Interval`; the weights'
    ``model_sha256`` and the provenance (``meta``: photos, command)."""

    model_sha256: str
    level: float
    strata: dict[str, dict[str, Interval]]
    meta: dict[str, Any] = field(default_factory=dict)

    def interval(self, name: str, analysis_scale: float | None) -> Interval | None:
        """The interval for biomarker ``name`` of a photo analysed at ``analysis_scale``:
        its stratum's, or the pooled one where the stratum had too few photos."""
        per = self.strata.get(stratum(analysis_scale))
        if per is None or name not in per or per[name].n < MIN_STRATUM:
            per = self.strata.get("pooled", {})
        return per.get(name)

    def apply(self, values: dict[str, float], analysis_scale: float | None
              ) -> dict[str, dict[str, float]]:
        """Per biomarker of ``values`` (model values): estimate, lo, hi (NaN: no calibration)."""
        out = {}
        for name, v in values.items():
            iv = self.interval(name, analysis_scale)
            est, lo, hi = iv.apply(float(v)) if iv is not None else (math.nan,) * 3
            out[name] = {"estimate": est, "lo": lo, "hi": hi}
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"model_sha256": self.model_sha256, "level": self.level,
                "method": "residual (log ratio for relative biomarkers, difference "
                          "otherwise) = intercept + slope * model value (its log for relative "
                          "ones, clamped to x_range); half_width = conformal quantile of the "
                          "leave-one-out absolute residuals",
                "strata": {s: {n: {"kind": iv.kind, "intercept": _num(iv.intercept),
                                   "slope": iv.slope, "half_width": _num(iv.half_width),
                                   "x_range": [_num(v) for v in iv.x_range], "n": iv.n}
                               for n, iv in per.items()}
                           for s, per in self.strata.items()},
                "meta": self.meta}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> BiomarkerCalibration:
        def iv(e: dict[str, Any]) -> Interval:
            lo, hi = e["x_range"]
            return Interval(str(e["kind"]), _val(e["intercept"], math.nan),
                            float(e["slope"]), _val(e["half_width"], math.inf), int(e["n"]),
                            (_val(lo, -math.inf), _val(hi, math.inf)))

        return cls(str(d["model_sha256"]), float(d["level"]),
                   {s: {n: iv(e) for n, e in per.items()} for s, per in d["strata"].items()},
                   dict(d.get("meta", {})))

    @classmethod
    def load(cls, folder: str | Path, sha256: str) -> BiomarkerCalibration:
        """The calibration beside weights whose sha256 is ``sha256``.

        Raises:
            FileNotFoundError: no calibration file in ``folder``.
            CalibrationMismatch: the file was made for other weights, or cannot be read.
        """
        path = Path(folder) / CALIBRATION_FILE
        try:
            cal = cls.from_dict(json.loads(path.read_text()))
        except FileNotFoundError:
            raise
        except (ValueError, KeyError, TypeError) as e:
            raise CalibrationMismatch(f"{path}: not a biomarker calibration ({e})") from e
        if cal.model_sha256 != sha256:
            raise CalibrationMismatch(
                f"{path} was calibrated for weights {cal.model_sha256[:12]}, these are "
                f"{sha256[:12]}: biomarker intervals are not calibrated (run "
                f"python scripts/calibrate_biomarkers.py)")
        return cal


def _num(x: float) -> float | None:
    """JSON has no infinity or NaN: None."""
    return float(x) if math.isfinite(x) else None


def _val(x: float | None, missing: float) -> float:
    return missing if x is None else float(x)


def load_for(loaded: Any) -> tuple[BiomarkerCalibration | None, str]:
    """The calibration of a loaded model (``LoadedModel``: ``path``, ``sha256``), or None and
    the reason (no file, other weights) to show beside uncalibrated values."""
    try:
        return BiomarkerCalibration.load(loaded.path, loaded.sha256), ""
    except FileNotFoundError:
        return None, (f"no biomarker calibration for these weights ({CALIBRATION_FILE} "
                      f"missing): values are the model's, without a prediction interval")
    except CalibrationMismatch as e:
        return None, str(e)


def fit(records: Sequence[dict[str, Any]], names: Sequence[str], model_sha256: str,
        level: float = LEVEL, meta: dict[str, Any] | None = None) -> BiomarkerCalibration:
    """A :class:`BiomarkerCalibration` from calibration records (each with ``mask`` and
    ``tracing`` values by name and its ``analysis_scale``), per stratum and pooled."""
    groups: dict[str, list[dict[str, Any]]] = {"pooled": list(records)}
    for r in records:
        groups.setdefault(stratum(r.get("analysis_scale")), []).append(r)
    strata = {g: {n: conformal_interval(n, [r["mask"][n] for r in recs],
                                        [r["tracing"][n] for r in recs], level)
                  for n in names} for g, recs in groups.items()}
    return BiomarkerCalibration(model_sha256, level, strata, dict(meta or {}))
