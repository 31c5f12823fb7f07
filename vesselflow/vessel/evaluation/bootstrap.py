"""95% bootstrap confidence intervals over images for ``vesselflow evaluate``'s pooled metrics.

Images are the unit that is resampled (with replacement; pixels of one image are not
independent). On every resample the POOLED metrics are recomputed as ``evaluate`` computes
them, over the resampled images' pixels: an image drawn twice contributes its FOV pixels
twice. To make 1000+ resamples cheap, each image is summarised once:

- max F1, AUC-ROC and AP: per-image histograms of the FOV scores of vessel and background
  pixels on a common grid of thresholds. When the pooled map has at most ``MAX_BINS``
  distinct values (the CNF's mean of N binary samples takes only N + 1) the grid is those
  values and the resampled curves are exact; otherwise (the factored model's continuous q)
  scores are rounded down to a uniform grid of ``MAX_BINS`` steps on [0, 1].
- F1 at the a-priori threshold: per-image true/false positives and false negatives (exact).
- ECE: per-image counts, confidence and accuracy sums in its 15 bins (exact).
- bpd: per-image bound (nats) and pixel counts (per image pixel, per FOV pixel, per canvas
  pixel), so the pooled bpd of a resample is its total bound over its total pixels (exact).
- sample precision / recall: the mean over the resampled images' individual samples (exact).

Intervals are percentile intervals (2.5th and 97.5th percentiles of the resampled values).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vesselflow.flows import bits_per_dim

MAX_BINS = 65536
ECE_BINS = 15  # as metrics.expected_calibration_error


def _grid(probs: Sequence[np.ndarray]) -> tuple[np.ndarray | None, str]:
    """The thresholds' grid: the distinct pooled values if few, else None (uniform rounding)."""
    values = np.unique(np.concatenate([np.unique(p) for p in probs]))
    if len(values) <= MAX_BINS:
        return values, f"exact ({len(values)} distinct scores)"
    return None, f"scores rounded down to 1/{MAX_BINS}"


def _bin_index(prob: np.ndarray, grid: np.ndarray | None) -> np.ndarray:
    if grid is None:
        return np.clip((np.asarray(prob, np.float64) * MAX_BINS).astype(np.int64), 0,
                       MAX_BINS - 1)
    return np.searchsorted(grid, prob)


def _curve_metrics(pos: np.ndarray, neg: np.ndarray) -> tuple[np.ndarray, ...]:
    """max F1, AUC-ROC and AP of pooled histograms (R, B) ordered by ascending score.

    A pixel is positive when its score >= the bin's threshold (scikit-learn's convention).
    """
    tp = np.cumsum(pos[:, ::-1], axis=1)  # thresholds from the highest score down
    fp = np.cumsum(neg[:, ::-1], axis=1)
    n_pos, n_neg = tp[:, -1:], fp[:, -1:]
    pred = tp + fp
    precision = np.divide(tp, pred, out=np.ones_like(tp), where=pred > 0)
    recall = tp / np.maximum(n_pos, 1)
    f1 = np.divide(2 * precision * recall, precision + recall,
                   out=np.zeros_like(tp), where=(precision + recall) > 0)
    d_recall = np.diff(recall, axis=1, prepend=0.0)
    ap = np.sum(d_recall * precision, axis=1)
    fpr = fp / np.maximum(n_neg, 1)
    d_fpr = np.diff(fpr, axis=1, prepend=0.0)
    tpr_prev = np.concatenate([np.zeros_like(recall[:, :1]), recall[:, :-1]], axis=1)
    auc = np.sum(d_fpr * (recall + tpr_prev) / 2, axis=1)
    return f1.max(axis=1), auc, ap


