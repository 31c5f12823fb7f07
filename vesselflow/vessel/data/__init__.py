"""Vessel data: DRIVE loading and preparation, augmentation, padding and synthetic fundus
images, with the readers, FOV detection and scale handling the notebooks use next to them.

Modules (import the one you need; names below are also re-exported lazily from here, so
``import vesselflow.vessel.data`` stays cheap and only pulls MONAI/albumentations on first use):

* :mod:`vesselflow.io.errors` - :class:`ImageReadError` (every bad input),
  :class:`DatasetLayoutError`;
* :mod:`vesselflow.io.images` / :mod:`vesselflow.io.masks` - :func:`read_image`,
  :func:`read_image_bytes`, :func:`read_mask`, :func:`read_mask_bytes`;
* :mod:`.drive` - DRIVE splits, records, MONAI loading, :class:`DriveDataset`;
* :mod:`.prepare` - :func:`verify_drive`, :func:`prepare_drive`;
* :mod:`.augment` - :class:`TrainAugment` (paper's random affine + patch crop, warping only
  the patch's source window, :mod:`.warp`); :mod:`.augment_whole_image` - the whole-image
  path it is tested against;
* :mod:`vesselflow.vessel.preprocess.padding` - :func:`pad_to_multiple`, :func:`crop_padding`;
* :mod:`vesselflow.vessel.preprocess.fov` - :func:`detect_fov`, :func:`fov_diameter`;
* :mod:`vesselflow.vessel.preprocess.scale` - :data:`DRIVE_FOV_DIAMETER`,
  :func:`rescale_to_drive`, :func:`restore_size`;
* :mod:`.synthetic` - :func:`synthetic_fundus`.
"""

from __future__ import annotations

import importlib
from typing import Any

from vesselflow.io.errors import DatasetLayoutError, ImageReadError

_LAZY = {
    "read_image": "vesselflow.io.images",
    "read_image_bytes": "vesselflow.io.images",
    "read_mask": "vesselflow.io.masks",
    "read_mask_bytes": "vesselflow.io.masks",
    "DRIVE_SHAPE": "vesselflow.vessel.data.drive",
    "TEST_IDS": "vesselflow.vessel.data.drive",
    "TRAIN_IDS": "vesselflow.vessel.data.drive",
    "VAL_IDS": "vesselflow.vessel.data.drive",
    "DriveDataset": "vesselflow.vessel.data.drive",
    "drive_records": "vesselflow.vessel.data.drive",
    "find_drive_root": "vesselflow.vessel.data.drive",
    "load_drive_transform": "vesselflow.vessel.data.drive",
    "prepare_drive": "vesselflow.vessel.data.prepare",
    "verify_drive": "vesselflow.vessel.data.prepare",
    "TrainAugment": "vesselflow.vessel.data.augment",
    "crop_padding": "vesselflow.vessel.preprocess.padding",
    "pad_to_multiple": "vesselflow.vessel.preprocess.padding",
    "detect_fov": "vesselflow.vessel.preprocess.fov",
    "DRIVE_FOV_DIAMETER": "vesselflow.vessel.preprocess.scale",
    "ScaleInfo": "vesselflow.vessel.preprocess.scale",
    "fov_diameter": "vesselflow.vessel.preprocess.fov",
    "rescale_to_drive": "vesselflow.vessel.preprocess.scale",
    "restore_size": "vesselflow.vessel.preprocess.scale",
    "synthetic_fundus": "vesselflow.vessel.data.synthetic",
}

__all__ = ["DatasetLayoutError", "ImageReadError", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    # PEP 562: heavy dependencies (MONAI ~5 s, albumentations ~3 s) load only when used.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
