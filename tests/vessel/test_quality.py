"""Review verdicts: features, reasons on constructed cases, stored calibrations."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage.morphology import skeletonize

from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.preprocess.fov import fov_roundness
from vesselflow.vessel.review.features import FEATURES, input_features, output_features
from vesselflow.vessel.review.verdict import (
    CALIBRATION_FILE,
    MESSAGES,
    ONE_SIDED,
    ReviewCalibration,
    ranges_from,
)


def _disc(h: int, w: int, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= r**2


def test_fov_roundness() -> None:
    assert fov_roundness(_disc(300, 300, 140)) > 0.97
    cut = _disc(400, 400, 190)
    cut[:60], cut[-60:] = False, False  # a disc cut by the sensor, as in HRF
    assert fov_roundness(cut) > 0.97
    assert fov_roundness(np.ones((256, 256), bool)) == pytest.approx(np.pi / 4, abs=0.03)
    assert fov_roundness(np.ones((200, 300), bool)) < 0.95  # corners a cut disc lacks
    assert fov_roundness(np.zeros((10, 10), bool)) == 0.0


def _map_features(mask: np.ndarray, std: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """The map features as the per-image summary computes them (analysis/summary.py)."""
    mask = mask & fov
    density = mask.sum() / fov.sum()
    return output_features(mask, skeletonize(mask), density, float(std[fov].mean()))


@pytest.fixture(scope="module")
def calibration() -> ReviewCalibration:
    """Ranges from ten synthetic fundus photos and their (true) vessel maps."""
    rows = []
    for seed in range(10):
        d = synthetic_fundus((256, 256), seed=seed)
        std = np.where(d["label"], 0.2, 0.01).astype(np.float32)
        rows.append({**input_features(d["image"], d["fov"]),
                     **_map_features(d["label"], std, d["fov"])})
    return ReviewCalibration(ranges_from(rows, margin=1.0))


def _codes(calibration: ReviewCalibration, image: np.ndarray, fov: np.ndarray,
           mask: np.ndarray, std: np.ndarray | None = None) -> set[str]:
    std = np.where(mask, 0.2, 0.01).astype(np.float32) if std is None else std
    feats = {**input_features(image, fov), **_map_features(mask, std, fov)}
    return {f.code for f in calibration.assess(feats).findings}


def test_an_ordinary_photo_and_map_pass(calibration: ReviewCalibration) -> None:
    d = synthetic_fundus((256, 256), seed=11)
    assert _codes(calibration, d["image"], d["fov"], d["label"]) == set()


@pytest.mark.parametrize("change, code", [
    (lambda im: np.clip(im * 2.2 + 0.1, 0, 1), "brightness_high"),
    (lambda im: im * 0.3, "brightness_low"),
    (lambda im: np.repeat(im[..., 1:2], 3, axis=2), "colourfulness_low"),
    (lambda im: np.clip(im + np.random.default_rng(0).normal(0, 0.08, im.shape), 0, 1)
     .astype(np.float32), "noise_high"),
    (lambda im: cv2.GaussianBlur(im, (0, 0), 3.0), "detail_low"),
])
def test_each_input_reason_on_a_constructed_photo(calibration: ReviewCalibration, change,
                                                  code) -> None:
    d = synthetic_fundus((256, 256), seed=12)
    image = (change(d["image"]) * d["fov"][..., None]).astype(np.float32)
    assert code in _codes(calibration, image, d["fov"], d["label"])


def test_map_reasons(calibration: ReviewCalibration) -> None:
    d = synthetic_fundus((256, 256), seed=13)
    empty = np.zeros_like(d["label"])
    # An almost empty map with almost no uncertainty: the case the old flag missed.
    codes = _codes(calibration, d["image"], d["fov"], empty, np.zeros(empty.shape, np.float32))
    assert {"density_low", "fragmentation_high"} <= codes
    speckle = (np.random.default_rng(0).random(d["label"].shape) < 0.06) & d["fov"]
    assert "fragmentation_high" in _codes(calibration, d["image"], d["fov"], speckle)
    confused = np.full(d["label"].shape, 0.45, np.float32)
    assert "uncertainty_high" in _codes(calibration, d["image"], d["fov"], d["label"], confused)


def test_a_non_fundus_image_is_flagged(calibration: ReviewCalibration) -> None:
    board = ((np.indices((256, 256)).sum(0) // 32) % 2).astype(np.float32)
    image = np.repeat(board[..., None], 3, axis=2)
    fov = np.ones((256, 256), bool)  # what FOV detection finds in a bright, full-frame image
    codes = _codes(calibration, image, fov, board > 0.5)
    assert "fov_roundness_low" in codes and len(codes) >= 3


def test_every_reason_code_has_a_sentence() -> None:
    for name in FEATURES:
        for side in ("low", "high"):
            if ONE_SIDED.get(name, side) != side:
                continue
            msg = MESSAGES[f"{name}_{side}"].format(v=0.5, lo=0.1, hi=0.9)
            assert len(msg) > 20 and "{" not in msg


def test_calibration_round_trip_and_bad_files(tmp_path: Path,
                                              calibration: ReviewCalibration) -> None:
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(calibration.to_dict()))
    back = ReviewCalibration.load(tmp_path)
    assert back is not None and set(back.ranges) == set(calibration.ranges)
    for k, v in calibration.ranges.items():
        assert back.ranges[k] == pytest.approx(v)
    assert ReviewCalibration.load(tmp_path / "nowhere") is None
    (tmp_path / CALIBRATION_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=CALIBRATION_FILE):
        ReviewCalibration.load(tmp_path)
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"ranges": {"shininess": [0, 1]}}))
    with pytest.raises(ValueError, match="shininess"):
        ReviewCalibration.load(tmp_path)


def test_ranges_widen_by_the_margin() -> None:
    r = ranges_from([{"density": 0.1}, {"density": 0.2}], margin=0.1)
    assert r["density"] == pytest.approx((0.09, 0.21))


def test_shipped_vessel_models_carry_their_calibration() -> None:
    """Every shipped vessel model has a review calibration made with *its* weights."""
    from vesselflow.vessel.models import SHIPPED, load_model

    for name in SHIPPED:
        loaded = load_model(name)
        ref = ReviewCalibration.load(loaded.path)
        assert ref is not None, f"{name}: no {CALIBRATION_FILE}"
        assert ref.meta["model_sha256"] == loaded.sha256, name
        assert set(ref.ranges) == set(FEATURES), name
        assert ref.meta["n_good"] >= 5 and ref.meta["threshold"] == loaded.threshold
