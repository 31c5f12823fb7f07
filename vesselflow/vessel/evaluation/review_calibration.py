"""Calibrate a model's review (its predicted F1 and the threshold for ``review``).

Calibration maps (:func:`vesselflow.vessel.evaluation.review_records.calibration_jobs`):
DRIVE's 20 training-folder images (16 training + 4 validation), clean, and under every family
of :data:`vesselflow.vessel.data.degradations.CALIBRATION_FAMILIES` at four strengths from
harmless to destroying, so that the fit sees the whole range of F1. Every map is made on
segment's path (16 samples, analysis scale ``auto``) and scored against its tracing. The test
set and HRF are never used: they are where the review is evaluated
(``benchmarks/review_flags.py``).

Two ridge fits (:func:`vesselflow.vessel.review.predictor.fit`), each with residual quantiles
from leave-one-family-out predictions: ``full`` and ``no_agreement`` (without the samples'
agreement, for one-sample runs). Each fit's terms are chosen by forward selection on the
leave-one-family-out mean absolute error of the calibration maps (a term is added while it
lowers that error by at least :data:`MIN_GAIN`; the full fit starts from :data:`FORCED`),
so a term that helps on some families but
extrapolates badly to a held-out one stays out. The threshold is chosen on the leave-one-family-out
predictions of the calibration maps: the highest of 0.50, 0.51, ..., 0.70 that sends at most
:data:`MAX_CALIBRATION_FALSE_ALARMS` of the good calibration maps (F1 >= 0.7) to review.

    vesselflow calibrate-review --model cnf-drive --drive ../shared/data/DRIVE

(:mod:`vesselflow.cli.calibrate`) writes ``quality.json`` (plain numbers, with the weights'
sha256) into the model's folder: the shipped ``vesselflow/weights/<name>/`` or a run's
``best/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vesselflow.vessel.review.predictor import AGREEMENT_TERMS, TERMS, fit
from vesselflow.vessel.review.verdict import BAD_F1, GOOD_F1, ReviewCalibration

if TYPE_CHECKING:
    from vesselflow.io.weights import LoadedModel

FULL_TERMS = tuple(TERMS)
NO_AGREEMENT_TERMS = tuple(t for t in TERMS if t not in AGREEMENT_TERMS)
MAX_CALIBRATION_FALSE_ALARMS = 0.05
ALPHA = 1.0
MIN_GAIN = 0.001
FORCED = ("mask_agreement",)
"""Always in the full fit, chosen a priori: the samples' agreement with their mask is the
evidence that a map which looks plausible (the right density) is noise. The calibration's
degradations rarely make such maps, so selection alone would not find it."""


def select_terms(rows: Sequence[dict[str, Any]], candidates: Sequence[str],
                 start: Sequence[str] = ()) -> list[str]:
    """Forward selection of terms on the leave-one-family-out MAE (``rows`` carry
    ``group``), from the terms ``start``."""
    f1 = np.array([r["f1"] for r in rows])
    chosen = list(start)
    if chosen:
        _, held = fit(rows, chosen, ALPHA, group="group")
        best = float(np.nanmean(np.abs(held - f1)))
    else:
        best = float(np.mean(np.abs(f1 - f1.mean())))
    while True:
        trials = {}
        for t in candidates:
            if t in chosen:
                continue
            try:
                _, held = fit(rows, [*chosen, t], ALPHA, group="group")
            except ValueError:
                continue
            trials[t] = float(np.nanmean(np.abs(held - f1)))
        if not trials:
            return chosen
        t, err = min(trials.items(), key=lambda kv: kv[1])
        if best - err < MIN_GAIN:
            return chosen
        chosen.append(t)
        best = err


def group_of(row: dict[str, Any]) -> str:
    """The leave-one-out group of a record: its degradation family ("clean" for none)."""
    return row["family"]


def choose_threshold(f1: np.ndarray, predicted: np.ndarray) -> float:
    """The highest threshold in 0.50..0.70 flagging <= 5% of the good maps (F1 >= 0.7)."""
    good = predicted[(f1 >= GOOD_F1) & np.isfinite(predicted)]
    best = 0.5
    for t in np.round(np.arange(0.5, 0.7001, 0.01), 2):
        if good.size and np.mean(good < t) <= MAX_CALIBRATION_FALSE_ALARMS:
            best = float(t)
    return best


def fit_calibration(rows: Sequence[dict[str, Any]], meta: dict[str, Any] | None = None,
                    full_terms: Sequence[str] = FULL_TERMS,
                    no_agreement_terms: Sequence[str] = NO_AGREEMENT_TERMS
                    ) -> tuple[ReviewCalibration, dict[str, np.ndarray]]:
    """The calibration from records; also the held-out predictions of both fits."""
    rows = [{**r, "group": group_of(r)} for r in rows if "refused" not in r]
    full, held_full = fit(rows, select_terms(rows, full_terms, FORCED), ALPHA, group="group")
    no_ag, held_no = fit(rows, select_terms(rows, no_agreement_terms), ALPHA, group="group")
    f1 = np.array([r["f1"] for r in rows])
    threshold = choose_threshold(f1, held_full)
    good, bad = f1 >= GOOD_F1, f1 < BAD_F1
    flagged = held_full < threshold
    summary = {
        "n_maps": len(rows), "n_good": int(good.sum()), "n_bad": int(bad.sum()),
        "lofo_mae": round(float(np.nanmean(np.abs(held_full - f1))), 4),
        "lofo_mae_no_agreement": round(float(np.nanmean(np.abs(held_no - f1))), 4),
        "lofo_false_alarms": [int((flagged & good).sum()), int(good.sum())],
        "lofo_recall": [int((flagged & bad).sum()), int(bad.sum())],
    }
    cal = ReviewCalibration(full, no_ag, threshold,
                            {**(meta or {}), "good_f1": GOOD_F1, "bad_f1": BAD_F1,
                             "threshold_rule": "highest of 0.50..0.70 flagging <= 5% of the "
                             "good calibration maps (leave-one-family-out predictions)",
                             "calibration": summary})
    return cal, {"full": held_full, "no_agreement": held_no}


def calibrate(loaded: LoadedModel, drive: Path, *, samples: int = 16, seed: int = 0,
              cache: Path | None = None, say: Callable[..., None] = print
              ) -> tuple[ReviewCalibration, list[dict[str, Any]]]:
    """Make (or reuse from ``cache``) the calibration maps and fit; returns it and the rows."""
    from vesselflow.vessel.evaluation.review_records import calibration_jobs, run_jobs

    t0 = time.perf_counter()
    rows = run_jobs(loaded, calibration_jobs(Path(drive)), cache, samples=samples, seed=seed,
                    analysis_scale="auto", say=say)
    good = [r for r in rows if r["f1"] >= GOOD_F1]
    if len(good) < 5:
        raise ValueError(f"only {len(good)} of {len(rows)} calibration maps have F1 >= "
                         f"{GOOD_F1}: the model is too poor to calibrate its review")
    meta = {"model": loaded.name, "model_sha256": loaded.sha256, "samples": samples,
            "seed": seed, "analysis_scale": "auto",
            "maps": "DRIVE training+validation (20) clean and under vesselflow.vessel.data."
                    "degradations.CALIBRATION_FAMILIES at 4 strengths",
            "seconds": round(time.perf_counter() - t0, 1)}
    cal, _ = fit_calibration(rows, meta)
    return cal, rows
