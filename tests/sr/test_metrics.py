"""Y-channel PSNR / SSIM under the standard SR protocol."""

from __future__ import annotations

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from vesselflow.sr.metrics import psnr_y, rgb_to_y, ssim_y


def _y_reference(img: np.ndarray) -> np.ndarray:
    """BT.601 studio-swing luma written out channel by channel."""
    rgb = img.astype(np.float64) / 255.0
    return 16.0 + 65.481 * rgb[..., 0] + 128.553 * rgb[..., 1] + 24.966 * rgb[..., 2]


@pytest.fixture
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    hr = rng.integers(0, 256, (40, 36, 3), dtype=np.uint8)
    noise = rng.normal(0, 8, hr.shape)
    sr = np.clip(hr + noise, 0, 255).round().astype(np.uint8)
    return sr, hr


def test_rgb_to_y_range_and_known_values() -> None:
    px = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0]]], dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(px)[0], [16.0, 235.0, 16.0 + 65.481], atol=1e-9)
    gray = np.array([[0, 128, 255]], dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(gray), rgb_to_y(np.stack([gray] * 3, axis=-1)))


def test_psnr_ssim_match_skimage_on_independent_y(pair: tuple[np.ndarray, np.ndarray]) -> None:
    sr, hr = pair
    b = 2
    y_sr, y_hr = _y_reference(sr)[b:-b, b:-b], _y_reference(hr)[b:-b, b:-b]
    ref_psnr = peak_signal_noise_ratio(y_hr, y_sr, data_range=255)
    ref_ssim = structural_similarity(y_hr, y_sr, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False, data_range=255)
    assert psnr_y(sr, hr, border=b) == pytest.approx(ref_psnr, abs=1e-9)
    assert ssim_y(sr, hr, border=b) == pytest.approx(ref_ssim, abs=1e-9)
    # float input on the 0..255 scale gives the same numbers as uint8
    assert psnr_y(sr.astype(np.float32), hr.astype(np.float64), border=b) == pytest.approx(
        ref_psnr, abs=1e-6)


def test_identical_images(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, hr = pair
    assert psnr_y(hr, hr) == float("inf")
    assert ssim_y(hr, hr) == pytest.approx(1.0)
    assert psnr_y(hr[..., 0], hr[..., 0]) == float("inf")


def test_border_crop_is_honoured(pair: tuple[np.ndarray, np.ndarray]) -> None:
    _, hr = pair
    sr = hr.copy()
    sr[:3] = 255 - sr[:3]  # damage only the top 3 rows
    assert psnr_y(sr, hr, border=3) == float("inf")
    assert np.isfinite(psnr_y(sr, hr, border=2))
    assert ssim_y(sr, hr, border=3) == pytest.approx(1.0)
    assert ssim_y(sr, hr, border=2) < 1.0
    with pytest.raises(ValueError):
        psnr_y(sr, hr[:-1])
