"""The review's degradations: calibration families graded from harmless to destroying, and
held-out families kept apart from both the calibration and the benchmarks' corruptions."""

from __future__ import annotations

import numpy as np
import pytest

from vesselflow.vessel.data.corruptions import CORRUPTIONS
from vesselflow.vessel.data.degradations import (
    CALIBRATION_FAMILIES,
    HELD_OUT,
    STRENGTHS,
    degrade,
)
from vesselflow.vessel.data.synthetic import synthetic_fundus


@pytest.fixture(scope="module")
def fundus() -> np.ndarray:
    return synthetic_fundus((192, 192), seed=0)["image"]


def test_registries_are_apart_and_complete() -> None:
    assert not set(CALIBRATION_FAMILIES) & set(HELD_OUT)
    assert not set(HELD_OUT) & set(CORRUPTIONS)
    assert all(len(v) == STRENGTHS for v in CALIBRATION_FAMILIES.values())
    assert set(HELD_OUT) == {"vignetting", "haze", "motion-blur", "downscale-4", "jpeg-q10",
                             "occlusion", "highlights"}
    with pytest.raises(ValueError, match="strength"):
        degrade(np.zeros((8, 8, 3), np.float32), "blur", 4)
    with pytest.raises(ValueError, match="unknown"):
        degrade(np.zeros((8, 8, 3), np.float32), "rain")


@pytest.mark.parametrize("family", list(CALIBRATION_FAMILIES))
def test_each_family_grows_stronger(family: str, fundus: np.ndarray) -> None:
    change = []
    for k in range(STRENGTHS):
        out = degrade(fundus, family, k, seed=1)
        assert out.shape == fundus.shape and out.dtype == np.float32
        assert 0 <= out.min() and out.max() <= 1
        change.append(float(np.abs(out - fundus).mean()))
    assert change == sorted(change) and change[-1] > 2 * change[0], change


@pytest.mark.parametrize("family", list(HELD_OUT))
def test_held_out_families_change_the_photo(family: str, fundus: np.ndarray) -> None:
    out = degrade(fundus, family, seed=2)
    assert out.shape == fundus.shape and out.dtype == np.float32
    assert 0 <= out.min() and out.max() <= 1
    assert np.abs(out - fundus).mean() > 0.005
    assert np.array_equal(out, degrade(fundus, family, seed=2))  # seeded
