"""The corruption registry of the generalisation benchmark and the review-flag evaluation: each
is seeded, keeps shape/dtype/range, changes the image, and its parameter does what its name
says."""

from __future__ import annotations

import numpy as np
import pytest

from vesselflow.vessel.data.corruptions import CORRUPTIONS, WARM_CAST, corrupt
from vesselflow.vessel.data.synthetic import synthetic_fundus

GENERALISATION_SET = ("jpeg-q30", "jpeg-q60", "noise-0.02", "noise-0.05", "blur-1", "blur-2",
                      "gamma-0.6", "gamma-1.6", "brightness-0.7", "brightness-1.3", "warm-cast",
                      "palette-dither", "downup-0.5")
"""The corruptions the generalisation benchmark was specified with."""


@pytest.fixture(scope="module")
def fundus() -> np.ndarray:
    return synthetic_fundus((96, 112), seed=1)["image"]


def _grey(level: float = 0.5, shape: tuple[int, int] = (64, 64)) -> np.ndarray:
    return np.full((*shape, 3), level, dtype=np.float32)


def _high_freq(img: np.ndarray) -> float:
    """Mean absolute horizontal difference: what blurring and down-up scaling remove."""
    return float(np.abs(np.diff(img, axis=1)).mean())


def test_registry_has_every_corruption_of_the_benchmark() -> None:
    assert set(GENERALISATION_SET) <= set(CORRUPTIONS)
    with pytest.raises(ValueError, match="unknown corruption"):
        corrupt(_grey(), "sepia")


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_seeded_shape_dtype_range_and_changes_the_image(name: str, fundus: np.ndarray) -> None:
    a = corrupt(fundus, name, seed=3)
    b = corrupt(fundus, name, seed=3)
    assert a.shape == fundus.shape and a.dtype == np.float32
    assert np.array_equal(a, b), "not deterministic under its seed"
    assert a.min() >= 0.0 and a.max() <= 1.0
    assert np.abs(a - fundus).mean() > 1e-3, "leaves the image unchanged"
    assert np.array_equal(fundus, synthetic_fundus((96, 112), seed=1)["image"]), \
        "modified its input in place"


def test_noise_has_the_named_sigma_and_depends_on_the_seed() -> None:
    img = _grey(0.5, (128, 128))  # mid-grey: 0.05 noise is never clipped at 5 sigma
    for sigma in (0.02, 0.05):
        out = corrupt(img, f"noise-{sigma}", seed=0)
        assert abs(float((out - img).std()) - sigma) < 0.1 * sigma
        assert abs(float((out - img).mean())) < 0.1 * sigma
    assert not np.array_equal(corrupt(img, "noise-0.05", 0), corrupt(img, "noise-0.05", 1))


def test_gamma_and_brightness_move_mid_tones_the_named_way() -> None:
    img = _grey(0.5)
    assert np.allclose(corrupt(img, "gamma-1.6"), 0.5**1.6, atol=1e-5)  # darker
    assert np.allclose(corrupt(img, "gamma-0.6"), 0.5**0.6, atol=1e-5)  # brighter
    assert np.allclose(corrupt(img, "brightness-0.7"), 0.35, atol=1e-6)
    assert np.allclose(corrupt(img, "brightness-1.3"), 0.65, atol=1e-6)
    assert np.allclose(corrupt(_grey(0.9), "brightness-1.3"), 1.0)  # clipped, not wrapped


def test_warm_cast_scales_each_channel() -> None:
    out = corrupt(_grey(0.5), "warm-cast")
    assert np.allclose(out[0, 0], 0.5 * np.array(WARM_CAST), atol=1e-6)
    assert out[..., 0].mean() > out[..., 1].mean() > out[..., 2].mean()  # yellow: R, G > B


def test_jpeg_30_loses_more_than_60(fundus: np.ndarray) -> None:
    e30 = np.abs(corrupt(fundus, "jpeg-q30") - fundus).mean()
    e60 = np.abs(corrupt(fundus, "jpeg-q60") - fundus).mean()
    assert e30 > 1.1 * e60 > 0


def test_blur_and_down_up_remove_detail(fundus: np.ndarray) -> None:
    hf = _high_freq(fundus)
    b1, b2 = _high_freq(corrupt(fundus, "blur-1")), _high_freq(corrupt(fundus, "blur-2"))
    assert b2 < b1 < hf
    checker = _grey(0.0)
    checker[::2, ::2] = checker[1::2, 1::2] = 1.0  # 1-pixel detail: gone after x0.5
    assert _high_freq(corrupt(checker, "downup-0.5")) < 0.1 * _high_freq(checker)


def test_palette_conversions_quantise_colours(fundus: np.ndarray) -> None:
    web = corrupt(fundus, "palette-dither")
    levels = np.unique(np.round(web * 255))
    assert set(levels) <= {0, 51, 102, 153, 204, 255}  # the 6x6x6 web cube
    # Floyd-Steinberg dithering: a smooth area becomes a pattern of neighbouring colours.
    assert _high_freq(web) > 2 * _high_freq(fundus)
    gif = corrupt(fundus, "gif")
    assert len(np.unique(gif.reshape(-1, 3), axis=0)) <= 256
