"""The DRIVE retinal vessel dataset (Staal et al. 2004): layout, splits, loading, preparation.

Canonical layout (what :func:`prepare_drive` writes and everything else reads)::

    ROOT/training/images/NN_training.tif        NN = 21..40   565x584 RGB
    ROOT/training/1st_manual/NN_manual1.gif                   vessel label
    ROOT/training/mask/NN_training_mask.gif                   FOV mask
    ROOT/test/images/NN_test.tif                NN = 01..20
    ROOT/test/1st_manual/NN_manual1.gif                       ground truth (first observer)
    ROOT/test/2nd_manual/NN_manual2.gif                       second observer (palette GIF)
    ROOT/test/mask/NN_test_mask.gif

``ROOT`` may also be a folder holding a single ``DRIVE/`` folder with that tree. Files are looked
up by stem, case-insensitively, with any of .tif/.tiff/.gif/.png, so re-encoded copies work.

Splits: the 20 training images are split into ``TRAIN_IDS`` (16) and a fixed validation set
``VAL_IDS`` (4, spread over the id range); ``TEST_IDS`` are the 20 official test images.

Loading goes through MONAI dictionary transforms (:func:`load_drive_transform`); masks are
binarised by :func:`vesselflow.io.images.read_mask`, which reads the 2nd_manual palette GIFs in
index space (``convert('L')`` would give {3, 253}).
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from monai.config import KeysCollection
from monai.data import CacheDataset, PILReader
from monai.transforms import (
    Compose,
    EnsureChannelFirstd,
    EnsureTyped,
    LoadImaged,
    MapTransform,
    ScaleIntensityRanged,
)

from vesselflow.io.errors import DatasetLayoutError
from vesselflow.io.masks import read_mask

ALL_TRAINING_IDS: tuple[int, ...] = tuple(range(21, 41))
VAL_IDS: tuple[int, ...] = (21, 27, 33, 39)
TRAIN_IDS: tuple[int, ...] = tuple(i for i in ALL_TRAINING_IDS if i not in VAL_IDS)
TEST_IDS: tuple[int, ...] = tuple(range(1, 21))
SPLITS = ("train", "val", "trainval", "test")
DRIVE_SHAPE = (584, 565)  # (H, W)
MASK_KEYS = ("label", "fov", "label2")

# folder -> sub-folder -> (record key, file stem template)
_LAYOUT: dict[str, dict[str, tuple[str, str]]] = {
    "training": {
        "images": ("image", "{:02d}_training"),
        "1st_manual": ("label", "{:02d}_manual1"),
        "mask": ("fov", "{:02d}_training_mask"),
    },
    "test": {
        "images": ("image", "{:02d}_test"),
        "1st_manual": ("label", "{:02d}_manual1"),
        "2nd_manual": ("label2", "{:02d}_manual2"),
        "mask": ("fov", "{:02d}_test_mask"),
    },
}
_SPLIT_IDS = {"training": ALL_TRAINING_IDS, "test": TEST_IDS}
_SUFFIXES = (".tif", ".tiff", ".gif", ".png")
_SEARCH_DEPTH = 3

Log = Callable[[str], None]


# ----------------------------------------------------------------------------- layout
def _skip_dir(name: str) -> bool:
    return name.startswith((".", "__MACOSX"))


def _locate_split_dirs(path: str | Path) -> tuple[Path, Path]:
    """Find the ``training/`` and ``test/`` folders (each with ``images/``) under ``path``.

    Searches ``path`` and up to three levels below it, so ``DRIVE/``, ``DRIVE/DRIVE/`` or two
    archives extracted side by side all work; the shallowest match wins.
    """
    root = Path(path)
    if not root.is_dir():
        raise DatasetLayoutError(root, "not a folder (expected an extracted DRIVE folder)")
    found: dict[str, list[tuple[int, Path]]] = {"training": [], "test": []}
    level = [root]
    for depth in range(_SEARCH_DEPTH + 1):
        nxt: list[Path] = []
        for folder in level:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir())
            except OSError:
                continue
            for child in children:
                if _skip_dir(child.name):
                    continue
                key = child.name.lower()
                if key in found and (child / "images").is_dir():
                    found[key].append((depth, child))
                nxt.append(child)
        level = nxt
    missing = [k for k, v in found.items() if not v]
    if missing:
        raise DatasetLayoutError(
            root,
            f"no DRIVE {' or '.join(m + '/' for m in missing)} folder (with images/ inside) "
            "found here or up to 3 levels below; expected training/ and test/ as in the "
            "official DRIVE download",
        )
    picked = []
    for key, hits in found.items():
        hits.sort(key=lambda h: h[0])
        if len(hits) > 1 and hits[0][0] == hits[1][0]:
            raise DatasetLayoutError(
                root,
                f"several {key}/ folders found ({hits[0][1]}, {hits[1][1]}); "
                "point to one DRIVE copy",
            )
        picked.append(hits[0][1])
    return picked[0], picked[1]


def find_drive_root(path: str | Path) -> Path:
    """The folder holding DRIVE's ``training/`` and ``test/``.

    Args:
        path: An extracted DRIVE folder, with or without a top ``DRIVE/`` folder.

    Returns:
        The folder whose children are ``training/`` and ``test/``.

    Raises:
        DatasetLayoutError: No such folder, or training/ and test/ not side by side.
    """
    training, test = _locate_split_dirs(path)
    if training.parent != test.parent:
        raise DatasetLayoutError(
            path, f"training/ ({training}) and test/ ({test}) are not in the same folder"
        )
    return training.parent


def _index_folder(folder: Path) -> dict[str, Path]:
    """lower-case stem -> file, for image-like files in ``folder``."""
    if not folder.is_dir():
        return {}
    return {
        p.stem.lower(): p
        for p in sorted(folder.iterdir())
        if p.is_file() and p.suffix.lower() in _SUFFIXES and not p.name.startswith("._")
    }


def _collect(
    training: Path, test: Path, folders: Iterable[str] = ("training", "test")
) -> dict[str, Path]:
    """Canonical relative path -> source file for every expected DRIVE file.

    Raises:
        DatasetLayoutError: Listing every missing file (and the counts found per folder).
    """
    split_dirs = {"training": training, "test": test}
    files: dict[str, Path] = {}
    missing: list[str] = []
    counts: list[str] = []
    for split in folders:
        for sub, (_, template) in _LAYOUT[split].items():
            index = _index_folder(split_dirs[split] / sub)
            counts.append(f"{split}/{sub}: {len(index)}")
            for i in _SPLIT_IDS[split]:
                stem = template.format(i)
                src = index.get(stem.lower())
                if src is None:
                    missing.append(f"{split}/{sub}/{stem}.*")
                else:
                    files[f"{split}/{sub}/{src.name}"] = src
    if missing:
        shown = ", ".join(missing[:8]) + (
            f", ... ({len(missing)} in all)" if len(missing) > 8 else ""
        )
        raise DatasetLayoutError(
            training.parent,
            f"incomplete DRIVE copy: missing {shown}. Files found per folder: "
            + "; ".join(counts)
            + " (expected 20 each)",
        )
    return files


def drive_records(root: str | Path, split: str) -> list[dict[str, str]]:
    """The file records of one DRIVE split, for MONAI dictionary transforms.

    Args:
        root: DRIVE folder (see :func:`find_drive_root`).
        split: "train" (16 images), "val" (4), "trainval" (20) or "test" (20).

    Returns:
        One dict per image with ``id`` (e.g. "21_training"), ``image``, ``label``, ``fov``
        and, for "test", ``label2`` (second observer); paths as strings.

    Raises:
        ValueError: Unknown split.
        DatasetLayoutError: A file is missing.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    base = find_drive_root(root)
    folder = "test" if split == "test" else "training"
    ids = {"train": TRAIN_IDS, "val": VAL_IDS, "trainval": ALL_TRAINING_IDS, "test": TEST_IDS}[
        split
    ]
    indexes = {sub: _index_folder(base / folder / sub) for sub in _LAYOUT[folder]}
    records: list[dict[str, str]] = []
    missing: list[str] = []
    for i in ids:
        record = {"id": f"{i:02d}_{folder}"}
        for sub, (key, template) in _LAYOUT[folder].items():
            src = indexes[sub].get(template.format(i).lower())
            if src is None:
                missing.append(f"{folder}/{sub}/{template.format(i)}.*")
            else:
                record[key] = str(src)
        records.append(record)
    if missing:
        raise DatasetLayoutError(
            base,
            f"split {split!r} needs {len(ids)} images but {len(missing)} files are "
            f"missing: {', '.join(missing[:8])}",
        )
    return records


