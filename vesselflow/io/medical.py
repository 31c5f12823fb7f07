"""DICOM and 2-D NIfTI decoders of :mod:`vesselflow.io.images` (float64 arrays, no fixed
range), and the pixel-count check that every decoder runs on the header before decoding."""

from __future__ import annotations

import gzip
import io
import math
from pathlib import Path
from typing import Any

import numpy as np

from vesselflow.io.errors import ImageReadError

_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_HEAD_BYTES = 544  # enough for the DICOM preamble (132) and NIfTI-1/2 headers (348/540)


def _check_pixels(name: str, height: int, width: int, max_pixels: int, depth: int = 1) -> None:
    if height <= 0 or width <= 0:
        raise ImageReadError(name, f"image has no pixels ({width}x{height})")
    total = height * width * depth
    if total > max_pixels:
        raise ImageReadError(
            name,
            f"image is too large: {width}x{height}"
            + (f"x{depth}" if depth > 1 else "")
            + f" = {total:,} pixels exceeds the limit of {max_pixels:,}"
            " (possible decompression bomb)",
        )


DICOM_EXTRA = "pip install 'vesselflow[dicom]'"


def _import_pydicom(name: str) -> Any:
    """pydicom >= 3 (the optional ``[dicom]`` extra), or an error naming the file and the fix."""
    try:
        import pydicom  # imported on demand: most users never read DICOM
    except ImportError:
        raise ImageReadError(name, "reading DICOM needs pydicom, which is not installed: "
                             f"{DICOM_EXTRA}") from None
    try:
        import pydicom.pixels  # 3.0 and later
    except ImportError:
        raise ImageReadError(name, f"reading DICOM needs pydicom >= 3.0, found "
                             f"{getattr(pydicom, '__version__', '?')}: {DICOM_EXTRA}"
                             ) from None
    return pydicom


def _decode_dicom(src: Path | bytes, name: str, max_pixels: int) -> np.ndarray:
    pydicom = _import_pydicom(name)
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    fp: Any = io.BytesIO(src) if isinstance(src, bytes) else src
    try:
        ds = pydicom.dcmread(fp, force=True)
    except InvalidDicomError as exc:
        raise ImageReadError(name, f"not a valid DICOM file ({exc})") from exc
    if not any(tag in ds for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
        raise ImageReadError(name, "DICOM file has no pixel data (not an image)")
    rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    _check_pixels(name, rows, cols, max_pixels, depth=frames)
    if frames > 1:
        raise ImageReadError(
            name, f"DICOM has {frames} frames (a 3-D volume); expected a single 2-D image"
        )
    try:
        arr = ds.pixel_array
    except Exception as exc:  # missing codec for compressed transfer syntaxes, bad length
        raise ImageReadError(
            name, f"cannot decode DICOM pixel data ({type(exc).__name__}: {exc})"
        ) from exc
    if int(ds.get("SamplesPerPixel", 1) or 1) == 1:
        arr = apply_modality_lut(arr, ds)  # RescaleSlope/Intercept or a modality LUT
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise ImageReadError(name, f"DICOM pixel array has shape {arr.shape}; expected 2-D")
    if str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1":
        arr = arr.max() + arr.min() - arr  # MONOCHROME1 stores bright as low values
    return arr


def _decode_nifti(src: Path | bytes, name: str, max_pixels: int) -> np.ndarray:
    import nibabel as nib  # imported on demand

    if isinstance(src, Path) and src.name.lower().endswith(_NIFTI_SUFFIXES):
        img = nib.load(str(src), mmap=False)  # lazy: only the header is read here
    else:
        raw = src if isinstance(src, bytes) else src.read_bytes()
        img = _nifti_from_bytes(raw, name, max_pixels)
    shape = tuple(int(s) for s in img.shape)
    _check_nifti_shape(name, shape, max_pixels)
    arr = np.asarray(img.dataobj, dtype=np.float64).reshape([s for s in shape if s != 1])
    return arr


def _check_nifti_shape(name: str, shape: tuple[int, ...], max_pixels: int) -> None:
    kept = [s for s in shape if s != 1]
    if len(kept) > 2:
        raise ImageReadError(
            name, f"NIfTI is a {len(kept)}-D volume (shape {shape}); expected a 2-D image"
        )
    if len(kept) < 2:
        raise ImageReadError(name, f"NIfTI has shape {shape}; expected a 2-D image")
    _check_pixels(name, kept[0], kept[1], max_pixels)


def _nifti_from_bytes(raw: bytes, name: str, max_pixels: int) -> Any:
    import nibabel as nib

    if raw[:2] == b"\x1f\x8b":
        # Decompress only as much as the header says the file holds: a gzip bomb stops here.
        with gzip.GzipFile(fileobj=io.BytesIO(raw)) as gz:
            head = gz.read(_HEAD_BYTES)
            header = _nifti_header(head, name)
            shape = tuple(int(s) for s in header.get_data_shape())
            _check_nifti_shape(name, shape, max_pixels)
            needed = (
                int(header.get_data_offset()) + math.prod(shape) * header.get_data_dtype().itemsize
            )
            raw = head + gz.read(max(0, needed - len(head)))
    header = _nifti_header(raw, name)
    klass = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
    return klass.from_bytes(raw)


def _nifti_header(head: bytes, name: str) -> Any:
    import nibabel as nib

    size_le = int.from_bytes(head[:4], "little")
    size_be = int.from_bytes(head[:4], "big")
    if 540 in (size_le, size_be):
        return nib.Nifti2Header.from_fileobj(io.BytesIO(head))
    if 348 in (size_le, size_be):
        return nib.Nifti1Header.from_fileobj(io.BytesIO(head))
    raise ImageReadError(name, "not a valid NIfTI file (bad header size)")
