"""Quality assessment (issue 14): features, reasons on constructed cases, stored references."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.review.verdict import (
    FEATURES,
    MESSAGES,
    ONE_SIDED,
    REFERENCE_FILE,
    Reference,
    fov_roundness,
    input_features,
    output_features,
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


@pytest.fixture(scope="module")
def reference() -> Reference:
    """Ranges from ten synthetic fundus photos and their (true) vessel maps."""
    rows = []
    for seed in range(10):
        d = synthetic_fundus((256, 256), seed=seed)
        std = np.where(d["label"], 0.2, 0.01).astype(np.float32)
        rows.append({**input_features(d["image"], d["fov"]),
                     **output_features(d["label"].astype(np.float32), std, d["label"],
                                       d["fov"])})
    return Reference(ranges_from(rows, margin=1.0))


def _codes(reference: Reference, image: np.ndarray, fov: np.ndarray, mask: np.ndarray,
           std: np.ndarray | None = None) -> set[str]:
    std = np.where(mask, 0.2, 0.01).astype(np.float32) if std is None else std
    feats = {**input_features(image, fov),
             **output_features(mask.astype(np.float32), std, mask, fov)}
    return {f.code for f in reference.assess(feats).findings}


def test_an_ordinary_photo_and_map_pass(reference: Reference) -> None:
    d = synthetic_fundus((256, 256), seed=11)
    assert _codes(reference, d["image"], d["fov"], d["label"]) == set()


@pytest.mark.parametrize("change, code", [
    (lambda im: np.clip(im * 2.2 + 0.1, 0, 1), "brightness_high"),
    (lambda im: im * 0.3, "brightness_low"),
    (lambda im: np.repeat(im[..., 1:2], 3, axis=2), "colourfulness_low"),
    (lambda im: np.clip(im + np.random.default_rng(0).normal(0, 0.08, im.shape), 0, 1)
     .astype(np.float32), "noise_high"),
    (lambda im: cv2.GaussianBlur(im, (0, 0), 3.0), "detail_low"),
])
def test_each_input_reason_on_a_constructed_photo(reference: Reference, change, code) -> None:
    d = synthetic_fundus((256, 256), seed=12)
    image = (change(d["image"]) * d["fov"][..., None]).astype(np.float32)
    assert code in _codes(reference, image, d["fov"], d["label"])


def test_map_reasons(reference: Reference) -> None:
    d = synthetic_fundus((256, 256), seed=13)
    empty = np.zeros_like(d["label"])
    # An almost empty map with almost no uncertainty: the case the old flag missed.
    codes = _codes(reference, d["image"], d["fov"], empty, np.zeros(empty.shape, np.float32))
    assert {"density_low", "fragmentation_high"} <= codes
    speckle = (np.random.default_rng(0).random(d["label"].shape) < 0.06) & d["fov"]
    assert "fragmentation_high" in _codes(reference, d["image"], d["fov"], speckle)
    confused = np.full(d["label"].shape, 0.45, np.float32)
    assert "uncertainty_high" in _codes(reference, d["image"], d["fov"], d["label"], confused)


def test_a_non_fundus_image_is_flagged(reference: Reference) -> None:
    board = ((np.indices((256, 256)).sum(0) // 32) % 2).astype(np.float32)
    image = np.repeat(board[..., None], 3, axis=2)
    fov = np.ones((256, 256), bool)  # what FOV detection finds in a bright, full-frame image
    codes = _codes(reference, image, fov, board > 0.5)
    assert "fov_roundness_low" in codes and len(codes) >= 3


def test_every_reason_code_has_a_sentence() -> None:
    for name in FEATURES:
        for side in ("low", "high"):
            if ONE_SIDED.get(name, side) != side:
                continue
            msg = MESSAGES[f"{name}_{side}"].format(v=0.5, lo=0.1, hi=0.9)
            assert len(msg) > 20 and "{" not in msg


def test_reference_round_trip_and_bad_files(tmp_path: Path, reference: Reference) -> None:
    (tmp_path / REFERENCE_FILE).write_text(json.dumps(reference.to_dict()))
    back = Reference.load(tmp_path)
    assert back is not None and set(back.ranges) == set(reference.ranges)
    for k, v in reference.ranges.items():
        assert back.ranges[k] == pytest.approx(v)
    assert Reference.load(tmp_path / "nowhere") is None
    (tmp_path / REFERENCE_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=REFERENCE_FILE):
        Reference.load(tmp_path)
    (tmp_path / REFERENCE_FILE).write_text(json.dumps({"ranges": {"shininess": [0, 1]}}))
    with pytest.raises(ValueError, match="shininess"):
        Reference.load(tmp_path)


def test_ranges_widen_by_the_margin() -> None:
    r = ranges_from([{"density": 0.1}, {"density": 0.2}], margin=0.1)
    assert r["density"] == pytest.approx((0.09, 0.21))


def test_shipped_vessel_models_carry_their_reference() -> None:
    """Every shipped vessel model has a quality reference calibrated on *its* weights."""
    from vesselflow.vessel.models import SHIPPED, load_model

    for name in SHIPPED:
        loaded = load_model(name)
        ref = Reference.load(loaded.path)
        assert ref is not None, f"{name}: no {REFERENCE_FILE}"
        assert ref.meta["model_sha256"] == loaded.sha256, name
        assert set(ref.ranges) == set(FEATURES), name
        assert ref.meta["n_good"] >= 5 and ref.meta["threshold"] == loaded.threshold
