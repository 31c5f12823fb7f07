"""Seeded image corruptions: how other cameras, exports and uploads change a fundus photo.

The generalisation benchmark (``benchmarks/generalisation.py``) and the evaluation of the
review flags (``benchmarks/review_flags.py``) both score the models on DRIVE's test images
under these, so they live in one registry, :data:`CORRUPTIONS`, addressed by name:

==================  =========================================================================
name                what it does (image float32 (H, W, 3) in [0, 1] -> same shape/dtype/range)
==================  =========================================================================
jpeg-q30, jpeg-q60  JPEG round trip at quality 30 / 60 (albumentations ``ImageCompression``)
noise-0.02, -0.05   additive Gaussian noise, sigma 0.02 / 0.05 on 0-1 intensities, per pixel
                    and channel, clipped (scikit-image ``random_noise``)
blur-1, blur-2      Gaussian blur, sigma 1 / 2 px (scikit-image ``gaussian``)
gamma-0.6, -1.6     ``x ** gamma`` (scikit-image ``adjust_gamma``): 0.6 brightens, 1.6 darkens
                    the mid-tones
brightness-0.7/1.3  every channel x0.7 / x1.3, clipped to [0, 1]
warm-cast           a yellow colour cast: R x1.1, G x1.0, B x0.6, clipped to [0, 1]
palette-dither      Pillow ``convert('P', palette=WEB, dither=FLOYDSTEINBERG)`` and back to RGB:
                    216 web colours with Floyd-Steinberg error diffusion, i.e. per-pixel noise
gif                 what ``Image.save(..., 'GIF')`` does to an RGB image: an adaptive
                    256-colour palette (Pillow 13 does not dither on this path), back to RGB
downup-0.5          downscale x0.5 (anti-aliased) then upscale back to the original size
                    (bilinear; scikit-image ``resize``)
==================  =========================================================================

Each corruption takes a seed; the deterministic ones ignore it, so every entry of the registry
has the same call signature ``corrupt(image, seed) -> image``.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

Corruption = Callable[[np.ndarray, int], np.ndarray]


def _check(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an (H, W, 3) RGB image, got shape {img.shape}")
    return np.clip(img.astype(np.float32, copy=False), 0.0, 1.0)


def _to_uint8(image: np.ndarray) -> np.ndarray:
    return np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)


def _finish(image: np.ndarray) -> np.ndarray:
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def jpeg(quality: int) -> Corruption:
    """JPEG compression at ``quality`` (1-100) through albumentations (8-bit round trip)."""
    import albumentations as A

    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        t = A.Compose([A.ImageCompression(compression_type="jpeg",
                                          quality_range=(quality, quality), p=1.0)], seed=seed)
        return _finish(t(image=_check(image))["image"])

    return apply


def gaussian_noise(sigma: float) -> Corruption:
    """Additive i.i.d. Gaussian noise with std ``sigma`` on [0, 1] intensities, clipped."""
    from skimage.util import random_noise

    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        rng = np.random.default_rng(seed)
        return _finish(random_noise(_check(image), mode="gaussian", mean=0.0, var=sigma**2,
                                    rng=rng, clip=True))

    return apply


def gaussian_blur(sigma: float) -> Corruption:
    """Gaussian blur with std ``sigma`` pixels (each channel separately)."""
    from skimage.filters import gaussian

    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        return _finish(gaussian(_check(image), sigma=sigma, channel_axis=-1,
                                preserve_range=True, mode="nearest"))

    return apply


def gamma(g: float) -> Corruption:
    """Gamma curve ``x ** g``: g > 1 darkens the mid-tones, g < 1 brightens them."""
    from skimage.exposure import adjust_gamma

    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        return _finish(adjust_gamma(_check(image), gamma=g))

    return apply


def channel_gain(gains: tuple[float, float, float]) -> Corruption:
    """Multiply R, G, B by ``gains`` and clip to [0, 1] (brightness, colour casts)."""
    g = np.asarray(gains, dtype=np.float32).reshape(1, 1, 3)

    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        return _finish(_check(image) * g)

    return apply


WARM_CAST = (1.1, 1.0, 0.6)
"""The warm (yellow) colour cast: R x1.1, G x1.0, B x0.6 (clipped)."""


def palette(web_dither: bool = True) -> Corruption:
    """Pillow palette conversion and back to RGB.

    ``web_dither``: the 216-colour web palette with Floyd-Steinberg dithering; otherwise the
    adaptive 256-colour palette of a GIF save (no dithering on that path in Pillow).
    """
    from PIL import Image

    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        im = Image.fromarray(_to_uint8(_check(image)), mode="RGB")
        if web_dither:
            p = im.convert("P", palette=Image.Palette.WEB, dither=Image.Dither.FLOYDSTEINBERG)
        else:
            buf = io.BytesIO()
            im.save(buf, format="GIF")
            buf.seek(0)
            p = Image.open(buf)
        return np.asarray(p.convert("RGB"), dtype=np.float32) / 255.0

    return apply


def down_up(factor: float) -> Corruption:
    """Downscale by ``factor`` (anti-aliased, bilinear) and upscale back (bilinear)."""
    from skimage.transform import resize

    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        img = _check(image)
        h, w = img.shape[:2]
        small = resize(img, (max(1, round(h * factor)), max(1, round(w * factor)), 3),
                       order=1, anti_aliasing=True, preserve_range=True)
        return _finish(resize(small, (h, w, 3), order=1, anti_aliasing=False,
                              preserve_range=True))

    return apply


@dataclass(frozen=True)
class CorruptionSpec:
    """A named corruption: ``fn(image, seed)`` and a one-line description."""

    name: str
    fn: Corruption
    description: str


def _registry() -> dict[str, CorruptionSpec]:
    specs = [
        ("jpeg-q30", jpeg(30), "JPEG quality 30"),
        ("jpeg-q60", jpeg(60), "JPEG quality 60"),
        ("noise-0.02", gaussian_noise(0.02), "Gaussian noise sigma 0.02"),
        ("noise-0.05", gaussian_noise(0.05), "Gaussian noise sigma 0.05"),
        ("blur-1", gaussian_blur(1.0), "Gaussian blur sigma 1 px"),
        ("blur-2", gaussian_blur(2.0), "Gaussian blur sigma 2 px"),
        ("gamma-0.6", gamma(0.6), "gamma 0.6 (brighter mid-tones)"),
        ("gamma-1.6", gamma(1.6), "gamma 1.6 (darker mid-tones)"),
        ("brightness-0.7", channel_gain((0.7, 0.7, 0.7)), "brightness x0.7"),
        ("brightness-1.3", channel_gain((1.3, 1.3, 1.3)), "brightness x1.3 (clipped)"),
        ("warm-cast", channel_gain(WARM_CAST), "warm cast R x1.1 G x1.0 B x0.6 (clipped)"),
        ("palette-dither", palette(True), "Pillow WEB palette, Floyd-Steinberg dithering"),
        ("gif", palette(False), "GIF save (adaptive 256-colour palette)"),
        ("downup-0.5", down_up(0.5), "downscale x0.5, upscale back"),
    ]
    return {n: CorruptionSpec(n, f, d) for n, f, d in specs}


CORRUPTIONS: dict[str, CorruptionSpec] = _registry()
"""Every corruption by name (the benchmark's and the review-flag evaluation's set)."""


def corrupt(image: np.ndarray, name: str, seed: int = 0) -> np.ndarray:
    """Apply the corruption ``name`` (a key of :data:`CORRUPTIONS`) to an (H, W, 3) image.

    Returns float32 (H, W, 3) in [0, 1]. Raises ValueError for an unknown name.
    """
    if name not in CORRUPTIONS:
        raise ValueError(f"unknown corruption {name!r}; known: {', '.join(CORRUPTIONS)}")
    return CORRUPTIONS[name].fn(image, seed)


def corruption_seed(seed: int, cond: str, image_id: str,
                    namespace: str = "vesselflow-generalisation") -> int:
    """The seed of one (run seed, corruption, image) draw, independent of processing order.

    ``namespace`` keeps the benchmark's draws ("vesselflow-generalisation") apart from the
    quality calibration's ("vesselflow-quality").
    """
    digest = hashlib.sha256(f"{namespace}/{seed}/{cond}/{image_id}".encode())
    return int.from_bytes(digest.digest()[:4], "little")