def bootstrap_intervals(probs: Sequence[np.ndarray], truths: Sequence[np.ndarray],
                        threshold: float, log_liks: Sequence[float], pixels: Sequence[int],
                        sample_points: Sequence[np.ndarray] | None = None,
                        log_liks_canvas: Sequence[float] | None = None,
                        canvas: int | None = None, n_resamples: int = 1000, seed: int = 0,
                        fov_pixels: Sequence[int] | None = None,
                        level: float = 0.95, chunk: int = 50) -> dict[str, Any]:
    """Percentile bootstrap intervals over images.

    Args:
        probs, truths: per image, the FOV pixels' probability (1-D float) and truth (1-D bool).
        threshold: the a-priori threshold (``f1`` is at ``prob >= threshold``).
        log_liks, pixels: per image, the bound in nats and the image's pixel count.
        sample_points: per image, (k, 2) precision/recall of individual samples (optional).
        log_liks_canvas, canvas: per image, the canvas bound, and the canvas side (optional).
        fov_pixels: per image, the FOV pixels the bound's ``bpd_fov`` divides by (at the
            analysis scale); default the FOV pixels of ``probs``.

    Returns:
        ``{"level", "resamples", "seed", "unit", "curves", "method", "intervals": {metric:
        [low, high]}}`` with metrics ``f1``, ``max_f1``, ``auc_roc``, ``average_precision``,
        ``ece``, ``bpd``, ``bpd_fov``, and ``bpd_canvas``, ``sample_precision``,
        ``sample_recall`` when their inputs are given.
    """
    n = len(probs)
    if n == 0 or len(truths) != n or len(log_liks) != n or len(pixels) != n:
        raise ValueError("bootstrap needs one prob map, truth, bound and pixel count per image")
    grid, curves = _grid(probs)
    n_bins = MAX_BINS if grid is None else len(grid)
    pos = np.zeros((n, n_bins))
    neg = np.zeros((n, n_bins))
    conf = np.zeros((n, 3, ECE_BINS))  # count, confidence sum, accuracy sum per ECE bin
    counts = np.zeros((n, 3))  # tp, fp, fn at the threshold
    for i, (p, t) in enumerate(zip(probs, truths, strict=True)):
        p, t = np.asarray(p), np.asarray(t).astype(bool)
        idx = _bin_index(p, grid)
        pos[i] = np.bincount(idx[t], minlength=n_bins)
        neg[i] = np.bincount(idx[~t], minlength=n_bins)
        e = np.clip((p.astype(np.float64) * ECE_BINS).astype(int), 0, ECE_BINS - 1)
        conf[i] = [np.bincount(e, minlength=ECE_BINS),
                   np.bincount(e, weights=p.astype(np.float64), minlength=ECE_BINS),
                   np.bincount(e, weights=t.astype(np.float64), minlength=ECE_BINS)]
        pred = p >= threshold
        counts[i] = [np.sum(pred & t), np.sum(pred & ~t), np.sum(~pred & t)]
    fov_pixels = np.array([len(p) for p in probs] if fov_pixels is None else fov_pixels,
                          np.float64)
    ll = np.asarray(log_liks, np.float64)
    pix = np.asarray(pixels, np.float64)

    rng = np.random.default_rng(seed)
    # weights[r, i]: how often image i is drawn in resample r
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n)
                        for _ in range(n_resamples)]).astype(np.float64)
    out: dict[str, list[np.ndarray]] = {k: [] for k in ("max_f1", "auc_roc",
                                                       "average_precision")}
    for s in range(0, n_resamples, chunk):
        w = weights[s:s + chunk]
        mf, auc, ap = _curve_metrics(w @ pos, w @ neg)
        out["max_f1"].append(mf)
        out["auc_roc"].append(auc)
        out["average_precision"].append(ap)
    values = {k: np.concatenate(v) for k, v in out.items()}
    tp, fp, fn = (weights @ counts).T
    values["f1"] = np.divide(2 * tp, 2 * tp + fp + fn, out=np.zeros_like(tp),
                             where=(2 * tp + fp + fn) > 0)
    c = np.einsum("ri,ijb->rjb", weights, conf)
    cnt = np.maximum(c[:, 0], 1e-300)
    values["ece"] = np.sum(c[:, 0] / c[:, 0].sum(1, keepdims=True)
                           * np.abs(c[:, 2] / cnt - c[:, 1] / cnt), axis=1)
    # The one bpd definition, on (n_resamples,) arrays of nats and dimensions.
    values["bpd"] = bits_per_dim(weights @ ll, weights @ pix)
    values["bpd_fov"] = bits_per_dim(weights @ ll, weights @ fov_pixels)
    if log_liks_canvas is not None and canvas:
        llc = np.asarray(log_liks_canvas, np.float64)
        values["bpd_canvas"] = bits_per_dim(weights @ llc, weights.sum(1) * canvas * canvas)
    if sample_points is not None:
        sums = np.array([np.asarray(sp).sum(0) for sp in sample_points])  # (n, 2)
        ks = np.array([len(sp) for sp in sample_points], np.float64)
        means = (weights @ sums) / (weights @ ks)[:, None]
        values["sample_precision"], values["sample_recall"] = means[:, 0], means[:, 1]
    a = 100 * (1 - level) / 2
    intervals = {k: [float(x) for x in np.percentile(v, [a, 100 - a])]
                 for k, v in values.items()}
    return {"level": level, "resamples": n_resamples, "seed": seed, "unit": "image",
            "curves": curves,
            "method": "percentile bootstrap; images drawn with replacement, pooled metrics "
                      "recomputed over the drawn images' pixels (a repeated image counts twice)",
            "intervals": intervals}


