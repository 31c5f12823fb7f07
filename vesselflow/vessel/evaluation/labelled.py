"""One labelled image analysed as ``vesselflow segment`` analyses it, then scored: the unit of
the generalisation benchmark (``benchmarks/generalisation.py``), the review-flag evaluation
(``benchmarks/review_flags.py``) and the calibration of quality references
(:mod:`vesselflow.vessel.review.calibration`)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

EMPTY_FRACTION = 0.005
"""A map is *empty* when its mask covers less than 0.5% of the dataset's FOV pixels."""


def analyse(loaded: Any, image: np.ndarray, label: np.ndarray, fov_true: np.ndarray, *,
            samples: int, seed: int, input_norm: str | None = None, name: str = "image",
            reference: Any = None) -> tuple[dict[str, Any], np.ndarray]:
    """Segment ``image`` on segment's path, score it inside ``fov_true`` at its own size.

    The FOV is detected from the image itself (not the dataset's mask), the map is resized
    back, and the mask is ``prob >= loaded.threshold`` inside the detected FOV (segment's
    ``_mask.png``). The record also carries the quality features of
    :mod:`vesselflow.vessel.review.verdict` (``quality``) and, with a ``reference``, the verdict.

    Returns:
        (record, 4097-level probability histogram inside ``fov_true`` for pooled curves).
    """
    from vesselflow.vessel.analysis.pipeline import segment_image
    from vesselflow.vessel.evaluation.metrics import binary_scores, prob_histogram
    from vesselflow.vessel.preprocess.fov import detect_fov
    from vesselflow.vessel.review.verdict import assess_segmentation

    t0 = time.perf_counter()
    fov = detect_fov(image)
    res = segment_image(loaded.model, image, n=samples, seed=seed, fov=fov, name=name,
                        input_norm=input_norm)
    prob = np.clip(res.original(res.mean), 0.0, 1.0).astype(np.float32)
    mask = (prob >= loaded.threshold) & fov
    truth, pred = label[fov_true], mask[fov_true]
    s = binary_scores(pred, truth)
    n_fov = int(fov_true.sum())
    verdict = assess_segmentation(res, res.mask(loaded.threshold), reference)
    rec = {"id": name, "f1": s["f1"], "precision": s["precision"], "recall": s["recall"],
           "tp": int(np.sum(pred & truth)), "fp": int(np.sum(pred & ~truth)),
           "fn": int(np.sum(~pred & truth)), "fov_pixels": n_fov,
           "mask_fraction": float(pred.sum() / n_fov), "scale_factor": round(res.scale.factor, 4),
           "quality": verdict.features,
           "seconds": round(time.perf_counter() - t0, 2)}
    if reference is not None:
        rec["review"], rec["reasons"] = verdict.status, verdict.codes
    rec["empty"] = rec["mask_fraction"] < EMPTY_FRACTION
    return rec, prob_histogram(prob[fov_true], truth)
