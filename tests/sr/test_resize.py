"""MATLAB-compatible bicubic resize: kernel weights, invariants, and the Set5 bicubic baseline."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_dir
from PIL import Image

from vesselflow.sr.metrics import psnr_y
from vesselflow.sr.resize import bicubic_degrade, bicubic_upscale, contributions, imresize

DATA = data_dir()


def _keys(t: float, a: float = -0.5) -> float:
    """Keys' cubic kernel written out independently from the library's vectorised version."""
    t = abs(t)
    if t <= 1:
        return (a + 2) * t**3 - (a + 3) * t**2 + 1
    if t < 2:
        return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
    return 0.0


def test_x2_downscale_weights_match_hand_values() -> None:
    # x2 down: u = 2x - 0.5; the stretched kernel k(d/2)/2 over d = u - j gives 8 taps:
    # k(.25)=0.8671875, k(.75)=0.2265625, k(1.25)=-0.0703125, k(1.75)=-0.0234375, sum 2.
    hand = np.array([-0.01171875, -0.03515625, 0.11328125, 0.43359375,
                     0.43359375, 0.11328125, -0.03515625, -0.01171875])
    direct = np.array([_keys(d / 2) for d in np.arange(3.5, -4.0, -1.0)])
    direct /= direct.sum()
    np.testing.assert_allclose(direct, hand, atol=1e-12)
    w, idx = contributions(20, 10, 0.5)
    assert w.shape == (10, 8)
    for row in range(10):
        np.testing.assert_allclose(w[row], hand, atol=1e-12)
    # Output 5 (0-based 4) centres on input 9.5 (0-based 8.5): taps 5..12.
    np.testing.assert_array_equal(idx[4], np.arange(5, 13))
    # Near the border taps mirror half-sample symmetrically: -3..4 -> 2,1,0,0,1,2,3,4.
    np.testing.assert_array_equal(idx[0], [2, 1, 0, 0, 1, 2, 3, 4])


def test_x2_upscale_weights_match_keys_kernel() -> None:
    w, _ = contributions(10, 20, 2.0)
    # Output 4 (0-based) maps to u = 5/2 + 0.5 * (1 - 1/2) = 2.75 (1-based).
    expected = np.array([_keys(2.75 - j) for j in range(1, 5)])
    nz = w[4][w[4] != 0]
    np.testing.assert_allclose(nz, expected / expected.sum(), atol=1e-12)
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("scale", [0.5, 2.0, 0.25])
def test_constant_image_is_preserved(scale: float) -> None:
    img = np.full((16, 12, 3), 0.37)
    out = imresize(img, scale)
    assert out.shape == (int(np.ceil(16 * scale)), int(np.ceil(12 * scale)), 3)
    np.testing.assert_allclose(out, 0.37, atol=1e-12)


def test_linear_ramp_interior_follows_mapped_coordinates() -> None:
    # Cubic interpolation reproduces linear functions exactly (symmetric, normalised weights),
    # so away from the mirrored border the output is the ramp at u = x / s + (1 - 1/s) / 2.
    n = 40
    ramp = np.tile(np.arange(1, n + 1, dtype=np.float64)[:, None], (1, 6))
    for scale in (0.5, 2.0):
        out = imresize(ramp, scale)[:, 0]
        x = np.arange(1, out.size + 1)
        u = x / scale + 0.5 * (1 - 1 / scale)
        interior = (u > 6) & (u < n - 5)
        np.testing.assert_allclose(out[interior], u[interior], atol=1e-10)


def test_uint8_roundtrip_and_loose_agreement_with_pil() -> None:
    rng = np.random.default_rng(0)
    smooth = np.asarray(Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
                        .resize((64, 64), Image.BICUBIC))
    up = bicubic_upscale(smooth, 2)
    assert up.dtype == np.uint8 and up.shape == (128, 128, 3)
    # PIL's bicubic is also Keys a=-0.5 with the same centre mapping when upscaling, so it
    # agrees away from the border up to its fixed-point arithmetic.
    pil = np.asarray(Image.fromarray(smooth).resize((128, 128), Image.BICUBIC))
    diff = np.abs(up.astype(int) - pil.astype(int))[4:-4, 4:-4]
    assert diff.max() <= 2


def test_bicubic_degrade_crops_to_multiple_of_scale() -> None:
    hr = np.random.default_rng(1).integers(0, 256, (31, 22, 3), dtype=np.uint8)
    hr_c, lr = bicubic_degrade(hr, 2)
    assert hr_c.shape == (30, 22, 3) and lr.shape == (15, 11, 3) and lr.dtype == np.uint8
    np.testing.assert_array_equal(hr_c, hr[:30])
    _, gray_lr = bicubic_degrade(hr[..., 0], 2)
    np.testing.assert_array_equal(gray_lr, lr[..., 0])  # channels are resized independently
    with pytest.raises(TypeError):
        bicubic_degrade(hr.astype(np.float32), 2)


def test_set5_x2_bicubic_psnr_matches_published_baseline() -> None:
    folder = DATA / "SR" / "Set5"
    files = sorted(folder.glob("*.png"))
    if len(files) != 5:
        pytest.skip(f"Set5 not found under {folder}")
    psnrs = []
    for f in files:
        with Image.open(f) as im:
            hr = np.asarray(im.convert("RGB"))
        hr_c, lr = bicubic_degrade(hr, 2)
        psnrs.append(psnr_y(bicubic_upscale(lr, 2), hr_c, border=2))
    assert abs(float(np.mean(psnrs)) - 33.66) < 0.05
