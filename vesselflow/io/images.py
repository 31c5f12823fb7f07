"""Reading images from files or uploaded bytes, safely: the one image reader of vesselflow.

One entry point per use:

* :func:`read_image` / :func:`read_image_bytes` -> float32 RGB array (H, W, 3) in [0, 1];
* :func:`vesselflow.io.masks.read_mask` / ``read_mask_bytes`` -> bool array (H, W), on the
  same decoders.

Formats: PNG, JPEG, TIFF (incl. LZW), BMP, GIF (via Pillow), DICOM (pydicom) and 2-D NIfTI
(nibabel). The decoder is chosen from the file's content first (DICOM ``DICM`` marker, NIfTI
magic) and its name second, so a mis-named file still reads, and a text file named ``.png`` is
reported as "not an image" rather than crashing.

Intensity conventions:

* 8-bit images are divided by 255 and 16-bit ones by 65535 (no per-image stretching, so a dark
  photograph stays dark). Pillow reduces 16-bit-per-channel *RGB* PNG/TIFF to 8 bits per
  channel; 16-bit grayscale keeps full precision.
* Alpha is dropped by compositing on black (``rgb * alpha``): the FOV of a fundus photograph
  saved with a transparent surround stays black.
* DICOM (after the modality rescale / LUT) and NIfTI have no fixed range, so they are
  min-max normalised to [0, 1]; MONOCHROME1 DICOM is inverted so bright means bright.
* NIfTI arrays are returned in stored axis order (axis 0 = rows), singleton axes squeezed.

Every failure raises :class:`~vesselflow.io.errors.ImageReadError` naming the file: missing or
empty file, unknown format, corrupt or truncated data, more than ``max_pixels`` pixels
(checked from the header, before any pixel is decoded), a blank (constant) image, or a 3-D
volume / multi-frame file.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from vesselflow.io.errors import ImageReadError
from vesselflow.io.medical import (
    _HEAD_BYTES,
    _NIFTI_SUFFIXES,
    _check_pixels,
    _decode_dicom,
    _decode_nifti,
)

DEFAULT_MAX_PIXELS = 100_000_000
SUPPORTED_FORMATS = "PNG, JPEG, TIFF, BMP, GIF, DICOM (.dcm), NIfTI (.nii, .nii.gz)"

_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".ppm",
                  *_DICOM_SUFFIXES, *_NIFTI_SUFFIXES)
"""The file types this module reads (lower case; a folder input is searched for these)."""
_T = TypeVar("_T")


# ----------------------------------------------------------------------------- public API
def read_image(path: str | Path, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image file as RGB.

    Args:
        path: Image file (PNG, JPEG, TIFF, BMP, GIF, DICOM or 2-D NIfTI).
        max_pixels: Refuse images with more pixels than this (decompression-bomb guard).

    Returns:
        float32 array (H, W, 3) in [0, 1]; grayscale is replicated to three channels.

    Raises:
        ImageReadError: The file is missing, empty, not an image, corrupt, too large, blank
            or a 3-D volume.
    """
    path = Path(path)
    _check_file(path)
    return _to_rgb(_decode(path, str(path), max_pixels, _pil_to_rgb), str(path))


