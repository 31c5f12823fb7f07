"""Segmentation metrics inside the field of view (FOV).

Every function takes per-pixel arrays already restricted to the FOV (1-D), or (H, W) maps with
an FOV mask; pooling over images is done by concatenating FOV pixels, as in the DRIVE
literature. PR and ROC come from scikit-learn, not re-implemented.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score


def in_fov(arr: np.ndarray, fov: np.ndarray | None) -> np.ndarray:
    """Pixels of ``arr`` (H, W) inside ``fov`` (H, W bool) as a 1-D array."""
    arr = np.asarray(arr)
    if fov is None:
        return arr.reshape(-1)
    fov = np.asarray(fov).astype(bool)
    if fov.shape != arr.shape[-2:]:
        raise ValueError(f"FOV mask {fov.shape} does not match the map {arr.shape[-2:]}")
    return arr[..., fov]


def pr_curve(prob: np.ndarray, truth: np.ndarray, sample_weight: np.ndarray | None = None
             ) -> dict[str, np.ndarray]:
    """Precision, recall and thresholds (1-D FOV pixels), with the F1 of each point.

    ``sample_weight`` (optional, per entry) lets a histogram stand for the pixels: distinct
    probability levels with their vessel / background pixel counts (see
    :func:`histogram_points`), for pooling many large images in little memory.
    """
    p, r, t = precision_recall_curve(np.asarray(truth).astype(bool), np.asarray(prob),
                                     sample_weight=sample_weight)
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    return {"precision": p, "recall": r, "thresholds": t, "f1": f1}


def max_f1(prob: np.ndarray, truth: np.ndarray, sample_weight: np.ndarray | None = None
           ) -> tuple[float, float]:
    """(max F1 over thresholds, the threshold reaching it): the paper's oracle score.

    A pixel is positive when ``prob >= threshold`` (scikit-learn's convention).
    """
    c = pr_curve(prob, truth, sample_weight)
    i = int(np.argmax(c["f1"][:-1])) if len(c["thresholds"]) else 0
    thr = float(c["thresholds"][i]) if len(c["thresholds"]) else 0.5
    return float(c["f1"][i]), thr


def binary_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1, accuracy, specificity and MCC of a binary prediction (1-D FOV
    pixels).

    Specificity = TN / (TN + FP); MCC (Matthews correlation) = (TP TN - FP FN) / sqrt((TP + FP)
    (TP + FN) (TN + FP) (TN + FN)). An undefined ratio (empty denominator) is 0, as in
    scikit-learn.
    """
    pred = np.asarray(pred).astype(bool)
    truth = np.asarray(truth).astype(bool)
    tp = float(np.sum(pred & truth))
    fp = float(np.sum(pred & ~truth))
    fn = float(np.sum(~pred & truth))
    tn = float(np.sum(~pred & ~truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    specificity = tn / (tn + fp) if tn + fp else 0.0
    # Floats: the product of four pooled DRIVE counts overflows int64.
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    mcc = float((tp * tn - fp * fn) / denom) if denom else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": float(np.mean(pred == truth)) if pred.size else float("nan"),
            "specificity": specificity, "mcc": mcc}


def cldice_counts(pred: np.ndarray, truth: np.ndarray, fov: np.ndarray | None = None
                  ) -> np.ndarray:
    """The four counts of centreline Dice (clDice, Shit et al. 2021) for (H, W) binary maps.

    Both maps are restricted to the FOV, then skeletonised (``skimage.morphology.skeletonize``).

    Returns:
        float array (4,): |skel(P) & G|, |skel(P)|, |skel(G) & P|, |skel(G)|. Summing the counts
        over images gives the pooled clDice (as pooling FOV pixels does for F1).
    """
    from skimage.morphology import skeletonize

    pred = np.asarray(pred).astype(bool)
    truth = np.asarray(truth).astype(bool)
    if pred.shape != truth.shape:
        raise ValueError(f"prediction {pred.shape} and reference {truth.shape} differ in shape")
    if fov is not None:
        fov = np.asarray(fov).astype(bool)
        if fov.shape != pred.shape:
            raise ValueError(f"FOV mask {fov.shape} does not match the map {pred.shape}")
        pred, truth = pred & fov, truth & fov
    skel_p, skel_g = skeletonize(pred), skeletonize(truth)
    return np.array([np.sum(skel_p & truth), np.sum(skel_p), np.sum(skel_g & pred),
                     np.sum(skel_g)], dtype=np.float64)


def cldice_from_counts(counts: np.ndarray) -> float:
    """clDice = 2 Tprec Tsens / (Tprec + Tsens), Tprec = |skel(P) & G| / |skel(P)|, Tsens =
    |skel(G) & P| / |skel(G)|, from :func:`cldice_counts` (or their sum over images)."""
    sp_g, sp, sg_p, sg = (float(c) for c in counts)
    tprec = sp_g / sp if sp else 0.0
    tsens = sg_p / sg if sg else 0.0
    return 2 * tprec * tsens / (tprec + tsens) if tprec + tsens else 0.0


def cldice(pred: np.ndarray, truth: np.ndarray, fov: np.ndarray | None = None) -> float:
    """Centreline Dice of an (H, W) binary prediction against the reference, inside the FOV."""
    return cldice_from_counts(cldice_counts(pred, truth, fov))


def auc_roc(prob: np.ndarray, truth: np.ndarray, sample_weight: np.ndarray | None = None
            ) -> float:
    truth = np.asarray(truth).astype(bool)
    if sample_weight is not None:  # a level with zero pixels does not count as present
        present = np.asarray(sample_weight) > 0
        if truth[present].all() or not truth[present].any():
            return float("nan")
    elif truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, np.asarray(prob), sample_weight=sample_weight))


