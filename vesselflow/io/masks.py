"""Reading binary masks (vessel tracings, FOV masks) with the decoders of
:mod:`vesselflow.io.images`: the same formats, checks and errors, output a bool (H, W) array."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from vesselflow.io.errors import ImageReadError
from vesselflow.io.images import _SIXTEEN_BIT_MODES, DEFAULT_MAX_PIXELS, _check_file, _decode


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
