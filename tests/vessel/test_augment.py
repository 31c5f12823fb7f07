"""vesselflow.vessel.data.augment (paper augmentation + patch crop) and .padding."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage as ndi
from torch.utils.data import DataLoader, Dataset

from vesselflow.vessel.data.augment import TrainAugment
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.preprocess.padding import crop_padding, pad_to_multiple


def _fundus_item(size: tuple[int, int] = (160, 150), seed: int = 0) -> dict[str, object]:
    d = synthetic_fundus(size, seed=seed)
    return {
        "id": f"synthetic_{seed}",
        "image": d["image"].transpose(2, 0, 1),
        "label": d["label"][None].astype(np.float32),
        "fov": torch.from_numpy(d["fov"][None].astype(np.float32)),  # torch input works too
    }


def _smooth_item(shape: tuple[int, int] = (300, 280)) -> dict[str, np.ndarray]:
    """Image whose green channel thresholded at 0.5 IS the label: alignment is checkable."""
    rng = np.random.default_rng(0)
    field = ndi.gaussian_filter(rng.random(shape), 16)
    field = ((field - field.min()) / (field.max() - field.min())).astype(np.float32)
    return {
        "image": np.stack([1 - field, field, field * 0.5]),
        "label": (field > 0.5)[None].astype(np.float32),
        "fov": np.ones((1, *shape), np.float32),
    }


def test_output_shapes_types_and_passthrough() -> None:
    out = TrainAugment(patch_size=96, seed=0)(_fundus_item())
    assert out["id"] == "synthetic_0"
    assert out["image"].shape == (3, 96, 96)
    assert out["label"].shape == out["fov"].shape == (1, 96, 96)
    assert all(out[k].dtype == torch.float32 for k in ("image", "label", "fov"))


def test_full_image_when_patch_size_none() -> None:
    out = TrainAugment(patch_size=None, seed=0)(_fundus_item())
    assert out["image"].shape == (3, 160, 150) and out["label"].shape == (1, 160, 150)


def test_labels_stay_binary() -> None:
    aug = TrainAugment(patch_size=128, seed=1)
    item = _fundus_item()
    for _ in range(10):
        out = aug(item)
        for key in ("label", "fov"):
            assert set(out[key].unique().tolist()) <= {0.0, 1.0}


def test_image_label_fov_stay_aligned() -> None:
    item = _smooth_item()
    agreements = []
    for seed in range(8):
        out = TrainAugment(patch_size=128, seed=seed)(item)
        inside = out["fov"][0] > 0.5  # outside the rotated frame everything is 0
        same = (out["image"][1] > 0.5) == (out["label"][0] > 0.5)
        agreements.append(float(same[inside].float().mean()))
        # The FOV moves with the image: every non-black pixel lies in the FOV or on the
        # one-pixel bilinear seam along its edge.
        near_fov = ndi.binary_dilation(inside.numpy(), structure=np.ones((3, 3), bool))
        assert not (out["image"].sum(0).numpy() > 1e-6)[~near_fov].any()
    # Bilinear image vs nearest label differ only along edges; a 1-pixel misalignment of
    # this field would already cost ~2%.
    assert min(agreements) > 0.985 and np.mean(agreements) > 0.99, agreements


def test_patch_centre_prefers_fov() -> None:
    aug = TrainAugment(patch_size=32, seed=0)
    centre_in_fov = [float(aug(_fundus_item((256, 256)))["fov"][0, 16, 16]) for _ in range(20)]
    assert np.mean(centre_in_fov) == 1.0


def test_seeds() -> None:
    item = _fundus_item()
    a, b = TrainAugment(seed=3)(item), TrainAugment(seed=3)(item)
    c = TrainAugment(seed=4)(item)
    assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])
    assert not torch.equal(a["image"], c["image"])
    aug = TrainAugment(seed=3)
    first, second = aug(item), aug(item)
    assert not torch.equal(first["image"], second["image"])  # a sequence, not a fixed draw
    aug.set_random_state(3)
    assert torch.equal(aug(item)["image"], a["image"])


def test_sampled_parameters_follow_the_paper() -> None:
    aug = TrainAugment(seed=0)
    params = [aug.sample_params() for _ in range(4000)]
    rot = np.array([p["rotate"] for p in params])
    scale = np.array([p["scale"] for p in params])
    shear = np.array([p["shear"] for p in params])
    assert rot.min() < -170 and rot.max() > 170 and abs(rot.mean()) < 10
    assert 0.8 <= scale.min() < 0.81 and 1.19 < scale.max() <= 1.2
    assert abs(shear.std() - 10.0) < 0.5 and abs(shear.mean()) < 0.5


class _Repeat(Dataset):
    def __init__(self, item: dict[str, object], n: int, transform: TrainAugment) -> None:
        self.item, self.n, self.transform = item, n, transform

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index: int) -> dict[str, object]:
        return self.transform(self.item)


def test_dataloader_workers_draw_differently() -> None:
    aug = TrainAugment(patch_size=48, seed=7)
    aug(_fundus_item())  # the main process's generator exists before workers fork
    loader = DataLoader(_Repeat(_fundus_item(), 4, aug), batch_size=1, num_workers=2)
    images = [batch["image"][0] for batch in loader]
    # Items 0 and 1 come from different workers; with a copied generator they would match.
    assert not torch.equal(images[0], images[1])
    assert not torch.equal(images[0], images[2])


def test_bad_inputs() -> None:
    with pytest.raises(KeyError, match="image"):
        TrainAugment()({"label": np.zeros((1, 8, 8))})
    with pytest.raises(ValueError, match="label has shape"):
        TrainAugment()({"image": np.zeros((3, 8, 8)), "label": np.zeros((1, 9, 8))})
    with pytest.raises(ValueError, match="scale"):
        TrainAugment(scale=(1.2, 0.8))


# ----------------------------------------------------------------------------- padding
@pytest.mark.parametrize("multiple", [4, 8, 16])
@pytest.mark.parametrize("mode", ["reflect", "constant", "replicate"])
def test_pad_round_trip_bit_exact(multiple: int, mode: str) -> None:
    x = torch.rand(2, 3, 584, 565)
    padded, pad = pad_to_multiple(x, multiple, mode=mode)
    assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
    assert pad[0] == pad[2] == 0  # bottom/right only: coordinates do not shift
    assert padded.shape[-2:] == (584 + pad[3], 565 + pad[1])
    assert torch.equal(crop_padding(padded, pad), x)
    if mode in ("reflect", "replicate"):
        assert torch.equal(padded, torch.nn.functional.pad(x, pad, mode=mode))


@pytest.mark.parametrize("multiple", [4, 8, 16])
def test_pad_numpy_and_any_dtype(multiple: int) -> None:
    rng = np.random.default_rng(0)
    for a in (
        rng.random((584, 565)),
        rng.random((1, 584, 565)) > 0.5,
        rng.integers(0, 255, (3, 584, 565), dtype=np.uint8),
    ):
        padded, pad = pad_to_multiple(a, multiple)
        assert isinstance(padded, np.ndarray) and padded.dtype == a.dtype
        assert padded.shape[-2] % multiple == 0 and padded.shape[-1] % multiple == 0
        np.testing.assert_array_equal(crop_padding(padded, pad), a)
    mask = torch.rand(1, 584, 565) > 0.5
    padded, pad = pad_to_multiple(mask, multiple, mode="constant")
    assert padded.dtype == torch.bool and torch.equal(crop_padding(padded, pad), mask)


def test_pad_already_multiple_and_tiny() -> None:
    x = torch.rand(1, 64, 32)
    same, pad = pad_to_multiple(x, 16)
    assert same is x and pad == (0, 0, 0, 0)
    tiny = torch.arange(6.0).reshape(2, 3)  # pads far larger than the image still reflect
    padded, pad = pad_to_multiple(tiny, 16)
    assert padded.shape == (16, 16) and torch.equal(crop_padding(padded, pad), tiny)
    assert padded[0, :6].tolist() == [0, 1, 2, 1, 0, 1]