def point_estimates(probs: Sequence[np.ndarray], truths: Sequence[np.ndarray]
                    ) -> dict[str, float]:
    """max F1, AUC-ROC and AP from the histograms with every image once (for checking the
    binned computation against scikit-learn's)."""
    grid, _ = _grid(probs)
    n_bins = MAX_BINS if grid is None else len(grid)
    pos, neg = np.zeros((1, n_bins)), np.zeros((1, n_bins))
    for p, t in zip(probs, truths, strict=True):
        idx, t = _bin_index(p, grid), np.asarray(t).astype(bool)
        pos[0] += np.bincount(idx[t], minlength=n_bins)
        neg[0] += np.bincount(idx[~t], minlength=n_bins)
    mf, auc, ap = _curve_metrics(pos, neg)
    return {"max_f1": float(mf[0]), "auc_roc": float(auc[0]), "average_precision": float(ap[0])}


def paired_difference(a: Sequence[float] | np.ndarray, b: Sequence[float] | np.ndarray, *,
                      n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of the per-image differences ``b - a`` (same images, paired) and its 95%
    percentile bootstrap interval over images: (mean, lo, hi)."""
    d = np.asarray(b, float) - np.asarray(a, float)
    if d.ndim != 1 or len(d) == 0:
        raise ValueError("paired_difference needs two equal-length, non-empty 1-D sequences")
    idx = np.random.default_rng(seed).integers(0, len(d), size=(n_boot, len(d)))
    boot = d[idx].mean(axis=1)
    return float(d.mean()), float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))


def paired_pooled_f1_difference(a: np.ndarray, b: np.ndarray, *, n_boot: int = 2000,
                                seed: int = 0) -> tuple[float, float, float]:
    """Pooled F1 of ``b`` minus pooled F1 of ``a`` and its 95% percentile bootstrap interval.

    ``a``, ``b``: (n_images, 3) per-image (tp, fp, fn) of two analyses of the same images, in
    the same order; each resample draws images (both analyses of an image together) with
    replacement and pools their counts, as ``evaluate`` pools.
    """
    a, b = np.asarray(a, float), np.asarray(b, float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] != 3 or len(a) == 0:
        raise ValueError("paired_pooled_f1_difference needs two (n, 3) tp/fp/fn arrays")

    def f1(c: np.ndarray) -> np.ndarray:
        tp, fp, fn = c[..., 0], c[..., 1], c[..., 2]
        den = 2 * tp + fp + fn
        return np.where(den > 0, 2 * tp / np.maximum(den, 1e-12), 0.0)

    idx = np.random.default_rng(seed).integers(0, len(a), size=(n_boot, len(a)))
    boot = f1(b[idx].sum(axis=1)) - f1(a[idx].sum(axis=1))
    point = float(f1(b.sum(axis=0)) - f1(a.sum(axis=0)))
    return point, float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))
