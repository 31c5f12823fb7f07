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
            calibration: ReviewCalibration | None = None, analysis_scale: str | float = 1.0,
            half_size: bool = False) -> tuple[dict[str, Any], np.ndarray]:
    """Segment ``image`` on segment's path, score it inside ``fov_true`` at its own size.

    ``seed`` is the run seed and ``name`` the image's id: the image is sampled with their
    per-image seed, as ``vesselflow segment`` samples a file of that name. The FOV is detected
    from the image itself (not the dataset's mask), the map comes back to the image's size
    (:meth:`~vesselflow.vessel.analysis.pipeline.Segmentation.at_original_size`), and the
    mask is segment's ``_mask.png``. The record also carries the review features of the
    per-image summary (``quality``) and, with a ``calibration``, the verdict.
    ``analysis_scale``: as segment's ``--analysis-scale`` (the record names the scale used).

    With ``half_size`` the record also holds ``half``: the same scores with the probability
    map, the tracing and both FOVs averaged over 2x2 blocks (tracing and FOVs then >= 0.5, the
    mask the averaged map >= the threshold inside the averaged detected FOV), the scale the
    field's cross-dataset tables score HRF at, and its histogram (``half_hist``).

    Returns:
        (record, 4097-level probability histogram inside ``fov_true`` for pooled curves).
    """
    from vesselflow.vessel.analysis.pipeline import segment_image
    from vesselflow.vessel.analysis.summary import summarise
    from vesselflow.vessel.evaluation.metrics import binary_scores, prob_histogram
    from vesselflow.vessel.models import threshold_for

    t0 = time.perf_counter()
    threshold = threshold_for(loaded, samples)
    res = segment_image(loaded.model, image, n=samples, seed=seed, name=name,
                        input_norm=input_norm, analysis_scale=analysis_scale)
    maps = res.at_original_size(threshold, samples=False)
    truth, pred = label[fov_true], maps.mask[fov_true]
    s = binary_scores(pred, truth)
    n_fov = int(fov_true.sum())
    verdict = summarise(res, threshold, calibration).verdict
    rec = {"id": name, "f1": s["f1"], "precision": s["precision"], "recall": s["recall"],
           "tp": int(np.sum(pred & truth)), "fp": int(np.sum(pred & ~truth)),
           "fn": int(np.sum(~pred & truth)), "fov_pixels": n_fov,
           "mask_fraction": float(pred.sum() / n_fov), "scale_factor": round(res.scale.factor, 4),
           "analysis_scale": None if res.scale_choice is None else res.scale_choice.scale,
           "quality": verdict.features,
           "seconds": round(time.perf_counter() - t0, 2)}
    if calibration is not None:
        rec["review"], rec["reasons"] = verdict.status, verdict.codes
    rec["empty"] = rec["mask_fraction"] < EMPTY_FRACTION
    if half_size:
        prob_h, truth_h = _half(maps.mean), _half(label) >= 0.5
        fov_h, det_h = _half(fov_true) >= 0.5, _half(maps.fov) >= 0.5
        pred_h = (prob_h >= threshold) & det_h
        t, pr = truth_h[fov_h], pred_h[fov_h]
        rec["half"] = {"tp": int(np.sum(pr & t)), "fp": int(np.sum(pr & ~t)),
                       "fn": int(np.sum(~pr & t)), "f1": binary_scores(pr, t)["f1"]}
        rec["half_hist"] = prob_histogram(prob_h[fov_h], t).tolist()
    return rec, prob_histogram(maps.mean[fov_true], truth)


def _half(a: np.ndarray) -> np.ndarray:
    """(H, W) -> (H // 2, W // 2) float32: the mean of each 2x2 block (a trailing odd row or
    column is dropped)."""
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    b = np.asarray(a[:h, :w], np.float32)
    return b.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
