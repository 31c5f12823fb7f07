"""vesselflow's FOV metrics against scikit-learn / MONAI / brute force on random inputs."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from monai.metrics import ConfusionMatrixMetric
from skimage.morphology import skeletonize
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    matthews_corrcoef,
    precision_score,
    recall_score,
    roc_auc_score,
)

from vesselflow.vessel.evaluation.metrics import (
    auc_roc,
    average_precision,
    binary_scores,
    cldice,
    cldice_counts,
    cldice_from_counts,
    expected_calibration_error,
    in_fov,
    max_f1,
    score_case,
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


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_specificity_and_mcc_match_sklearn(rand, threshold: float) -> None:
    prob, truth = rand
    pred = prob >= threshold
    s = binary_scores(pred, truth)
    tn, fp, _, _ = confusion_matrix(truth, pred, labels=[False, True]).ravel()
    assert s["specificity"] == pytest.approx(tn / (tn + fp))
    assert s["specificity"] == pytest.approx(recall_score(truth, pred, pos_label=0))
    assert s["mcc"] == pytest.approx(matthews_corrcoef(truth, pred))


def test_mcc_on_pooled_counts_does_not_overflow() -> None:
    # Pooled DRIVE FOV pixels number ~4.5M: the product of four counts exceeds int64.
    rng = np.random.default_rng(2)
    truth = rng.random(4_000_000) < 0.12
    pred = truth ^ (rng.random(truth.size) < 0.05)
    assert binary_scores(pred, truth)["mcc"] == pytest.approx(matthews_corrcoef(truth, pred))


def _direct_cldice(pred: np.ndarray, truth: np.ndarray) -> float:
    """clDice straight from the definition (Shit et al. 2021), no shared code path."""
    sp, sg = skeletonize(pred), skeletonize(truth)
    tprec = (sp & truth).sum() / sp.sum()
    tsens = (sg & pred).sum() / sg.sum()
    return float(2 * tprec * tsens / (tprec + tsens))


def _vessels(seed: int, shape=(64, 64)) -> np.ndarray:
    """A few thick random line segments: a vessel-like binary map."""
    from skimage.draw import line
    from skimage.morphology import dilation, disk

    rng = np.random.default_rng(seed)
    m = np.zeros(shape, bool)
    for _ in range(5):
        r0, c0, r1, c1 = rng.integers(2, shape[0] - 2, 4)
        m[line(r0, c0, r1, c1)] = True
    return dilation(m, disk(int(rng.integers(0, 3))))


def test_cldice_identical_disjoint_and_known_partial_overlap() -> None:
    g = _vessels(0)
    assert cldice(g, g) == pytest.approx(1.0)
    disjoint = np.zeros((64, 64), bool)
    disjoint[:, :2] = True
    g[:, :4] = False
    assert cldice(disjoint, g) == 0.0
    # One-pixel-wide lines are their own skeletons: the counts can be done by hand.
    truth = np.zeros((40, 50), bool)
    truth[10, 5:45] = True  # 40 centreline pixels
    pred = np.zeros_like(truth)
    pred[10, 5:25] = True  # half of the vessel (20 pixels) ...
    pred[30, 5:15] = True  # ... and a 10-pixel false vessel
    assert (skeletonize(pred) == pred).all() and (skeletonize(truth) == truth).all()
    assert cldice_counts(pred, truth).tolist() == [20, 30, 20, 40]
    tprec, tsens = 20 / 30, 20 / 40
    assert cldice(pred, truth) == pytest.approx(2 * tprec * tsens / (tprec + tsens))  # 4/7


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cldice_matches_a_direct_skeleton_computation(seed: int) -> None:
    pred, truth = _vessels(seed), _vessels(seed + 10)
    pred |= truth & (np.arange(64)[:, None] < 32)  # some genuine overlap
    assert 0 < cldice(pred, truth) < 1
    assert cldice(pred, truth) == pytest.approx(_direct_cldice(pred, truth))
    assert cldice(truth, pred) == pytest.approx(_direct_cldice(truth, pred))


def test_cldice_is_restricted_to_the_fov_and_pools_counts() -> None:
    truth = np.zeros((40, 50), bool)
    truth[10, 5:45] = True
    pred = truth.copy()
    pred[30, 5:45] = True  # a false vessel ...
    fov = np.ones_like(truth)
    fov[25:, :] = False  # ... outside the FOV
    assert cldice(pred, truth) < 1
    assert cldice(pred, truth, fov) == pytest.approx(1.0)
    assert cldice(pred, truth, fov) == pytest.approx(_direct_cldice(pred & fov, truth & fov))
    # Pooled over images = from the summed counts, not the mean of per-image scores.
    a, b = _vessels(4), _vessels(5)
    pooled = cldice_from_counts(cldice_counts(a, b) + cldice_counts(b, a))
    gap = np.zeros((64, 3), bool)  # the two images side by side, not touching
    big_p, big_g = np.concatenate([a, gap, b], 1), np.concatenate([b, gap, a], 1)
    assert pooled == pytest.approx(_direct_cldice(big_p, big_g))


def test_score_case_reports_the_new_metrics_at_the_threshold() -> None:
    rng = np.random.default_rng(6)
    label = _vessels(7)
    mean = np.clip(label * 0.5 + rng.random(label.shape) * 0.6, 0, 1)
    fov = np.zeros_like(label)
    fov[4:60, 4:60] = True
    s = score_case(mean, label, fov, 0.55)
    pred, truth = in_fov(mean >= 0.55, fov), in_fov(label, fov)
    assert s["specificity"] == pytest.approx(recall_score(truth, pred, pos_label=0))
    assert s["mcc"] == pytest.approx(matthews_corrcoef(truth, pred))
    assert s["cldice"] == pytest.approx(_direct_cldice((mean >= 0.55) & fov, label & fov))


def test_binomial_interval_known_answers() -> None:
    """Clopper-Pearson: 0 of 10 -> [0, 0.3085]; 10 of 10 -> [0.6915, 1]; 1 of 1 -> [0.025, 1]."""
    from vesselflow.vessel.evaluation.metrics import binomial_interval

    assert binomial_interval(0, 10) == pytest.approx((0.0, 0.30849), abs=1e-4)
    assert binomial_interval(10, 10) == pytest.approx((0.69151, 1.0), abs=1e-4)
    assert binomial_interval(1, 1) == pytest.approx((0.025, 1.0), abs=1e-9)
    lo, hi = binomial_interval(25, 290)
    assert lo < 25 / 290 < hi
