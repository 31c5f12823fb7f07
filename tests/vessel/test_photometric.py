"""Photometric augmentation: image-only, labels binary and aligned, seeded, and the
training-time FOV standardisation equal to inference's."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vesselflow.vessel.data.augment import TrainAugment
from vesselflow.vessel.data.photometric import PhotometricAugment
from vesselflow.vessel.preprocess.normalise import fov_standardise, load_drive_stats


def _item(seed: int = 0, size: int = 96) -> dict[str, np.ndarray]:
    """A fundus-like image: round FOV, reddish background, dark 'vessel' lines = the label."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    fov = (yy - size / 2) ** 2 + (xx - size / 2) ** 2 < (0.45 * size) ** 2
    label = ((xx % 17 < 2) | (yy % 23 < 2)) & fov
    base = np.array([0.7, 0.35, 0.15], np.float32)
    image = base[:, None, None] * (1 - 0.5 * label[None]) + 0.02 * rng.standard_normal(
        (3, size, size)).astype(np.float32)
    image = np.clip(image, 0, 1) * fov[None]
    return {"image": image.astype(np.float32), "label": label.astype(np.float32)[None],
            "fov": fov.astype(np.float32)[None]}


def _aug(**kw) -> TrainAugment:
    return TrainAugment(patch_size=48, seed=3, **kw)


def test_photometric_changes_the_image_only() -> None:
    item = _item()
    plain = _aug()(item)
    photo = _aug(photometric=PhotometricAugment(p=1.0))(item)
    # The geometry is drawn first, so the first call's masks are the plain run's, exactly.
    for key in ("label", "fov"):
        assert torch.equal(photo[key], plain[key])
        assert set(photo[key].unique().tolist()) <= {0.0, 1.0}
    assert not torch.allclose(photo["image"], plain["image"], atol=1e-3)
    assert photo["image"].min() >= 0 and photo["image"].max() <= 1
    assert photo["image"].dtype == torch.float32 and photo["image"].shape == (3, 48, 48)


def test_photometric_patch_stays_aligned_with_its_label() -> None:
    """Vessel pixels stay darker than background ones in the green channel after every
    draw: the image was not shifted, flipped or rotated against the label."""
    aug = _aug(photometric=PhotometricAugment(p=1.0))
    seen = 0
    for k in range(20):
        out = aug(_item(k))
        lab, fov = out["label"][0] > 0.5, out["fov"][0] > 0.5
        g = out["image"][1]
        if lab.sum() < 10 or (fov & ~lab).sum() < 10:
            continue
        seen += 1
        assert g[lab].mean() < g[fov & ~lab].mean(), k
    assert seen >= 10


def test_photometric_is_seeded_and_varies() -> None:
    a = _aug(photometric=PhotometricAugment())
    b = _aug(photometric=PhotometricAugment())
    outs_a = [a(_item())["image"] for _ in range(12)]
    outs_b = [b(_item())["image"] for _ in range(12)]
    assert all(torch.equal(x, y) for x, y in zip(outs_a, outs_b, strict=True))
    means = torch.stack([o.mean() for o in outs_a])
    assert means.std() > 0.01  # the draws differ from call to call


def test_extra_pixels_get_the_patch_colour_transform() -> None:
    """The FOV sample the standardisation uses sees the same colour change as the patch."""
    colour = np.array([0.6, 0.3, 0.1], np.float32)
    patch = np.broadcast_to(colour, (32, 32, 3)).copy()
    extra = np.broadcast_to(colour, (500, 3)).copy()
    for seed in range(10):
        aug = PhotometricAugment(p=1.0, seed=seed)
        out, out_extra = aug(patch, extra)
        assert out_extra.shape == (500, 3)
        np.testing.assert_allclose(out.reshape(-1, 3).mean(0), out_extra.mean(0), atol=0.04)


def test_training_standardisation_matches_inference() -> None:
    """With no geometry and the whole image as 'patch', the training-time standardisation
    (statistics from a FOV sample) equals inference's fov_standardise to sampling error."""
    item = _item(size=128)
    aug = TrainAugment(patch_size=None, rotate=False, scale=None, shear_std_deg=0, flip=False,
                       seed=0, input_norm="fov-standardise")
    out = aug(item)["image"].numpy().transpose(1, 2, 0)
    fov = item["fov"][0] > 0.5
    ref = fov_standardise(item["image"].transpose(1, 2, 0), fov, load_drive_stats())
    assert np.abs(out - ref)[fov].mean() < 0.01
    assert np.all(out[~fov] == 0)
    raw = item["image"].transpose(1, 2, 0)
    assert np.abs(raw - ref)[fov].mean() > 0.05  # the check above is not vacuous


def test_unknown_input_norm_is_refused() -> None:
    with pytest.raises(ValueError, match="input_norm"):
        TrainAugment(input_norm="zscore")
