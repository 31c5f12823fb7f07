"""A map's predicted F1 (its agreement with a human grader) from its own evidence.

A ridge regression of F1 on a few standardised *terms* of the review features
(:mod:`vesselflow.vessel.review.features`): the samples' agreement with each other and with
their mask, how far the map's vessel density is from DRIVE's, its fragmentation, and the
photo's noise, detail (blur) and clipping, each relative to the photo's own contrast. The
fitted state is plain numbers (JSON, never a pickle): per term its calibration mean, scale and
clip range, the coefficients, and the 5% and 95% quantiles of the residuals of predictions made
with the map's degradation family *held out* of the fit, which make the 90% interval
(split-conformal, one family out at a time).

Each term is clipped to the range the calibration saw (widened by 10% of its span), so an
unusual photo moves the prediction no further than the calibration's most extreme maps did.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DRIVE_DENSITY = 0.12
"""About the fraction of DRIVE's FOV its graders traced as vessel."""


def _log(x: float, eps: float = 1e-3) -> float:
    return math.log(max(float(x), 0.0) + eps)


TERMS: dict[str, tuple[str, Callable[[float], float]]] = {
    "agreement": ("agreement", float),
    "mask_agreement": ("mask_agreement", float),
    "density_gap": ("density", lambda d: abs(_log(d) - math.log(DRIVE_DENSITY))),
    "log_density": ("density", _log),
    "log_fragmentation": ("fragmentation", lambda f: math.log1p(max(f, 0.0))),
    "log_noise": ("noise", _log),
    "detail": ("detail", float),
    "clipped": ("clipped", lambda c: math.sqrt(max(c, 0.0))),
}
"""Term name -> (the feature it is computed from, how)."""
AGREEMENT_TERMS = ("agreement", "mask_agreement")


def term_values(features: dict[str, float], terms: Sequence[str]) -> np.ndarray | None:
    """The terms of one map's features, or None if a feature a term needs is missing."""
    out = []
    for t in terms:
        feat, fn = TERMS[t]
        v = features.get(feat)
        if v is None or not math.isfinite(float(v)):
            return None
        out.append(fn(float(v)))
    return np.array(out, np.float64)


@dataclass
class F1Model:
    """A fitted predictor: ``predict(features) -> (f1, lo, hi)``."""

    terms: list[str]
    mean: list[float]
    scale: list[float]
    lo: list[float]
    hi: list[float]
    coef: list[float]
    intercept: float
    residual_q05: float
    residual_q95: float
    alpha: float = 1.0

    def point(self, x: np.ndarray) -> float:
        x = np.clip(x, self.lo, self.hi)
        z = (x - np.asarray(self.mean)) / np.asarray(self.scale)
        return float(self.intercept + z @ np.asarray(self.coef))

    def predict(self, features: dict[str, float]) -> tuple[float, float, float] | None:
        """Predicted F1 and its 90% interval, or None if a feature is missing."""
        x = term_values(features, self.terms)
        if x is None:
            return None
        f = self.point(x)
        return (float(np.clip(f, 0, 1)), float(np.clip(f + self.residual_q05, 0, 1)),
                float(np.clip(f + self.residual_q95, 0, 1)))

    def contributions(self, features: dict[str, float]) -> dict[str, float]:
        """Per term, how much it moves this map's prediction from the calibration mean."""
        x = term_values(features, self.terms)
        if x is None:
            return {}
        z = (np.clip(x, self.lo, self.hi) - np.asarray(self.mean)) / np.asarray(self.scale)
        return {t: float(c * v) for t, c, v in zip(self.terms, self.coef, z, strict=True)}

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in ("terms", "mean", "scale", "lo", "hi", "coef",
                                               "intercept", "residual_q05", "residual_q95",
                                               "alpha")}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> F1Model:
        terms = [str(t) for t in d["terms"]]
        unknown = set(terms) - set(TERMS)
        if unknown:
            raise ValueError(f"unknown terms {sorted(unknown)}")
        vec = {k: [float(v) for v in d[k]] for k in ("mean", "scale", "lo", "hi", "coef")}
        if any(len(v) != len(terms) for v in vec.values()):
            raise ValueError("term vectors of different lengths")
        return cls(terms, **vec, intercept=float(d["intercept"]),
                   residual_q05=float(d["residual_q05"]),
                   residual_q95=float(d["residual_q95"]), alpha=float(d.get("alpha", 1.0)))


def _fit_point(x: np.ndarray, y: np.ndarray, alpha: float) -> tuple[np.ndarray, ...]:
    """Ridge on standardised x: (mean, scale, lo, hi, coef, intercept)."""
    mean, scale = x.mean(0), x.std(0) + 1e-9
    span = x.max(0) - x.min(0)
    lo, hi = x.min(0) - 0.1 * span, x.max(0) + 0.1 * span
    z = (x - mean) / scale
    coef = np.linalg.solve(z.T @ z + alpha * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return mean, scale, lo, hi, coef, y.mean()


def fit(rows: Sequence[dict[str, Any]], terms: Sequence[str], alpha: float = 1.0,
        group: str = "family") -> tuple[F1Model, np.ndarray]:
    """Fit on records (``features``, ``f1``, ``group``); the residual quantiles come from
    predictions with each group held out. Returns the model and those held-out predictions."""
    terms = list(terms)
    xs = [term_values(r["features"], terms) for r in rows]
    keep = [i for i, x in enumerate(xs) if x is not None]
    if len(keep) < 2 * len(terms) + 2:
        raise ValueError(f"{len(keep)} usable calibration maps: too few to fit {terms}")
    x = np.stack([xs[i] for i in keep])
    y = np.array([rows[i]["f1"] for i in keep], np.float64)
    groups = np.array([rows[i][group] for i in keep])
    held = np.empty_like(y)
    for g in np.unique(groups):
        out = groups == g
        part = F1Model(terms, *[v.tolist() for v in _fit_point(x[~out], y[~out], alpha)[:5]],
                       intercept=float(y[~out].mean()), residual_q05=0, residual_q95=0)
        held[out] = [part.point(v) for v in x[out]]
    mean, scale, lo, hi, coef, icpt = _fit_point(x, y, alpha)
    resid = y - np.clip(held, 0, 1)
    model = F1Model(terms, mean.tolist(), scale.tolist(), lo.tolist(), hi.tolist(),
                    coef.tolist(), float(icpt), float(np.quantile(resid, 0.05)),
                    float(np.quantile(resid, 0.95)), alpha)
    full = np.full(len(rows), np.nan)
    full[keep] = np.clip(held, 0, 1)
    return model, full
