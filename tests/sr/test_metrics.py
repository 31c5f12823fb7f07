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


def test_grey_images_are_scored_on_their_grey_values(pair: tuple[np.ndarray, np.ndarray]
                                                     ) -> None:
    sr, hr = pair
    g_hr, g_sr = hr[..., 0], sr[..., 0]
    rgb_sr = np.stack([g_sr] * 3, axis=-1)  # a model's RGB output for a replicated grey input
    ref = peak_signal_noise_ratio(g_hr[2:-2, 2:-2].astype(float),
                                  g_sr[2:-2, 2:-2].astype(float), data_range=255)
    assert psnr_y(rgb_sr, g_hr) == pytest.approx(ref, abs=1e-9)
    assert psnr_y(g_sr, g_hr) == pytest.approx(ref, abs=1e-9)
    # scoring the replicated image on Y = 16 + 219 g / 255 would add 20 log10(255 / 219) dB
    y_score = psnr_y(rgb_sr, np.stack([g_hr] * 3, axis=-1))
    assert y_score - ref == pytest.approx(20 * np.log10(255 / 219), abs=1e-9)
    ref_ssim = structural_similarity(g_hr[2:-2, 2:-2].astype(float),
                                     g_sr[2:-2, 2:-2].astype(float), gaussian_weights=True,
                                     sigma=1.5, use_sample_covariance=False, data_range=255)
    assert ssim_y(rgb_sr, g_hr) == pytest.approx(ref_ssim, abs=1e-9)
    with pytest.raises(ValueError, match="differ"):
        psnr_y(rgb_sr[:-2], g_hr)


def test_bicubic_reproduces_the_published_psnr(shared_data_dir) -> None:
    """Bicubic x2 on Set5 / Set14 / BSD100: 33.66 / 30.24 / 29.56 dB (SRCNN's Table) within
    0.015 dB, with Set14's grey ``bridge`` scored on its grey values."""
    from vesselflow.sr.data import SRBenchmark
    from vesselflow.sr.resize import bicubic_upscale

    root = shared_data_dir / "SR"
    if not (root / "Set14").is_dir():
        pytest.skip(f"SR benchmark sets not found under {root}")
    for name, published in (("Set5", 33.66), ("Set14", 30.24), ("BSD100", 29.56)):
        bench = SRBenchmark(root, name, 2)
        scores = []
        for i in range(len(bench)):
            _, hr, lr = bench[i]
            scores.append(psnr_y(bicubic_upscale(lr, 2), hr[..., 0] if bench.grey[i] else hr))
        assert abs(np.mean(scores) - published) <= 0.015, (name, np.mean(scores))
        assert sum(bench.grey) == (name == "Set14")  # bridge is the only grey image
