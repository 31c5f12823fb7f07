"""Bootstrap intervals over images: the binned pooled metrics against scikit-learn, and the
resampling against a brute-force bootstrap that concatenates the drawn images' pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest

from vesselflow.vessel.evaluation.bootstrap import MAX_BINS, bootstrap_intervals, point_estimates
from vesselflow.vessel.evaluation.metrics import (
    auc_roc,
    average_precision,
    binary_scores,
    expected_calibration_error,
    max_f1,
)


def _images(n: int, size: int, discrete: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    probs, truths = [], []
    for i in range(n):
        t = rng.random(size) < 0.08 + 0.03 * i  # images differ, so resampling matters
        s = np.clip(0.3 * t + 0.7 * rng.random(size) ** (1 + 0.2 * i), 0, 1)
        probs.append((np.round(s * 16) / 16 if discrete else s).astype(np.float32))
        truths.append(t)
    return probs, truths


@pytest.mark.parametrize("discrete,size", [(True, 3000), (False, 3000), (False, 20000)])
def test_binned_curves_match_scikit_learn(discrete: bool, size: int) -> None:
    probs, truths = _images(5, size, discrete)
    p, t = np.concatenate(probs), np.concatenate(truths)
    got = point_estimates(probs, truths)
    # 5 x 20000 continuous scores exceed MAX_BINS distinct values: rounded, so approximate.
    tol = 1e-3 if len(np.unique(p)) > MAX_BINS else 1e-9
    assert got["max_f1"] == pytest.approx(max_f1(p, t)[0], abs=tol)
    assert got["auc_roc"] == pytest.approx(auc_roc(p, t), abs=tol)
    assert got["average_precision"] == pytest.approx(average_precision(p, t), abs=tol)


def test_intervals_are_the_brute_force_bootstrap_over_images() -> None:
    probs, truths = _images(6, 2000, discrete=False)
    lls = [-50.0 * (i + 1) for i in range(6)]
    pixels = [2500 + 100 * i for i in range(6)]
    pts = [np.random.default_rng(i).random((4, 2)) for i in range(6)]
    thr, n_res, seed = 0.45, 40, 7
    got = bootstrap_intervals(probs, truths, thr, lls, pixels, sample_points=pts,
                              log_liks_canvas=[x - 1 for x in lls], canvas=64,
                              n_resamples=n_res, seed=seed)
    rng = np.random.default_rng(seed)  # the same draws, done the slow way
    ref: dict[str, list[float]] = {k: [] for k in got["intervals"]}
    for _ in range(n_res):
        idx = rng.integers(0, 6, 6)
        p = np.concatenate([probs[i] for i in idx])
        t = np.concatenate([truths[i] for i in idx])
        ref["max_f1"].append(max_f1(p, t)[0])
        ref["auc_roc"].append(auc_roc(p, t))
        ref["average_precision"].append(average_precision(p, t))
        ref["f1"].append(binary_scores(p >= thr, t)["f1"])
        ref["ece"].append(expected_calibration_error(p, t)[0])
        ll = sum(lls[i] for i in idx)
        ref["bpd"].append(-ll / (sum(pixels[i] for i in idx) * math.log(2)))
        ref["bpd_fov"].append(-ll / (len(p) * math.log(2)))
        ref["bpd_canvas"].append(-(ll - 6) / (6 * 64 * 64 * math.log(2)))
        sp = np.concatenate([pts[i] for i in idx])
        ref["sample_precision"].append(sp[:, 0].mean())
        ref["sample_recall"].append(sp[:, 1].mean())
    assert set(got["intervals"]) == set(ref)
    for k, v in ref.items():
        np.testing.assert_allclose(got["intervals"][k], np.percentile(v, [2.5, 97.5]),
                                   rtol=1e-9, atol=1e-9, err_msg=k)
    assert got["resamples"] == n_res and got["seed"] == seed and got["level"] == 0.95


def test_intervals_are_seeded_and_shrink_with_more_images() -> None:
    probs, truths = _images(4, 2000, discrete=True)
    args = (probs, truths, 0.5, [-10.0, -20.0, -30.0, -40.0], [2000] * 4)
    a = bootstrap_intervals(*args, n_resamples=1000, seed=0)["intervals"]
    assert a == bootstrap_intervals(*args, n_resamples=1000, seed=0)["intervals"]
    assert a != bootstrap_intervals(*args, n_resamples=1000, seed=1)["intervals"]
    # the same image 4 times: nothing varies between resamples, the interval is a point
    same = bootstrap_intervals([probs[0]] * 4, [truths[0]] * 4, 0.5, [-10.0] * 4, [2000] * 4,
                               n_resamples=200)["intervals"]
    for lo, hi in same.values():
        assert hi - lo < 1e-12
    with pytest.raises(ValueError, match="one prob map"):
        bootstrap_intervals(probs, truths[:2], 0.5, [-1.0] * 4, [1] * 4)


def test_paired_difference_known_answer_and_sign() -> None:
    from vesselflow.vessel.evaluation.bootstrap import paired_difference

    a = np.array([0.70, 0.72, 0.74, 0.76])
    mean, lo, hi = paired_difference(a, a + 0.02)
    assert mean == pytest.approx(0.02) and lo == pytest.approx(0.02) and hi == pytest.approx(0.02)
    mean, lo, hi = paired_difference(a + np.array([0.05, -0.01, 0.03, 0.01]), a)
    assert mean == pytest.approx(-0.02) and lo < mean < hi <= 0.01


def test_paired_pooled_f1_difference_pools_counts() -> None:
    from vesselflow.vessel.evaluation.bootstrap import paired_pooled_f1_difference

    a = np.array([[80, 20, 20], [10, 10, 10]])  # pooled F1 180/240 = 0.75
    b = np.array([[90, 10, 10], [10, 10, 10]])  # pooled F1 200/240
    point, lo, hi = paired_pooled_f1_difference(a, b)
    assert point == pytest.approx(200 / 240 - 180 / 240)
    assert lo <= point <= hi
    with pytest.raises(ValueError):
        paired_pooled_f1_difference(a, b[:1])