# ----------------------------------------------------------------------------- MONAI loading
class LoadMaskd(MapTransform):
    """Load binary masks (label, FOV, second observer) as float {0, 1} tensors (1, H, W).

    Reads with :func:`vesselflow.io.images.read_mask` (palette GIFs in index space, {0, 255}
    at > 127) and checks each mask has the size of ``data[ref_key]`` when that is loaded.
    """

    def __init__(
        self, keys: KeysCollection, ref_key: str | None = "image", allow_missing_keys: bool = False
    ) -> None:
        super().__init__(keys, allow_missing_keys)
        self.ref_key = ref_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict[Hashable, Any]:
        d = dict(data)
        shape = None
        ref = d.get(self.ref_key) if self.ref_key is not None else None
        if ref is not None and hasattr(ref, "shape"):
            shape = tuple(int(s) for s in ref.shape[-2:])
        for key in self.key_iterator(d):
            value = d[key]
            if isinstance(value, str | os.PathLike):
                mask = read_mask(value, shape=shape)
            else:  # already an array: just make it {0, 1}
                mask = np.asarray(value).reshape(np.asarray(value).shape[-2:]) > 0
            d[key] = torch.from_numpy(mask[None].astype(np.float32))
        return d


@contextlib.contextmanager
def _quiet_reader_registration() -> Iterator[None]:
    """Silence MONAI 1.6's GPU-DICOM reader notice while LoadImage builds its readers.

    LoadImage instantiates every default reader even when one is given, and the nvImageCodec
    DICOM reader logs and warns when CUDA/nvImageCodec are absent: noise for PIL-read DRIVE.
    """
    logger = logging.getLogger("monai.data.nvimgcodec_pydicom_plugin")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*nvImageCodec.*")
            yield
    finally:
        logger.setLevel(level)


