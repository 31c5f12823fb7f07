"""Calibrate a model's review (the ranges its verdicts check) at ship time.

Calibration maps: DRIVE's 20 training-folder images (16 training + 4 validation), clean, and
each of the 16 training images under ``per_image`` corruptions of
:mod:`vesselflow.vessel.data.corruptions` (assigned round-robin, so every corruption is used
about equally; seeded). Every map is made on segment's path
(:func:`vesselflow.vessel.evaluation.labelled.analyse`) and scored against its tracing. The
calibration's ranges (:func:`vesselflow.vessel.review.verdict.ranges_from`) are those of the
*good*
maps (F1 >= :data:`~vesselflow.vessel.review.verdict.GOOD_F1`). The test set and HRF are never
used: they are where the flags are evaluated (``benchmarks/review_flags.py``).

    vesselflow calibrate-review --model cnf-drive --drive ../shared/data/DRIVE

(:mod:`vesselflow.cli.calibrate`) writes ``quality.json`` into the model's folder (the shipped
``vesselflow/weights/<name>/`` or a run's ``best/``), with every calibration map's F1 and
features for inspection.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vesselflow.vessel.models import threshold_for
from vesselflow.vessel.review.verdict import GOOD_F1, ReviewCalibration, ranges_from

if TYPE_CHECKING:
    from vesselflow.io.weights import LoadedModel


def calibration_plan(drive: Path, per_image: int = 4) -> list[tuple[dict, str]]:
    """(DRIVE record, condition) pairs: trainval clean, then train x ``per_image``
    corruptions."""
    from vesselflow.vessel.data.corruptions import CORRUPTIONS
    from vesselflow.vessel.data.drive import drive_records

    names = list(CORRUPTIONS)
    plan = [(r, "clean") for r in drive_records(drive, "trainval")]
    for i, rec in enumerate(drive_records(drive, "train")):
        for j in range(per_image):
            plan.append((rec, names[(i * per_image + j) % len(names)]))
    return plan


def calibrate(loaded: LoadedModel, drive: Path, *, samples: int = 16, per_image: int = 4,
              seed: int = 0, say: Callable[..., None] = print
              ) -> tuple[ReviewCalibration, list[dict[str, Any]]]:
    """Analyse the calibration maps and derive the calibration; returns it and the rows."""
    from vesselflow.io.images import read_image
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.data.corruptions import corrupt, corruption_seed
    from vesselflow.vessel.evaluation.labelled import analyse

    plan = calibration_plan(drive, per_image)
    rows, t0 = [], time.perf_counter()
    for k, (rec, cond) in enumerate(plan):
        image = read_image(rec["image"])
        label = read_mask(rec["label"], shape=image.shape[:2])
        fov = read_mask(rec["fov"], shape=image.shape[:2])
        if cond != "clean":
            image = corrupt(image, cond, corruption_seed(seed, cond, rec["id"],
                                                          "vesselflow-quality"))
        r, _ = analyse(loaded, image, label, fov, samples=samples, seed=seed, name=rec["id"])
        rows.append({"id": rec["id"], "condition": cond, "f1": round(r["f1"], 4),
                     **{f: round(v, 6) for f, v in r["quality"].items()}})
        say(f"[{k + 1}/{len(plan)}] {rec['id']} {cond}: F1 {r['f1']:.3f}", flush=True)
    good = [r for r in rows if r["f1"] >= GOOD_F1]
    if len(good) < 5:
        raise ValueError(f"only {len(good)} of {len(rows)} calibration maps have F1 >= "
                         f"{GOOD_F1}: the model is too poor to calibrate its review")
    meta = {"model_sha256": loaded.sha256, "threshold": threshold_for(loaded, samples),
            "samples": samples, "seed": seed, "per_image": per_image, "good_f1": GOOD_F1,
            "n_maps": len(rows), "n_good": len(good), "margin": 0.05,
            "definition": "per feature, [min, max] over the good calibration maps widened by "
                          "5% of the span on each side",
            "seconds": round(time.perf_counter() - t0, 1), "maps": rows}
    return ReviewCalibration(ranges_from(good, margin=0.05), meta), rows
