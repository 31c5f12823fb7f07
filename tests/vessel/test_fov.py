"""vesselflow.vessel.preprocess.fov (FOV detection and geometry) against DRIVE's official masks,
and .scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from skimage.draw import disk

from vesselflow.io.images import read_image
from vesselflow.io.masks import read_mask
from vesselflow.vessel.data.drive import drive_records
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.preprocess.fov import detect_fov, fov_diameter
from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DIAMETER, rescale_to_drive, restore_size


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_detect_fov_on_all_40_drive_images(drive_dir: Path) -> None:
    records = drive_records(drive_dir, "trainval") + drive_records(drive_dir, "test")
    assert len(records) == 40
    ious = {}
    for rec in records:
        detected = detect_fov(read_image(rec["image"]))
        assert detected.dtype == bool and detected.shape == (584, 565)
        ious[rec["id"]] = _iou(detected, read_mask(rec["fov"]))
    worst = min(ious, key=ious.__getitem__)
    summary = f"min IoU {ious[worst]:.4f} ({worst}), mean {np.mean(list(ious.values())):.4f}"
    assert ious[worst] >= 0.97, summary


def test_detect_fov_other_inputs() -> None:
    d = synthetic_fundus((300, 320), seed=2)
    assert _iou(detect_fov(d["image"]), d["fov"]) > 0.97
    as_uint8 = (d["image"] * 255).astype(np.uint8)
    assert _iou(detect_fov(as_uint8), d["fov"]) > 0.97
    assert _iou(detect_fov(d["image"].mean(-1)), d["fov"]) > 0.97  # grayscale
    big = np.repeat(np.repeat(d["image"], 5, axis=0), 5, axis=1)  # 1500 x 1600: downsampled
    big_fov = np.repeat(np.repeat(d["fov"], 5, axis=0), 5, axis=1)
    assert _iou(detect_fov(big), big_fov) > 0.97
    # No dark surround at all: the whole frame is the FOV.
    assert detect_fov(np.full((50, 60, 3), 0.6, np.float32)).all()


# ----------------------------------------------------------------------------- scale
def test_fov_diameter_of_circles() -> None:
    mask = np.zeros((500, 600), bool)
    mask[disk((250, 300), 200, shape=mask.shape)] = True
    assert fov_diameter(mask) == pytest.approx(400, abs=1.5)
    # A camera that crops top and bottom of the disc: the circle fit still finds 400.
    assert fov_diameter(mask[120:380]) == pytest.approx(400, abs=1.5)


def test_drive_fov_diameter_constant(drive_dir: Path) -> None:
    records = drive_records(drive_dir, "trainval") + drive_records(drive_dir, "test")
    diameters = [fov_diameter(read_mask(r["fov"])) for r in records]
    assert np.mean(diameters) == pytest.approx(DRIVE_FOV_DIAMETER, abs=0.5)
    assert 530 < min(diameters) and max(diameters) < 545


def test_rescale_to_drive_and_restore() -> None:
    d = synthetic_fundus((300, 320), seed=1)  # FOV diameter ~276 px
    image, fov, info = rescale_to_drive(d["image"], d["fov"])
    assert info.resized and info.original_shape == (300, 320)
    assert image.shape == (*info.scaled_shape, 3) and fov.shape == info.scaled_shape
    assert image.dtype == np.float32 and fov.dtype == bool
    assert fov_diameter(fov) == pytest.approx(DRIVE_FOV_DIAMETER, rel=0.02)
    prob = np.linspace(0, 1, fov.size, dtype=np.float32).reshape(fov.shape)
    back = restore_size(prob, info)
    assert back.shape == (300, 320) and back.dtype == np.float32
    assert 0.0 <= back.min() and back.max() <= 1.0
    mask_back = restore_size(fov, info, order=0)
    assert mask_back.dtype == bool and _iou(mask_back, d["fov"]) > 0.98
    with pytest.raises(ValueError, match="rescaled size"):
        restore_size(np.zeros((10, 10)), info)


def test_rescale_skipped_within_tolerance() -> None:
    mask = np.zeros((584, 565), bool)
    mask[disk((292, 282), 272, shape=mask.shape)] = True  # diameter ~545, within 5%
    image = np.random.default_rng(0).random((584, 565, 3)).astype(np.float32)
    out, fov, info = rescale_to_drive(image, mask)
    assert not info.resized and info.factor == 1.0
    assert out.shape == image.shape and np.array_equal(fov, mask)
    prob = np.random.default_rng(1).random((584, 565)).astype(np.float32)
    assert restore_size(prob, info) is prob


def test_rescale_shrinks_large_images() -> None:
    mask = np.zeros((1200, 1300), bool)
    mask[disk((600, 650), 560, shape=mask.shape)] = True
    image = np.repeat(mask[..., None], 3, axis=-1).astype(np.float32)
    out, fov, info = rescale_to_drive(image, mask)
    assert info.factor == pytest.approx(DRIVE_FOV_DIAMETER / 1121, rel=0.01)
    assert out.shape[:2] == fov.shape == info.scaled_shape
    assert restore_size(fov, info, order=0).shape == (1200, 1300)
