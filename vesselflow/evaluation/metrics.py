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


def pr_curve(prob: np.ndarray, truth: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall and thresholds (1-D FOV pixels), with the F1 of each point."""
    p, r, t = precision_recall_curve(np.asarray(truth).astype(bool), np.asarray(prob))
    f1 = np.where(p + r > 0, 2 * p * r / np.maximum(p + r, 1e-12), 0.0)
    return {"precision": p, "recall": r, "thresholds": t, "f1": f1}


def max_f1(prob: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(max F1 over thresholds, the threshold reaching it): the paper's oracle score.

    A pixel is positive when ``prob >= threshold`` (scikit-learn's convention).
    """
    c = pr_curve(prob, truth)
    i = int(np.argmax(c["f1"][:-1])) if len(c["thresholds"]) else 0
    thr = float(c["thresholds"][i]) if len(c["thresholds"]) else 0.5
    return float(c["f1"][i]), thr


def binary_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Precision, recall, F1 and accuracy of a binary prediction (1-D FOV pixels)."""
    pred = np.asarray(pred).astype(bool)
    truth = np.asarray(truth).astype(bool)
    tp = float(np.sum(pred & truth))
    fp = float(np.sum(pred & ~truth))
    fn = float(np.sum(~pred & truth))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "accuracy": float(np.mean(pred == truth)) if pred.size else float("nan")}


def auc_roc(prob: np.ndarray, truth: np.ndarray) -> float:
    truth = np.asarray(truth).astype(bool)
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, np.asarray(prob)))


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
