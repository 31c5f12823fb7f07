"""Training augmentation for DRIVE: the paper's random affine, then a random patch crop.

Paper (Winkler et al. 2019, Sec. 5.2): rotation uniform over 360 degrees, isotropic scale
U(0.8, 1.2), shear ~ N(0, 10 degrees). Here the shear is along x (rotation being uniform, its
direction is random anyway) and clipped to +-40 degrees so an extreme draw cannot collapse the
image. A random horizontal flip is added (a vertical flip equals a flip plus a 180-degree
rotation, so it would add nothing). One affine is applied identically to the image (bilinear)
and to every mask (nearest, so labels stay exactly {0, 1}) with albumentations' ``Affine``
matrix, constant-zero border: pixels rotated in from outside are black image, background label
and outside-FOV, as for real fundus surrounds. Only the source window the output patch reads
is warped (:mod:`vesselflow.vessel.data.warp`);
:mod:`vesselflow.vessel.data.augment_whole_image` keeps the original whole-image
``albumentations.Affine`` path that the tests compare against.

The crop centre is drawn among FOV pixels of the augmented FOV, so patches rarely show only
black surround.

Randomness comes from ``np.random.default_rng``. In a DataLoader worker the generator is
re-created on first use from ``torch.initial_seed()`` (distinct per worker and per epoch,
reproducible under ``torch.manual_seed``), mixed with ``seed`` when one is given; in the main
process ``seed`` alone fixes the sequence, so equal seeds give equal outputs.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Mapping
from typing import Any

import cv2
import numpy as np
import torch
from monai.transforms import RandomizableTrait, Transform

from vesselflow.vessel.data.photometric import PhotometricAugment
from vesselflow.vessel.data.warp import affine_matrix, warp_full, warp_region
from vesselflow.vessel.preprocess.normalise import (
    INPUT_NORMS,
    fov_standardise,
    load_drive_stats,
)

IMAGE_KEY = "image"
MASK_KEYS = ("label", "fov", "label2")
_MAX_SHEAR_DEG = 40.0
_CV_DTYPES = (np.float32, np.float64, np.uint8)  # mask dtypes cv2.warpAffine takes as they are
_NORM_PIXELS = 4096  # FOV pixels of the whole photo the standardisation statistics come from


def _to_numpy(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class TrainAugment(RandomizableTrait, Transform):
    """Random affine + flip + FOV-centred patch crop of an {image, label, fov} dict.

    ``RandomizableTrait`` tells MONAI's CacheDataset to cache everything before this
    transform and run it afresh on every access.

    Args:
        patch_size: Side P of the square output patch; None keeps the full (augmented) image.
        rotate: Rotate uniformly over 360 degrees.
        scale: Range (lo, hi) of the isotropic scale factor; None for no scaling.
        shear_std_deg: Standard deviation of the shear angle in degrees (0 disables shear).
        seed: Seed of the numpy generator (see the module docstring for workers).
        flip: Random horizontal flip with probability 0.5.
        photometric: image-only camera augmentation applied to the warped patch
            (:mod:`vesselflow.vessel.data.photometric`); None for the paper's geometry only.
        input_norm: "none" or "fov-standardise": the patch is standardised with the FOV
            statistics of its whole (photometrically augmented) photo, as inference does.

    Call with a dict holding ``image`` (3, H, W) float and optionally ``label``, ``fov``,
    ``label2`` as (1, H, W) or (H, W), numpy or torch. Returns a new dict with the same keys:
    those arrays become torch float32 (C, P, P) (masks (1, P, P) with values {0, 1}); other
    keys (e.g. ``id``) pass through unchanged.
    """

    def __init__(
        self,
        patch_size: int | None = 128,
        rotate: bool = True,
        scale: tuple[float, float] | None = (0.8, 1.2),
        shear_std_deg: float = 10.0,
        seed: int | None = None,
        flip: bool = True,
        photometric: PhotometricAugment | None = None,
        input_norm: str = "none",
    ) -> None:
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        if patch_size is not None and patch_size < 1:
            raise ValueError(f"patch_size must be positive or None, got {patch_size}")
        if scale is not None and not 0 < scale[0] <= scale[1]:
            raise ValueError(f"scale must be (lo, hi) with 0 < lo <= hi, got {scale}")
        self.patch_size = patch_size
        self.rotate = rotate
        self.scale = scale
        self.shear_std_deg = float(shear_std_deg)
        self.flip = flip
        self.seed = seed
        self.photometric = photometric
        self.input_norm = input_norm
        self._drive_stats = load_drive_stats() if input_norm == "fov-standardise" else None
        self._rng: np.random.Generator | None = None
        self._owner: tuple[int, int | None] | None = None

    def __repr__(self) -> str:
        return (
            f"TrainAugment(patch_size={self.patch_size}, rotate={self.rotate}, "
            f"scale={self.scale}, shear_std_deg={self.shear_std_deg}, flip={self.flip}, "
            f"seed={self.seed}, photometric={self.photometric is not None}, "
            f"input_norm={self.input_norm!r})"
        )

    # -- randomness ---------------------------------------------------------------------------
    def set_random_state(self, seed: int | None = None) -> TrainAugment:
        """Restart the random sequence from ``seed`` in the current process."""
        self._rng = np.random.default_rng(seed)
        self._owner = self._current_owner()
        return self

    @staticmethod
    def _current_owner() -> tuple[int, int | None]:
        info = torch.utils.data.get_worker_info()
        return (os.getpid(), None if info is None else info.id)

    @property
    def rng(self) -> np.random.Generator:
        """The generator for this process / DataLoader worker (created on first use)."""
        owner = self._current_owner()
        if self._rng is None or self._owner != owner:
            if owner[1] is None:
                entropy: Any = self.seed
            else:  # a worker: copies of this object must not all replay the same sequence
                entropy = [torch.initial_seed() % 2**63]
                if self.seed is not None:
                    entropy.append(self.seed)
            self._rng = np.random.default_rng(entropy)
            self._owner = owner
        return self._rng

    def sample_params(self) -> dict[str, float | bool]:
        """Draw one set of affine parameters (degrees for angles)."""
        rng = self.rng
        return {
            "rotate": float(rng.uniform(-180.0, 180.0)) if self.rotate else 0.0,
            "scale": float(rng.uniform(*self.scale)) if self.scale is not None else 1.0,
            "shear": float(
                np.clip(rng.normal(0.0, self.shear_std_deg), -_MAX_SHEAR_DEG, _MAX_SHEAR_DEG)
            )
            if self.shear_std_deg > 0
            else 0.0,
            "flip": bool(rng.random() < 0.5) if self.flip else False,
        }

    # -- transform ----------------------------------------------------------------------------
    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        if IMAGE_KEY not in data:
            raise KeyError(f"TrainAugment needs an '{IMAGE_KEY}' entry, got keys {list(data)}")
        image = _to_numpy(data[IMAGE_KEY]).astype(np.float32, copy=False)
        if image.ndim == 2:
            image = image[None]
        if image.ndim != 3:
            raise ValueError(f"image must be (C, H, W), got shape {image.shape}")
        h, w = image.shape[-2:]
        masks: dict[str, np.ndarray] = {}
        for key in (k for k in MASK_KEYS if k in data):
            m = _to_numpy(data[key])
            m = m.reshape(m.shape[-2:]) if m.ndim == 3 and m.shape[0] == 1 else m
            if m.shape != (h, w):
                raise ValueError(f"{key} has shape {m.shape}, image is {(h, w)}")
            masks[key] = m

        params = self.sample_params()
        hwc, patches = self._geometry(image, masks, params)
        hwc = self._photometric(image, masks.get("fov"), hwc, patches.get("fov"))

        result = dict(data)
        result[IMAGE_KEY] = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))
        for key, m in patches.items():
            result[key] = torch.from_numpy(m[None].astype(np.float32))
        return result

    def _photometric(self, image: np.ndarray, fov: np.ndarray | None, patch: np.ndarray,
                     patch_fov: np.ndarray | None) -> np.ndarray:
        """Image-only steps on the warped (P, P, C) patch: camera augmentation, then the
        input normalisation with statistics of the whole photo (its FOV pixels, sampled and
        put through the same colour transform). Masks are untouched."""
        if self.photometric is None and self.input_norm == "none":
            return patch
        extra = None
        if self.input_norm != "none":
            flat = image.reshape(image.shape[0], -1)
            where = np.flatnonzero(fov > 0.5) if fov is not None else np.arange(flat.shape[1])
            if where.size == 0:
                where = np.arange(flat.shape[1])
            idx = where[self.rng.integers(where.size, size=_NORM_PIXELS)]  # with replacement
            extra = np.ascontiguousarray(flat[:, idx].T)  # (N, C)
        if self.photometric is not None:
            self.photometric.set_random_state(int(self.rng.integers(2**31)))
            patch, extra = self.photometric(patch, extra)
        if self.input_norm == "fov-standardise":
            assert extra is not None
            inside = np.ones(patch.shape[:2], bool) if patch_fov is None else patch_fov > 0
            stats = (extra.mean(0, dtype=np.float64), extra.std(0, dtype=np.float64))
            patch = fov_standardise(patch, inside, self._drive_stats, stats=stats)
        return patch

    def _geometry(self, image: np.ndarray, masks: dict[str, np.ndarray],
                  params: dict[str, float | bool]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Flip + affine + crop, warping only the source window the patch reads.

        Args:
            image: (C, H, W) float32. masks: key -> (H, W) (any dtype; > 0.5 is foreground).
            params: From :meth:`sample_params`.

        Returns:
            The (P, P, C) float32 image patch and key -> (P, P) uint8 {0, 1} mask patches.
        """
        h, w = image.shape[-2:]
        hwc = image.transpose(1, 2, 0)  # a view: only the source window gets copied
        if params["flip"]:
            hwc = hwc[:, ::-1]
            masks = {k: m[:, ::-1] for k, m in masks.items()}
        matrix = affine_matrix(params, (h, w))
        # The crop centre is a random pixel of the *augmented* FOV, so that one mask is
        # warped whole (nearest on uint8: ~1 ms, against ~10 ms for the float image).
        fov = None
        if "fov" in masks:
            fov = warp_full((masks["fov"] > 0.5).astype(np.uint8), matrix, cv2.INTER_NEAREST)
        size_h, size_w = (h, w) if self.patch_size is None else (self.patch_size,) * 2
        top, left = (0, 0) if self.patch_size is None else self._crop_origin(h, w, fov)

        patch = warp_region(hwc, matrix, top, left, size_h, size_w, cv2.INTER_LINEAR)
        out: dict[str, np.ndarray] = {}
        for key, m in masks.items():
            if key == "fov" and fov is not None:
                out[key] = fov if self.patch_size is None else _crop(fov, top, left, size_h)
            else:
                # Nearest picks source pixels, so thresholding after the warp equals
                # thresholding before it, on the window only; labels stay exactly {0, 1}.
                src = m if m.dtype in _CV_DTYPES else (m > 0.5).astype(np.uint8)
                out[key] = (warp_region(src, matrix, top, left, size_h, size_w,
                                        cv2.INTER_NEAREST) > 0.5).astype(np.uint8)
        # A patch larger than the image is zero beyond it (as the crop of the full warp).
        if top + size_h > h or left + size_w > w:
            for a in (patch, *out.values()):
                a[h - top:] = 0
                a[:, w - left:] = 0
        return patch, out

    def _crop_origin(self, h: int, w: int, fov: np.ndarray | None) -> tuple[int, int]:
        """Top-left corner of a P x P window whose centre is a random FOV pixel."""
        p = self.patch_size
        assert p is not None
        rng = self.rng
        rows = np.count_nonzero(fov, axis=1) if fov is not None else None
        if rows is not None and rows.any():
            # The k-th FOV pixel in raster order (as np.nonzero would list them), without
            # listing all ~250k of them.
            cum = np.cumsum(rows)
            k = int(rng.integers(int(cum[-1])))
            cy = int(np.searchsorted(cum, k, side="right"))
            before = int(cum[cy - 1]) if cy else 0
            cx = int(np.flatnonzero(fov[cy])[k - before])
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        # Keep the window inside the image when it fits; otherwise it is zero-padded.
        top = min(max(cy - p // 2, 0), max(h - p, 0))
        left = min(max(cx - p // 2, 0), max(w - p, 0))
        return top, left


def _crop(a: np.ndarray, top: int, left: int, size: int) -> np.ndarray:
    """(H, W, ...) -> (size, size, ...), zero-padded at bottom/right if the input is smaller."""
    patch = a[top : top + size, left : left + size]
    if patch.shape[0] < size or patch.shape[1] < size:
        padded = np.zeros((size, size, *a.shape[2:]), dtype=a.dtype)
        padded[: patch.shape[0], : patch.shape[1]] = patch
        patch = padded
    return patch
