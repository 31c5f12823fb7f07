"""The one way back to the photo's size: ``Segmentation.at_original_size`` and what
``vesselflow.vessel.outputs.write_outputs`` writes from it."""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
from PIL import Image
from skimage.transform import resize

from vesselflow.vessel.analysis.pipeline import Segmentation
from vesselflow.vessel.outputs import write_outputs
from vesselflow.vessel.preprocess.scale import ScaleInfo


def _segmentation(original: tuple[int, int], analysis: tuple[int, int]) -> Segmentation:
    """A segmentation of a photo of size ``original`` analysed at size ``analysis``."""
    rng = np.random.default_rng(sum(original) + sum(analysis))
    mean = rng.random(analysis).astype(np.float32)
    fov = np.ones(analysis, bool)
    yy, xx = np.mgrid[:original[0], :original[1]]
    original_fov = (yy - original[0] / 2) ** 2 + (xx - original[1] / 2) ** 2 < (
        0.45 * min(original)) ** 2
    return Segmentation(
        image=np.zeros((*analysis, 3), np.float32), fov=fov, mean=mean,
        std=np.sqrt(mean * (1 - mean)), samples=rng.random((3, *analysis)) < 0.5, n=3,
        scale=ScaleInfo(original, analysis, analysis[0] / original[0], 100.0),
        fov_source="detected", seconds=0.0, input_features={}, original_fov=original_fov)


def _nearest(n_out: int, n_in: int) -> np.ndarray:
    """The input pixel under each output pixel's centre, in exact integer arithmetic:
    floor((i + 1/2) * n_in / n_out) = floor((2i + 1) n_in / (2 n_out))."""
    return (2 * np.arange(n_out) + 1) * n_in // (2 * n_out)


@pytest.mark.parametrize("original, analysis", [
    ((83, 101), (40, 50)),  # a photo shrunk for analysis
    ((176, 208), (581, 687)),  # a small photo enlarged for analysis
    ((601, 531), (1345, 1188)),  # ties: skimage's order-0 resize picks the earlier pixel
    ((64, 64), (64, 64)),  # not resized
])
def test_maps_come_back_at_the_original_size_as_the_files_hold_them(
        original: tuple[int, int], analysis: tuple[int, int], tmp_path: Path) -> None:
    seg = _segmentation(original, analysis)
    maps = seg.at_original_size(0.5)
    assert maps.mean.shape == maps.std.shape == maps.mask.shape == maps.fov.shape == original
    assert maps.samples.shape == (3, *original) and maps.samples.dtype == bool
    assert maps.mean.dtype == np.float32 and 0 <= maps.mean.min() and maps.mean.max() <= 1
    assert 0 <= maps.std.min() and maps.std.max() <= 0.5
    np.testing.assert_array_equal(maps.mask, (maps.mean >= 0.5) & seg.original_fov)
    # Samples: each pixel takes the analysis pixel under its centre.
    rows, cols = _nearest(original[0], analysis[0]), _nearest(original[1], analysis[1])
    np.testing.assert_array_equal(maps.samples, seg.samples[:, rows][:, :, cols])
    # ... which are skimage's nearest-neighbour picks, except at exact ties (an output centre
    # halfway between two analysis pixels), where both are nearest.
    if original != analysis:
        tie_r = (2 * np.arange(original[0]) + 1) * analysis[0] % (2 * original[0]) == 0
        tie_c = (2 * np.arange(original[1]) + 1) * analysis[1] % (2 * original[1]) == 0
        sk = resize(seg.samples[0], original, order=0, anti_aliasing=False).astype(bool)
        off = ~tie_r[:, None] & ~tie_c[None, :]
        np.testing.assert_array_equal(sk[off], maps.samples[0][off])
    # write_outputs writes exactly these maps.
    write_outputs(tmp_path, "x", np.zeros((*original, 3), np.float32), seg, 0.5,
                  save_samples=True)
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "x_prob.tif"), maps.mean)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x_mask.png")) > 0,
                                  maps.mask)
    np.testing.assert_array_equal(np.asarray(Image.open(tmp_path / "x_fov.png")) > 0, maps.fov)
    stack = np.asarray(nib.load(tmp_path / "x_samples.nii.gz").dataobj)
    np.testing.assert_array_equal(stack, np.moveaxis(maps.samples, 0, -1).astype(np.uint8))


def test_samples_can_be_left_out() -> None:
    seg = _segmentation((83, 101), (40, 50))
    assert seg.at_original_size(0.5, samples=False).samples is None
