"""vesselflow.data.synthetic: deterministic, fundus-like, vessels labelled and darker."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage as ndi

from vesselflow.data.synthetic import synthetic_fundus


def test_types_and_shapes() -> None:
    d = synthetic_fundus((200, 240), seed=0)
    assert d["image"].shape == (200, 240, 3) and d["image"].dtype == np.float32
    assert d["label"].shape == d["fov"].shape == (200, 240)
    assert d["label"].dtype == d["fov"].dtype == bool
    assert 0.0 <= d["image"].min() and d["image"].max() <= 1.0


def test_deterministic_per_seed() -> None:
    a, b, c = synthetic_fundus(seed=5), synthetic_fundus(seed=5), synthetic_fundus(seed=6)
    for key in ("image", "label", "fov"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["label"], c["label"])


@pytest.mark.parametrize("seed", range(5))
def test_label_non_empty_inside_fov(seed: int) -> None:
    d = synthetic_fundus(seed=seed)
    assert 0.01 < d["label"].mean() < 0.2
    assert not (d["label"] & ~d["fov"]).any()
    assert not d["image"][~d["fov"]].any()  # black surround
    # A tree, not dust: (8-)connected pieces rooted at the optic disc.
    labels, n = ndi.label(d["label"], structure=np.ones((3, 3), bool))
    sizes = np.sort(np.bincount(labels.ravel())[1:])[::-1]
    assert n <= 4 and sizes[0] > 0.9 * d["label"].sum()


@pytest.mark.parametrize("seed", range(5))
def test_vessels_darker_than_surroundings(seed: int) -> None:
    d = synthetic_fundus(seed=seed)
    label, fov, green = d["label"], d["fov"], d["image"][..., 1]
    ring = ndi.binary_dilation(label, iterations=3) & ~label & fov
    assert green[label].mean() < 0.85 * green[ring].mean()
    red = d["image"][..., 0]
    assert red[fov].mean() > green[fov].mean()  # reddish-orange
