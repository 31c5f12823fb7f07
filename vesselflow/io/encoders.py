"""Encoders for result files: PNG, float32 TIFF, gzipped NIfTI and zip, as bytes or as
atomically written files (:func:`vesselflow.io.files.atomic_path`)."""

from __future__ import annotations

import gzip
import io
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from PIL import Image

from vesselflow.io.files import atomic_path


def png_bytes(picture: np.ndarray) -> bytes:
    """Encode a uint8 (H, W) / (H, W, 3) picture, or a bool mask ({0, 255}), as PNG."""
    picture = np.asarray(picture)
    if picture.dtype == bool:
        picture = picture.astype(np.uint8) * 255
    arr = picture if picture.dtype == np.uint8 else None
    if arr is None:
        raise TypeError("png_bytes takes uint8 or bool arrays; convert floats with gray() or "
                        "colorize() first")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def tiff_bytes(map_2d: np.ndarray, description: str | None = None) -> bytes:
    """Encode a map as an uncompressed float32 TIFF (readable by ImageJ/Fiji, tifffile, GIS)."""
    import tifffile

    buf = io.BytesIO()
    tifffile.imwrite(buf, np.ascontiguousarray(map_2d, dtype=np.float32),
                     description=description, metadata=None)
    return buf.getvalue()


def zip_bytes(files: Mapping[str, bytes]) -> bytes:
    """Pack {name: content} into a deflate-compressed zip archive, in the given order."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, content in files.items():
            zf.writestr(name, content)
    return buf.getvalue()


def nifti_gz_bytes(stack: np.ndarray) -> bytes:
    """A uint8 (H, W, N) stack as gzipped NIfTI-1 bytes (identity affine, axis 0 = rows)."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(stack, dtype=np.uint8), np.eye(4))
    img.header.set_data_dtype(np.uint8)
    return gzip.compress(img.to_bytes(), compresslevel=6)


def write_png(path: str | Path, picture: np.ndarray, compress_level: int = 6) -> None:
    """Write a uint8 picture as PNG atomically (``compress_level`` 0-9, Pillow's default 6)."""
    with atomic_path(path) as tmp:
        Image.fromarray(np.asarray(picture)).save(tmp, format="PNG",
                                                  compress_level=compress_level)


def write_tiff(path: str | Path, map_2d: np.ndarray) -> None:
    """Write a float32 map as a single-channel TIFF atomically."""
    import tifffile

    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(map_2d, dtype=np.float32),
                         photometric="minisblack")


def write_bytes(path: str | Path, data: bytes) -> None:
    """Write encoded bytes atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
