"""Inference-time FOV standardisation and the --fov-degrees rescale."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import TINY_VESSEL as TINY

from vesselflow.vessel.analysis.pipeline import segment_image
from vesselflow.vessel.data.corruptions import corrupt
from vesselflow.vessel.data.drive_stats import drive_channel_stats
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.models import VesselConfig, build_model
from vesselflow.vessel.preprocess.fov import fov_diameter
from vesselflow.vessel.preprocess.normalise import (
    apply_input_norm,
    fov_channel_stats,
    fov_standardise,
    load_drive_stats,
)
from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DIAMETER, target_fov_diameter

REF = {"mean": [0.7, 0.38, 0.22], "std": [0.12, 0.08, 0.04]}


@pytest.fixture(scope="module")
def tiny_factored():
    torch.manual_seed(0)
    return build_model(VesselConfig(kind="factored", **TINY)).eval()


def test_standardised_fov_has_the_reference_statistics() -> None:
    d = synthetic_fundus((128, 128), seed=2)
    out = fov_standardise(d["image"], d["fov"], REF)
    mean, std = fov_channel_stats(out, d["fov"])
    assert np.allclose(mean, REF["mean"], atol=5e-3) and np.allclose(std, REF["std"], atol=5e-3)
    assert (out[~d["fov"]] == 0).all() and out.dtype == np.float32
    assert out.min() >= 0 and out.max() <= 1


def test_standardisation_undoes_brightness_and_colour_cast() -> None:
    d = synthetic_fundus((128, 128), seed=2)
    ref = fov_standardise(d["image"], d["fov"], REF)
    for name in ("brightness-0.7", "warm-cast"):
        out = fov_standardise(corrupt(d["image"], name), d["fov"], REF)
        assert np.abs(out - ref)[d["fov"]].mean() < 0.01, name
    assert apply_input_norm(d["image"], d["fov"], "none") is d["image"]
    with pytest.raises(ValueError, match="unknown input_norm"):
        apply_input_norm(d["image"], d["fov"], "zscore")


def test_stored_drive_statistics_are_recomputed_from_the_images(drive_dir) -> None:
    stored = load_drive_stats()
    fresh = drive_channel_stats(drive_dir)
    assert np.allclose(stored["mean"], fresh["mean"], atol=1e-6)
    assert np.allclose(stored["std"], fresh["std"], atol=1e-6)
    assert fresh["n_images"] == 20
    # design/MEASURED.md: mean 180.8 / 97.3 / 57.1, std 32.4 / 20.2 / 11.0 on 0-255 (its red
    # mean came from a float32 sum; float64 gives 180.69).
    assert np.allclose(255 * np.array(fresh["mean"]), [180.8, 97.3, 57.1], atol=0.15)
    assert np.allclose(255 * np.array(fresh["std"]), [32.4, 20.2, 11.0], atol=0.06)


def test_segment_image_feeds_the_model_the_standardised_image(tiny_factored) -> None:
    d = synthetic_fundus((176, 176), seed=0)
    seg = segment_image(tiny_factored, d["image"], n=1, fov=d["fov"], rescale=False,
                        input_norm="fov-standardise")
    assert np.allclose(seg.image, fov_standardise(d["image"], d["fov"]), atol=1e-6)
    plain = segment_image(tiny_factored, d["image"], n=1, fov=d["fov"], rescale=False)
    assert np.array_equal(plain.image, d["image"])


def test_target_diameter_follows_the_field_of_view() -> None:
    assert target_fov_diameter() == DRIVE_FOV_DIAMETER
    assert target_fov_diameter(30) == pytest.approx(DRIVE_FOV_DIAMETER * 2 / 3)
    assert target_fov_diameter(60) == pytest.approx(DRIVE_FOV_DIAMETER * 4 / 3)
    for bad in (0, -5, 180):
        with pytest.raises(ValueError, match="fov_degrees"):
            target_fov_diameter(bad)


def _disc_with_bar(size: int, bar: int) -> tuple[np.ndarray, np.ndarray]:
    """A bright disc filling the frame with a dark vertical bar ``bar`` px wide (a vessel)."""
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    fov = np.hypot(yy - c, xx - c) <= 0.48 * size
    img = np.zeros((size, size, 3), np.float32)
    img[fov] = (0.8, 0.4, 0.2)
    img[:, round(c - bar / 2):round(c - bar / 2) + bar] *= 0.3
    return img * fov[..., None], fov


def _bar_width(seg) -> float:
    row = seg.image[seg.image.shape[0] // 2, :, 1]
    inside = row[seg.fov[seg.fov.shape[0] // 2]]
    return float(np.sum(inside < 0.25))  # bar pixels: green 0.4 * 0.3 = 0.12 (blurred edges)


def test_fov_degrees_brings_vessel_widths_to_drive_scale(tiny_factored) -> None:
    # The same retina, the same FOV diameter in pixels: a 30-degree camera magnifies it by
    # 45/30, so its vessel is 1.5x wider. After the rescale both must reach the model alike.
    img45, fov45 = _disc_with_bar(500, 16)
    img30, fov30 = _disc_with_bar(500, 24)
    s45 = segment_image(tiny_factored, img45, n=1, fov=fov45)
    s30 = segment_image(tiny_factored, img30, n=1, fov=fov30, fov_degrees=30)
    d = fov_diameter(fov45)
    assert s45.scale.factor == pytest.approx(DRIVE_FOV_DIAMETER / d, rel=1e-6)
    assert s30.scale.factor == pytest.approx(DRIVE_FOV_DIAMETER * 30 / 45 / d, rel=1e-6)
    assert abs(_bar_width(s30) - _bar_width(s45)) <= 1.5
    plain30 = segment_image(tiny_factored, img30, n=1, fov=fov30)  # the default: 45 degrees
    assert _bar_width(plain30) > 1.3 * _bar_width(s45)
