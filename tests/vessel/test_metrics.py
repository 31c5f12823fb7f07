"""vesselflow's FOV metrics against scikit-learn / MONAI / brute force on random inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from monai.metrics import ConfusionMatrixMetric
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from vesselflow.vessel.evaluation.metrics import (
    auc_roc,
    average_precision,
    binary_scores,
    expected_calibration_error,
    in_fov,
    max_f1,
)


@pytest.fixture
def rand() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    truth = rng.random(5000) < 0.15
    prob = np.clip(truth * 0.4 + rng.random(5000) * 0.7, 0, 1)
    return prob, truth


def test_binary_scores_match_sklearn_and_monai(rand) -> None:
    prob, truth = rand
    pred = prob >= 0.5
    s = binary_scores(pred, truth)
    assert s["precision"] == pytest.approx(precision_score(truth, pred))
    assert s["recall"] == pytest.approx(recall_score(truth, pred))
    assert s["f1"] == pytest.approx(f1_score(truth, pred))
    m = ConfusionMatrixMetric(metric_name=["precision", "sensitivity", "f1 score"],
                              reduction="mean")
    m(y_pred=torch.from_numpy(pred.astype(np.float32)).view(1, 1, -1),
      y=torch.from_numpy(truth.astype(np.float32)).view(1, 1, -1))
    precision, recall, f1 = (float(t.item()) for t in m.aggregate())
    assert (s["precision"], s["recall"], s["f1"]) == pytest.approx((precision, recall, f1))


def test_max_f1_equals_brute_force_over_thresholds(rand) -> None:
    prob, truth = rand
    prob = np.round(prob, 2)  # few distinct values: brute force is exact and cheap
    best = max(f1_score(truth, prob >= t) for t in np.unique(prob))
    f1, thr = max_f1(prob, truth)
    assert f1 == pytest.approx(best)
    assert f1_score(truth, prob >= thr) == pytest.approx(best)


def test_auc_and_ap(rand) -> None:
    prob, truth = rand
    assert auc_roc(prob, truth) == pytest.approx(roc_auc_score(truth, prob))
    assert 0.5 < average_precision(prob, truth) <= 1
    assert np.isnan(auc_roc(prob, np.zeros_like(truth)))


def test_ece_matches_a_direct_loop_and_is_zero_when_calibrated() -> None:
    rng = np.random.default_rng(1)
    prob = rng.random(200_000)
    truth = rng.random(200_000) < prob  # calibrated by construction
    ece, table = expected_calibration_error(prob, truth, bins=10)
    assert ece < 0.01
    edges = np.linspace(0, 1, 11)
    manual = 0.0
    skewed = prob ** 2
    for lo, hi in itertools.pairwise(edges):
        sel = (skewed >= lo) & ((skewed < hi) if hi < 1 else (skewed <= hi))
        if sel.any():
            manual += sel.mean() * abs(truth[sel].mean() - skewed[sel].mean())
    ece2, _ = expected_calibration_error(skewed, truth, bins=10)
    assert ece2 == pytest.approx(manual, rel=1e-9)
    assert table["count"].sum() == prob.size


def test_in_fov_checks_shapes() -> None:
    arr = np.arange(12).reshape(3, 4)
    fov = np.zeros((3, 4), bool)
    fov[1, 1:3] = True
    assert in_fov(arr, fov).tolist() == [5, 6]
    with pytest.raises(ValueError, match="does not match"):
        in_fov(arr, np.ones((4, 3), bool))