HIST_BINS = 4096
"""Probability levels of :func:`prob_histogram` (a multiple of 16: k/16 sample means are exact)."""


def prob_histogram(prob: np.ndarray, truth: np.ndarray, bins: int = HIST_BINS
                   ) -> np.ndarray:
    """Counts of vessel and background pixels per probability level ``round(prob * bins)``.

    Args:
        prob: 1-D probabilities in [0, 1] (FOV pixels); truth: 1-D bool, same length.

    Returns:
        int64 (2, bins + 1): row 0 background, row 1 vessel. Histograms of several images add
        up to the pooled one; :func:`histogram_points` turns it back into weighted points.
    """
    q = np.clip(np.rint(np.asarray(prob, dtype=np.float64) * bins), 0, bins).astype(np.int64)
    truth = np.asarray(truth).astype(bool)
    return np.stack([np.bincount(q[~truth], minlength=bins + 1),
                     np.bincount(q[truth], minlength=bins + 1)]).astype(np.int64)


def histogram_points(hist: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(prob, truth, weight) 1-D arrays of a :func:`prob_histogram`, for the ``sample_weight``
    forms of :func:`pr_curve`, :func:`max_f1` and :func:`auc_roc`. Empty levels are dropped."""
    hist = np.asarray(hist)
    levels = np.arange(hist.shape[1], dtype=np.float64) / (hist.shape[1] - 1)
    prob, truth, weight = [], [], []
    for cls in (0, 1):
        nz = hist[cls] > 0
        prob.append(levels[nz])
        truth.append(np.full(int(nz.sum()), bool(cls)))
        weight.append(hist[cls][nz].astype(np.float64))
    return np.concatenate(prob), np.concatenate(truth), np.concatenate(weight)


def average_precision(prob: np.ndarray, truth: np.ndarray) -> float:
    return float(average_precision_score(np.asarray(truth).astype(bool), np.asarray(prob)))


def expected_calibration_error(prob: np.ndarray, truth: np.ndarray, bins: int = 15
                               ) -> tuple[float, dict[str, np.ndarray]]:
    """ECE of a probability map with equal-width bins, and the reliability-diagram table.

    ECE = sum_b (n_b / N) |mean(truth in b) - mean(prob in b)|.
    """
    prob = np.asarray(prob, dtype=np.float64)
    truth = np.asarray(truth).astype(np.float64)
    idx = np.clip((prob * bins).astype(int), 0, bins - 1)
    count = np.bincount(idx, minlength=bins).astype(np.float64)
    conf = np.bincount(idx, weights=prob, minlength=bins)
    acc = np.bincount(idx, weights=truth, minlength=bins)
    nz = count > 0
    conf[nz] /= count[nz]
    acc[nz] /= count[nz]
    ece = float(np.sum(count[nz] / count.sum() * np.abs(acc[nz] - conf[nz])))
    return ece, {"confidence": conf, "accuracy": acc, "count": count,
                 "edges": np.linspace(0, 1, bins + 1)}


def sample_points(samples: np.ndarray, truth: np.ndarray, fov: np.ndarray | None
                  ) -> np.ndarray:
    """(precision, recall) of every individual sample against ``truth`` (FOV pixels, 1-D).

    Args:
        samples: (k, H, W) binary samples.
        truth: reference pixels inside the FOV, as returned by ``in_fov(label, fov)``.
        fov: (H, W) bool, or None for the whole image.

    Returns:
        float array (k, 2): columns precision, recall (the paper's per-sample scatter).
    """
    rows = [binary_scores(in_fov(s, fov), truth) for s in np.asarray(samples)]
    return np.array([[r["precision"], r["recall"]] for r in rows], dtype=np.float64
                    ).reshape(-1, 2)


def score_case(mean: np.ndarray, label: np.ndarray, fov: np.ndarray | None, threshold: float,
               samples: np.ndarray | None = None, label2: np.ndarray | None = None) -> dict:
    """All metrics of one image, in memory: what ``vesselflow evaluate`` computes per image.

    Args:
        mean: (H, W) vessel probability (mean of samples).
        label: (H, W) bool reference tracing (first observer).
        fov: (H, W) bool field of view, or None for the whole image.
        threshold: the a-priori threshold (a pixel is vessel when ``mean >= threshold``).
        samples: optional (k, H, W) individual binary samples, for the per-sample scores.
        label2: optional (H, W) bool second observer, scored against ``label``.

    Returns:
        dict with ``max_f1`` and ``max_f1_threshold`` (oracle), ``precision``, ``recall``,
        ``f1``, ``accuracy``, ``specificity``, ``mcc``, ``cldice`` (and its
        ``cldice_counts``) at ``threshold``, ``auc_roc``, ``average_precision``, ``ece``,
        ``curve`` (pr_curve output), ``reliability`` (ECE table), ``sample_points`` (k, 2) or
        None, ``sample_precision`` / ``sample_recall`` / ``sample_f1`` (means over samples, or
        None) and ``human`` (binary_scores of label2, or None). Per-image numbers that need
        no tracing (vessel density, mean uncertainty) are the per-image summary's
        (:mod:`vesselflow.vessel.analysis.summary`), not scores.
    """
    truth = in_fov(label, fov).astype(bool)
    prob = in_fov(mean, fov)
    best, best_thr = max_f1(prob, truth)
    at = binary_scores(prob >= threshold, truth)
    counts = cldice_counts(np.asarray(mean) >= threshold, label, fov)
    ece, table = expected_calibration_error(prob, truth)
    out: dict = {
        "max_f1": best, "max_f1_threshold": best_thr, "threshold": float(threshold),
        "precision": at["precision"], "recall": at["recall"], "f1": at["f1"],
        "accuracy": at["accuracy"], "specificity": at["specificity"], "mcc": at["mcc"],
        "cldice_counts": counts, "cldice": cldice_from_counts(counts),
        "auc_roc": auc_roc(prob, truth), "average_precision": average_precision(prob, truth),
        "ece": ece, "curve": pr_curve(prob, truth), "reliability": table,
        "sample_points": None, "sample_precision": None, "sample_recall": None,
        "sample_f1": None, "human": None,
        "n_pixels": int(truth.size), "vessel_fraction": float(truth.mean()) if truth.size
        else float("nan"),
    }
    if samples is not None and len(samples):
        pts = sample_points(samples, truth, fov)
        out["sample_points"] = pts
        out["sample_precision"] = float(pts[:, 0].mean())
        out["sample_recall"] = float(pts[:, 1].mean())
        out["sample_f1"] = float(np.mean(2 * pts[:, 0] * pts[:, 1]
                                         / np.maximum(pts.sum(1), 1e-12)))
    if label2 is not None:
        out["human"] = binary_scores(in_fov(label2, fov), truth)
    return out


MIN_RATE_CASES = 20
"""A rate over fewer cases is "not established": never reported as a target met or missed."""


def binomial_interval(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) ``level`` interval of a rate of ``k`` in ``n`` (n >= 1)."""
    from scipy.stats import beta

    a = round((1 - level) / 2, 12)  # 0.025, not 0.025000000000000022
    lo = float(beta.ppf(a, k, n - k + 1)) if k > 0 else 0.0
    hi = float(beta.ppf(1 - a, k + 1, n - k)) if k < n else 1.0
    return lo, hi
