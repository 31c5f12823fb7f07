"""Retinal data pipeline: safe image I/O, DRIVE loading and preparation, augmentation, padding,
FOV detection, rescaling to DRIVE's scale, and synthetic fundus images.

Modules (import the one you need; names below are also re-exported lazily from here, so
``import vesselflow.data`` stays cheap and only pulls MONAI/albumentations on first use):

* :mod:`.errors` - :class:`ImageReadError` (every bad input), :class:`DatasetLayoutError`;
* :mod:`.io` - :func:`read_image`, :func:`read_image_bytes`, :func:`read_mask`,
  :func:`read_mask_bytes`;
* :mod:`.drive` - DRIVE splits, records, MONAI loading, :class:`DriveDataset`,
  :func:`verify_drive`, :func:`prepare_drive`;
* :mod:`.augment` - :class:`TrainAugment` (paper's random affine + patch crop);
* :mod:`.padding` - :func:`pad_to_multiple`, :func:`crop_padding`;
* :mod:`.fov` - :func:`detect_fov`;
* :mod:`.scale` - :data:`DRIVE_FOV_DIAMETER`, :func:`fov_diameter`, :func:`rescale_to_drive`,
  :func:`restore_size`;
* :mod:`.synthetic` - :func:`synthetic_fundus`.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import DatasetLayoutError, ImageReadError

_LAZY = {
    "read_image": "io",
    "read_image_bytes": "io",
    "read_mask": "io",
    "read_mask_bytes": "io",
    "DRIVE_SHAPE": "drive",
    "TEST_IDS": "drive",
    "TRAIN_IDS": "drive",
    "VAL_IDS": "drive",
    "DriveDataset": "drive",
    "drive_records": "drive",
    "find_drive_root": "drive",
    "load_drive_transform": "drive",
    "prepare_drive": "drive",
    "verify_drive": "drive",
    "TrainAugment": "augment",
    "crop_padding": "padding",
    "pad_to_multiple": "padding",
    "detect_fov": "fov",
    "DRIVE_FOV_DIAMETER": "scale",
    "ScaleInfo": "scale",
    "fov_diameter": "scale",
    "rescale_to_drive": "scale",
    "restore_size": "scale",
    "synthetic_fundus": "synthetic",
}

__all__ = ["DatasetLayoutError", "ImageReadError", *sorted(_LAZY)]


def __getattr__(name: str) -> Any:
    # PEP 562: heavy dependencies (MONAI ~5 s, albumentations ~3 s) load only when used.
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