def read_image_bytes(data: bytes, name: str, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Read an image from memory (e.g. a web upload); same output and errors as read_image.

    Args:
        data: The file's bytes.
        name: The file name; used in error messages and, with the content, to pick a decoder.
        max_pixels: Refuse images with more pixels than this.

    Returns:
        float32 array (H, W, 3) in [0, 1].
    """
    if not data:
        raise ImageReadError(name, "file is empty (0 bytes)")
    return _to_rgb(_decode(bytes(data), name, max_pixels, _pil_to_rgb), name)


# ----------------------------------------------------------------------------- dispatch
def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageReadError(path, "file not found")
    if path.is_dir():
        raise ImageReadError(path, "is a directory, not an image file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise ImageReadError(path, f"cannot access file ({exc.strerror or exc})") from exc
    if size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")


def _head(src: Path | bytes, name: str) -> bytes:
    if isinstance(src, bytes):
        return src[:_HEAD_BYTES]
    try:
        with open(src, "rb") as fh:
            return fh.read(_HEAD_BYTES)
    except OSError as exc:
        raise ImageReadError(name, f"cannot read file ({exc.strerror or exc})") from exc


def _sniff(head: bytes, name: str) -> str:
    """'dicom', 'nifti' or 'pil', from the content first and the name second."""
    lower = name.lower()
    if head[128:132] == b"DICM":
        return "dicom"
    if head[344:348] in (b"n+1\0", b"ni1\0") or head[4:8] in (b"n+2\0", b"ni2\0"):
        return "nifti"
    if lower.endswith(_NIFTI_SUFFIXES):
        return "nifti"
    if lower.endswith(_DICOM_SUFFIXES):
        return "dicom"  # DICOM without the 128-byte preamble; read with force=True
    return "pil"


def _decode(
    src: Path | bytes, name: str, max_pixels: int, pil_convert: Callable[[Image.Image], _T]
) -> _T | np.ndarray:
    """Decode ``src``: Pillow images go through ``pil_convert``; DICOM/NIfTI give float64."""
    kind = _sniff(_head(src, name), name)
    try:
        if kind == "dicom":
            return _decode_dicom(src, name, max_pixels)
        if kind == "nifti":
            return _decode_nifti(src, name, max_pixels)
        return _decode_pil(src, name, max_pixels, pil_convert)
    except ImageReadError:
        raise
    except MemoryError as exc:
        raise ImageReadError(name, "not enough memory to decode the image") from exc
    except Exception as exc:  # any decoder failure becomes one clear error naming the file
        label = {"dicom": "DICOM", "nifti": "NIfTI"}.get(kind, "image")
        raise ImageReadError(
            name, f"corrupt or unreadable {label} file ({type(exc).__name__}: {exc})"
        ) from exc


_MAGIC = {
    b"\x89PNG": "PNG",
    b"\xff\xd8": "JPEG",
    b"GIF8": "GIF",
    b"BM": "BMP",
    b"II*\0": "TIFF",
    b"MM\0*": "TIFF",
}


def _not_an_image(name: str, head: bytes) -> ImageReadError:
    for magic, fmt in _MAGIC.items():
        if head.startswith(magic):  # right signature, unreadable header: damaged, not foreign
            return ImageReadError(name, f"corrupt {fmt} file (header cannot be parsed)")
    hint = ""
    sample = head[:256]
    if sample and all(32 <= b < 127 or b in (9, 10, 13) for b in sample):
        hint = " (it looks like a text file)"
    return ImageReadError(
        name, f"not a recognised image format{hint}; supported: {SUPPORTED_FORMATS}"
    )


# ----------------------------------------------------------------------------- Pillow
def _decode_pil(
    src: Path | bytes, name: str, max_pixels: int, convert: Callable[[Image.Image], _T]
) -> _T:
    fp: Any = io.BytesIO(src) if isinstance(src, bytes) else src
    try:
        with warnings.catch_warnings():
            # We enforce our own max_pixels below; Pillow's softer warning is noise here.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(fp)
    except Image.DecompressionBombError as exc:
        raise ImageReadError(
            name, f"image is too large (possible decompression bomb): {exc}"
        ) from exc
    except UnidentifiedImageError as exc:
        raise _not_an_image(name, _head(src, name)) from exc
    with opened as img:
        width, height = img.size
        _check_pixels(name, height, width, max_pixels)  # header only: nothing decoded yet
        frames = getattr(img, "n_frames", 1)
        if frames > 1:
            raise ImageReadError(
                name,
                f"has {frames} frames/pages (a 3-D volume or animation); "
                "expected a single 2-D image",
            )
        try:
            img.load()
        except OSError as exc:
            problem = "truncated" if "truncat" in str(exc).lower() else "corrupt"
            raise ImageReadError(name, f"{problem} {img.format or 'image'} file ({exc})") from exc
        img = ImageOps.exif_transpose(img)  # camera JPEGs: show them the way they were taken
        return convert(img)


_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
_ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


def conversions(data: bytes) -> set[str]:
    """What reading these bytes as RGB changes, from the header only: a subset of
    {"16-bit" (scaled from 0-65535 to 0-1), "alpha" (composited on black)}; empty for
    formats Pillow does not open (DICOM, NIfTI: their decoders report problems)."""
    try:
        with Image.open(io.BytesIO(data)) as img:
            mode, bits = img.mode, 0
            if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24:
                bits = data[24]  # IHDR bit depth (Pillow reduces 16-bit RGB to 8 bits)
            elif hasattr(img, "tag_v2"):  # TIFF BitsPerSample
                per_sample = img.tag_v2.get(258, (8,))
                bits = max(per_sample) if isinstance(per_sample, tuple) else int(per_sample)
    except Exception:
        return set()
    found = set()
    if mode in _SIXTEEN_BIT_MODES or bits == 16:
        found.add("16-bit")
    if mode in _ALPHA_MODES:
        found.add("alpha")
    return found


def _pil_to_rgb(img: Image.Image) -> np.ndarray:
    """Pillow image -> float32 (H, W, 3) in [0, 1], alpha composited on black."""
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        gray = np.asarray(img).astype(np.float32) / 65535.0
    elif mode == "I":
        raw = np.asarray(img)
        if raw.min() >= 0 and raw.max() <= 65535:  # 16-bit data held in a 32-bit mode
            gray = raw.astype(np.float32) / 65535.0
        else:
            gray = _minmax(raw.astype(np.float64)).astype(np.float32)
    elif mode == "F":
        raw = np.nan_to_num(np.asarray(img, dtype=np.float32))
        gray = raw if raw.min() >= 0 and raw.max() <= 1 else _minmax(raw).astype(np.float32)
    elif mode in ("1", "L"):
        gray = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    else:
        has_alpha = mode in _ALPHA_MODES or (
            mode == "P" and "transparency" in img.info
        )
        if has_alpha:
            rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
            return np.ascontiguousarray(rgba[..., :3] * rgba[..., 3:])
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.repeat(gray[..., None], 3, axis=-1)


# ----------------------------------------------------------------------------- conversions
def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    return (arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr)


def _to_rgb(decoded: np.ndarray, name: str) -> np.ndarray:
    """Finish read_image: normalise DICOM/NIfTI arrays, replicate gray, reject blank images."""
    if decoded.dtype != np.float32:  # float64 from DICOM/NIfTI: no fixed range, min-max it
        arr = decoded
        finite = np.isfinite(arr)
        if not finite.any():
            raise ImageReadError(name, "image is blank (no finite pixel values)")
        if not finite.all():
            arr = np.where(finite, arr, arr[finite].min())
        lo, hi = float(arr.min()), float(arr.max())
        if hi == lo:
            raise ImageReadError(name, f"image is blank (every pixel equals {lo:g})")
        if arr.ndim == 3:
            arr = arr[..., :3]
        arr = ((arr - lo) / (hi - lo)).astype(np.float32)
        decoded = arr if arr.ndim == 3 else np.repeat(arr[..., None], 3, axis=-1)
    lo, hi = float(decoded.min()), float(decoded.max())
    if hi == lo:
        raise ImageReadError(name, f"image is blank (every pixel equals {lo:g})")
    return np.ascontiguousarray(decoded, dtype=np.float32)


