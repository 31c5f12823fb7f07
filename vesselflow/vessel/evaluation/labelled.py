"""One labelled image analysed as ``vesselflow segment`` analyses it, then scored: the unit of
the generalisation benchmark (``benchmarks/generalisation.py``), the review-flag evaluation
(``benchmarks/review_flags.py``) and the review calibration
(:mod:`vesselflow.vessel.evaluation.review_calibration`)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vesselflow.io.weights import LoadedModel
    from vesselflow.vessel.review.verdict import ReviewCalibration

EMPTY_FRACTION = 0.005
"""A map is *empty* when its mask covers less than 0.5% of the dataset's FOV pixels."""


def analyse(loaded: LoadedModel, image: np.ndarray, label: np.ndarray, fov_true: np.ndarray,
            *, samples: int, seed: int, input_norm: str | None = None, name: str = "image",
            calibration: ReviewCalibration | None = None
            ) -> tuple[dict[str, Any], np.ndarray]:
    """Segment ``image`` on segment's path, score it inside ``fov_true`` at its own size.

    ``seed`` is the run seed and ``name`` the image's id: the image is sampled with their
    per-image seed, as ``vesselflow segment`` samples a file of that name. The FOV is detected
    from the image itself (not the dataset's mask), the map comes back to the image's size
    (:meth:`~vesselflow.vessel.analysis.pipeline.Segmentation.at_original_size`), and the
    mask is segment's ``_mask.png``. The record also carries the review features of the
    per-image summary (``quality``) and, with a ``calibration``, the verdict.

    Returns:
        (record, 4097-level probability histogram inside ``fov_true`` for pooled curves).
    """
    from vesselflow.vessel.analysis.pipeline import segment_image
    from vesselflow.vessel.analysis.summary import summarise
    from vesselflow.vessel.evaluation.metrics import binary_scores, prob_histogram

    t0 = time.perf_counter()
    res = segment_image(loaded.model, image, n=samples, seed=seed, name=name,
                        input_norm=input_norm)
    maps = res.at_original_size(loaded.threshold, samples=False)
    truth, pred = label[fov_true], maps.mask[fov_true]
    s = binary_scores(pred, truth)
    n_fov = int(fov_true.sum())
    verdict = summarise(res, loaded.threshold, calibration).verdict
    rec = {"id": name, "f1": s["f1"], "precision": s["precision"], "recall": s["recall"],
           "tp": int(np.sum(pred & truth)), "fp": int(np.sum(pred & ~truth)),
           "fn": int(np.sum(~pred & truth)), "fov_pixels": n_fov,
           "mask_fraction": float(pred.sum() / n_fov), "scale_factor": round(res.scale.factor, 4),
           "quality": verdict.features,
           "seconds": round(time.perf_counter() - t0, 2)}
    if calibration is not None:
        rec["review"], rec["reasons"] = verdict.status, verdict.codes
    rec["empty"] = rec["mask_fraction"] < EMPTY_FRACTION
    return rec, prob_histogram(maps.mean[fov_true], truth)