def load_drive_transform(keys_present: Iterable[str] = ("image", "label", "fov")) -> Compose:
    """MONAI transform loading one DRIVE record into tensors.

    Args:
        keys_present: Keys of the records to load; "image" plus any of "label", "fov",
            "label2". Other record keys (e.g. "id") pass through untouched.

    Returns:
        Compose mapping a record of paths to ``image`` float32 (3, 584, 565) in [0, 1] and
        masks float32 (1, 584, 565) with values {0, 1} (plain tensors, no MONAI metadata).
    """
    keys = tuple(keys_present)
    if "image" not in keys:
        raise ValueError("keys_present must include 'image'")
    unknown = [k for k in keys if k != "image" and k not in MASK_KEYS]
    if unknown:
        raise ValueError(f"unknown keys {unknown}; expected 'image' and any of {MASK_KEYS}")
    mask_keys = [k for k in MASK_KEYS if k in keys]
    with _quiet_reader_registration():
        # reverse_indexing=False: PIL's default would give DRIVE as (565, 584), i.e. transposed.
        loader = LoadImaged(keys="image", reader=PILReader(reverse_indexing=False), image_only=True)
    transforms: list[Any] = [
        loader,
        EnsureChannelFirstd(keys="image"),
        ScaleIntensityRanged(keys="image", a_min=0, a_max=255, b_min=0.0, b_max=1.0, clip=True),
    ]
    if mask_keys:
        transforms.append(LoadMaskd(keys=mask_keys, ref_key="image"))
    transforms.append(
        EnsureTyped(
            keys=["image", *mask_keys], data_type="tensor", dtype=torch.float32, track_meta=False
        )
    )
    return Compose(transforms)


class DriveDataset(CacheDataset):
    """A DRIVE split as a MONAI CacheDataset of dicts of tensors.

    Items: ``id`` (str), ``image`` (3, 584, 565) float32 in [0, 1], ``label`` and ``fov``
    (1, 584, 565) float32 {0, 1}, and ``label2`` for the test split. Loading is cached (about
    6.6 MB per image); a random ``transform`` such as
    :class:`vesselflow.vessel.data.augment.TrainAugment` runs after the cache, on a copy,
    every time.

    Args:
        root: DRIVE folder.
        split: "train", "val", "trainval" or "test".
        transform: Optional transform applied after loading (a callable or MONAI Compose).
        cache: Cache the loaded tensors in memory (recommended: decoding dominates otherwise).
    """

    def __init__(
        self,
        root: str | Path,
        split: str,
        transform: Callable[[dict[str, Any]], Any] | None = None,
        cache: bool = True,
    ) -> None:
        self.root = find_drive_root(root)
        self.split = split
        self.records = drive_records(self.root, split)
        keys = [k for k in ("image", *MASK_KEYS) if k in self.records[0]]
        transforms = list(load_drive_transform(keys).transforms)
        if isinstance(transform, Compose):
            transforms.extend(transform.flatten().transforms)
        elif transform is not None:
            transforms.append(transform)
        super().__init__(
            data=self.records,
            transform=Compose(transforms),
            cache_rate=1.0 if cache else 0.0,
            num_workers=1,
            progress=False,
        )
