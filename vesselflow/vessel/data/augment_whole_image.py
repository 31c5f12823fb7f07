"""The original whole-image augmentation path, kept as the oracle the fast one must match.

:class:`WholeImageTrainAugment` is :class:`~vesselflow.vessel.data.augment.TrainAugment` with its
geometry done as before the patch-region warp: ``albumentations.Affine`` on the whole
565x584 image and every mask, then the crop (~25 ms per sample instead of ~3 ms). It draws
the same random numbers in the same order, so for one seed both give the same patches up to
OpenCV's 1/32-pixel coordinate rounding. Used by the tests and by
``benchmarks/bench_train.py`` ("before"); not by training.
"""

from __future__ import annotations

import albumentations as A
import cv2
import numpy as np

from vesselflow.vessel.data.augment import TrainAugment, _crop


class WholeImageTrainAugment(TrainAugment):
    """Whole-image warp, then crop (the implementation before the patch-region warp)."""

    def _geometry(self, image: np.ndarray, masks: dict[str, np.ndarray],
                  params: dict[str, float | bool]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        h, w = image.shape[-2:]
        keys = list(masks)
        mask_list = [(masks[k] > 0.5).astype(np.uint8) for k in keys]
        hwc = np.ascontiguousarray(image.transpose(1, 2, 0))
        if params["flip"]:
            hwc = np.ascontiguousarray(hwc[:, ::-1])
            mask_list = [np.ascontiguousarray(m[:, ::-1]) for m in mask_list]
        affine = A.Affine(
            scale=(params["scale"], params["scale"]),
            rotate=(params["rotate"], params["rotate"]),
            shear={"x": (params["shear"], params["shear"]), "y": (0.0, 0.0)},
            interpolation=cv2.INTER_LINEAR,
            mask_interpolation=cv2.INTER_NEAREST,
            border_mode=cv2.BORDER_CONSTANT,
            fill=0,
            fill_mask=0,
            p=1.0,
        )
        out = affine(image=hwc, masks=mask_list) if mask_list else affine(image=hwc)
        hwc = out["image"]
        mask_list = list(out.get("masks", []))
        if self.patch_size is not None:
            fov = mask_list[keys.index("fov")] if "fov" in keys else None
            top, left = self._whole_image_crop_origin(h, w, fov)
            hwc = _crop(hwc, top, left, self.patch_size)
            mask_list = [_crop(m, top, left, self.patch_size) for m in mask_list]
        return hwc, dict(zip(keys, mask_list, strict=True))

    def _whole_image_crop_origin(self, h: int, w: int, fov: np.ndarray | None) -> tuple[int, int]:
        p = self.patch_size
        assert p is not None
        rng = self.rng
        if fov is not None and fov.any():
            ys, xs = np.nonzero(fov)
            k = int(rng.integers(len(ys)))
            cy, cx = int(ys[k]), int(xs[k])
        else:
            cy, cx = int(rng.integers(h)), int(rng.integers(w))
        top = min(max(cy - p // 2, 0), max(h - p, 0))
        left = min(max(cx - p // 2, 0), max(w - p, 0))
        return top, left
