"""The patch-region warp of TrainAugment against the original whole-image implementation.

Both draw the same random numbers in the same order, so under one seed they must produce the
same patches; only OpenCV's 1/32-pixel coordinate rounding may differ (image values by far
less than 1e-3, labels in at most a handful of edge pixels).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vesselflow.vessel.data.augment import TrainAugment
from vesselflow.vessel.data.augment_whole_image import WholeImageTrainAugment
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.data.warp import affine_matrix


def _marker_item(shape: tuple[int, int], at: tuple[int, int]) -> dict[str, np.ndarray]:
    """A black image with one bright pixel; the FOV a small disc around it, so the patch
    (centred on a FOV pixel) always contains the marker."""
    h, w = shape
    image = np.zeros((3, h, w), np.float32)
    image[:, at[0], at[1]] = (1.0, 0.5, 0.25)
    yy, xx = np.mgrid[:h, :w]
    fov = ((yy - at[0]) ** 2 + (xx - at[1]) ** 2 <= 15**2).astype(np.float32)
    label = np.zeros((1, h, w), np.float32)
    label[0, at[0] - 3 : at[0] + 4, at[1] - 3 : at[1] + 4] = 1.0
    return {"image": image, "label": label, "fov": fov[None]}


def _assert_same(a: dict, b: dict, label_tol: float = 1e-3) -> None:
    assert a["image"].shape == b["image"].shape
    assert float((a["image"] - b["image"]).abs().max()) < 1e-3
    assert torch.equal(a["fov"], b["fov"])
    assert float((a["label"] != b["label"]).float().mean()) <= label_tol
    for key in ("label", "fov"):
        assert set(a[key].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("seed", range(12))
def test_marker_pixel_lands_where_the_reference_puts_it(seed: int) -> None:
    shape, at = (300, 280), (140, 170)
    item = _marker_item(shape, at)
    new = TrainAugment(patch_size=64, seed=seed)
    ref = WholeImageTrainAugment(patch_size=64, seed=seed)
    a, b = new(item), ref(item)
    _assert_same(a, b)
    ia, ib = a["image"][0], b["image"][0]
    assert ia.max() > 0.2  # bilinear spreads the marker over <= 4 pixels
    assert torch.equal(torch.nonzero(ia > 1e-4), torch.nonzero(ib > 1e-4))
    # And both put it where the sampled affine says (an independent check of the geometry).
    params = TrainAugment(patch_size=64, seed=seed).sample_params()
    x = shape[1] - 1 - at[1] if params["flip"] else at[1]
    px, py = affine_matrix(params, shape) @ np.array([x, at[0], 1.0])
    weights = ia / ia.sum()
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    cy, cx = float((weights * yy).sum()), float((weights * xx).sum())
    # The patch origin is a whole pixel, so the marker's sub-pixel position inside the patch
    # must be the affine's prediction minus integers.
    top_left = np.array([py - cy, px - cx])
    assert np.allclose(top_left, np.round(top_left), atol=0.1), top_left


def test_same_sequence_as_the_reference_on_a_fundus() -> None:
    d = synthetic_fundus((200, 190), seed=3)
    item = {"image": d["image"].transpose(2, 0, 1), "label": d["label"][None] * 1.0,
            "fov": d["fov"][None] * 1.0}
    new, ref = TrainAugment(patch_size=96, seed=11), WholeImageTrainAugment(patch_size=96, seed=11)
    for _ in range(15):  # one generator each: the whole draw sequence must stay in step
        _assert_same(new(item), ref(item))


@pytest.mark.parametrize("patch_size", [None, 200])
def test_full_image_and_patch_larger_than_image(patch_size: int | None) -> None:
    d = synthetic_fundus((160, 150), seed=1)
    item = {"image": d["image"].transpose(2, 0, 1), "label": d["label"][None] * 1.0,
            "fov": d["fov"][None] * 1.0}
    for seed in range(4):
        a = TrainAugment(patch_size=patch_size, seed=seed)(item)
        b = WholeImageTrainAugment(patch_size=patch_size, seed=seed)(item)
        _assert_same(a, b, label_tol=2e-3)
        if patch_size is not None:  # zero beyond the image, as the zero-padded crop
            assert float(a["image"][:, 160:].abs().max()) == 0.0
            assert float(a["label"][:, :, 150:].max()) == 0.0


def test_same_patches_as_the_reference_on_drive(drive_dir) -> None:
    from vesselflow.vessel.data.drive import DriveDataset

    data = DriveDataset(drive_dir, "train")
    items = [{k: data[i][k] for k in ("image", "label", "fov")} for i in range(3)]
    new, ref = TrainAugment(seed=2), WholeImageTrainAugment(seed=2)
    for j in range(12):
        _assert_same(new(items[j % 3]), ref(items[j % 3]))
