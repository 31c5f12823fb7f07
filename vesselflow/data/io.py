"""Reading fundus images and binary masks from files or uploaded bytes, safely.

One entry point per use:

* :func:`read_image` / :func:`read_image_bytes` -> float32 RGB array (H, W, 3) in [0, 1];
* :func:`read_mask` / :func:`read_mask_bytes` -> bool array (H, W).

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

Every failure raises :class:`~vesselflow.data.errors.ImageReadError` naming the file: missing or
empty file, unknown format, corrupt or truncated data, more than ``max_pixels`` pixels
(checked from the header, before any pixel is decoded), a blank (constant) image, or a 3-D
volume / multi-frame file.
"""

from __future__ import annotations

import gzip
import io
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .errors import ImageReadError

DEFAULT_MAX_PIXELS = 100_000_000
SUPPORTED_FORMATS = "PNG, JPEG, TIFF, BMP, GIF, DICOM (.dcm), NIfTI (.nii, .nii.gz)"

_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_HEAD_BYTES = 544  # enough for the DICOM preamble (132) and NIfTI-1/2 headers (348/540)
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


def read_mask(
    path: str | Path,
    *,
    shape: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read a binary label or FOV mask.

    Binarisation: palette images (mode P, e.g. DRIVE's ``2nd_manual``) use the palette *index*
    (> 0), never the converted grey value; a mask with exactly two levels takes the brighter
    one as foreground (so {0, 255}, {0, 1} and {3, 253} all work); small-integer label maps
    (all values < 16) use > 0; anything else (e.g. a JPEG-compressed mask) is cut at half the
    nominal range (> 127 for 8-bit). Colour masks use the brightest channel, so a red
    annotation on black counts.

    Args:
        path: Mask file (any format read_image accepts).
        shape: Expected (H, W), usually the image's; a different size is an error.
        max_pixels: Refuse masks with more pixels than this.

    Returns:
        bool array (H, W).

    Raises:
        ImageReadError: As read_image (except that blank masks are allowed), or the size
            differs from ``shape``.
    """
    path = Path(path)
    _check_file(path)
    return _to_mask(_decode(path, str(path), max_pixels, _pil_to_mask), str(path), shape)


def read_mask_bytes(
    data: bytes,
    name: str,
    *,
    shape: tuple[int, int] | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """Read a binary mask from memory; same output and errors as read_mask."""
    if not data:
        raise ImageReadError(name, "file is empty (0 bytes)")
    return _to_mask(_decode(bytes(data), name, max_pixels, _pil_to_mask), name, shape)


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
        has_alpha = mode in ("LA", "La", "PA", "RGBA", "RGBa") or (
            mode == "P" and "transparency" in img.info
        )
        if has_alpha:
            rgba = np.asarray(img.convert("RGBA"), dtype=np.float32) / 255.0
            return np.ascontiguousarray(rgba[..., :3] * rgba[..., 3:])
        return np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return np.repeat(gray[..., None], 3, axis=-1)


def _pil_to_mask(img: Image.Image) -> np.ndarray:
    """Pillow image -> bool (H, W); see read_mask for the rules."""
    mode = img.mode
    if mode == "1":
        return np.asarray(img, dtype=bool)
    if mode in ("P", "PA"):
        # Index space: DRIVE's 2nd_manual palette maps {0, 1} to greys {3, 253}.
        index = np.asarray(img)
        return (index[..., 0] if index.ndim == 3 else index) > 0
    if mode == "L":
        return _binarise(np.asarray(img), nominal_max=255)
    if mode in _SIXTEEN_BIT_MODES:
        return _binarise(np.asarray(img), nominal_max=65535)
    if mode in ("I", "F"):
        return _binarise(np.asarray(img), nominal_max=None)
    rgba = np.asarray(img.convert("RGBA"))
    level = rgba[..., :3].max(axis=-1).astype(np.uint16) * rgba[..., 3] // 255
    return _binarise(level.astype(np.uint8), nominal_max=255)


# ----------------------------------------------------------------------------- DICOM / NIfTI
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


def _to_mask(decoded: np.ndarray, name: str, shape: tuple[int, int] | None) -> np.ndarray:
    mask = decoded if decoded.dtype == bool else _binarise(decoded, nominal_max=None)
    if shape is not None and tuple(mask.shape) != tuple(shape):
        h, w = mask.shape
        eh, ew = shape
        raise ImageReadError(
            name, f"mask size {w}x{h} (width x height) does not match the image size {ew}x{eh}"
        )
    return mask


def _binarise(arr: np.ndarray, nominal_max: float | None) -> np.ndarray:
    """Label/FOV array (H, W) or (H, W, C) -> bool (H, W); rules in read_mask's docstring."""
    if arr.ndim == 3:
        arr = arr.max(axis=-1)
    if arr.dtype.kind == "f":
        arr = np.nan_to_num(arr, nan=0.0)
    lo, hi = arr.min(), arr.max()
    if lo == hi:
        return arr > 0
    if np.all((arr == lo) | (arr == hi)):  # two levels: the brighter one is foreground
        return arr == hi
    if lo >= 0 and hi < 16 and (arr.dtype.kind in "iub" or np.all(arr == np.round(arr))):
        return arr > 0  # small-integer label map: every class counts as vessel / FOV
    if nominal_max is None:
        nominal_max = 1.0 if lo >= 0 and hi <= 1 else None
    threshold = nominal_max / 2 if nominal_max is not None else (float(lo) + float(hi)) / 2
    return arr > threshold
