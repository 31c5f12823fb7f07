"""Graded degradations for the review's calibration, and held-out families for its evaluation.

The review's predicted F1 (:mod:`vesselflow.vessel.review.predictor`) is fitted on maps that
span the whole range of quality, so the calibration needs photos degraded from harmless to
destroying. Two registries, with no family in both:

* :data:`CALIBRATION_FAMILIES`: each family at four strengths (index 0 harmless ... 3
  destroying), applied to DRIVE's training and validation images only
  (:mod:`vesselflow.vessel.evaluation.review_calibration`).

  ==========  ==================================================================
  noise       additive Gaussian noise, sigma 0.01 / 0.04 / 0.1 / 0.2 (clipped)
  blur        Gaussian blur, sigma 0.7 / 1.5 / 3 / 6 px
  contrast    every channel pulled towards its mean: x0.6 / x0.35 / x0.18 / x0.07, in 8 bits
  dark        every channel x0.6 / x0.35 / x0.18 / x0.07, in 8 bits (under-exposed)
  speckle     salt-and-pepper, 0.5% / 3% / 10% / 30% of pixels
  colour      a colour cast: R x1.1 and G, B x0.9/0.8, x0.7/0.5, x0.45/0.3, x0.25/0.15
  ==========  ==================================================================

* :data:`HELD_OUT`: families neither the training augmentation nor the calibration has seen,
  one (strong) setting each, for the evaluation on DRIVE's test images
  (``benchmarks/review_flags.py``): uneven illumination with vignetting, a haze veil
  (cataract-like), motion blur, downscaling by 4, JPEG quality 10, an occluding dark band
  (eyelash shadow) and saturated highlights.

Every degradation is ``fn(image, seed) -> image`` on float32 (H, W, 3) in [0, 1], like
:mod:`vesselflow.vessel.data.corruptions`; seeds come from
:func:`~vesselflow.vessel.data.corruptions.corruption_seed`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vesselflow.vessel.data.corruptions import (
    _check,
    _finish,
    channel_gain,
    down_up,
    gaussian_blur,
    gaussian_noise,
    jpeg,
)

Degradation = Callable[[np.ndarray, int], np.ndarray]


def _8bit(image: np.ndarray) -> np.ndarray:
    """Rounded to 8 bits, as a camera or a file stores it."""
    return np.round(np.clip(image, 0, 1) * 255).astype(np.float32) / 255


def contrast(factor: float) -> Degradation:
    """Each channel pulled towards its image mean, ``mean + factor * (x - mean)``, in 8 bits."""
    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        img = _check(image)
        mean = img.reshape(-1, 3).mean(0)
        return _8bit(mean + factor * (img - mean))

    return apply


def dark(gain: float) -> Degradation:
    """Under-exposure: every channel x ``gain``, in 8 bits."""
    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        return _8bit(_check(image) * gain)

    return apply


def speckle(amount: float) -> Degradation:
    """Salt-and-pepper noise on ``amount`` of the pixels (all channels of a pixel together)."""
    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        img = _check(image).copy()
        rng = np.random.default_rng(seed)
        hit = rng.random(img.shape[:2]) < amount
        img[hit] = (rng.random(int(hit.sum())) < 0.5).astype(np.float32)[:, None]
        return img

    return apply


def _grid(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates relative to the centre, scaled so the half-width is 1."""
    h, w = image.shape[:2]
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    half = w / 2
    return (yy - h / 2) / half, (xx - w / 2) / half


def vignette(falloff: float = 0.85, tilt: float = 0.6) -> Degradation:
    """Uneven illumination: a radial falloff ``1 - falloff * r^2`` times a left-right ramp
    from ``1 - tilt`` to 1."""
    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        img = _check(image)
        y, x = _grid(img)
        gain = np.clip(1 - falloff * (x**2 + y**2), 0.05, 1) * (1 - tilt * (1 - x) / 2)
        return _finish(img * gain[..., None])

    return apply


def haze(veil: float = 0.6, sigma: float = 2.0) -> Degradation:
    """A cataract-like veil: the photo slightly blurred and mixed with a bright warm veil."""
    blur = gaussian_blur(sigma)
    colour = np.array([0.85, 0.75, 0.65], np.float32)

    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        img = blur(image, seed)
        return _finish((1 - veil) * img + veil * colour)

    return apply


def motion_blur(length: int = 15, angle: float = 30.0) -> Degradation:
    """Linear motion blur over ``length`` px at ``angle`` degrees (OpenCV filter2D)."""
    import cv2

    k = np.zeros((length, length), np.float32)
    k[length // 2, :] = 1.0
    rot = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle, 1.0)
    k = cv2.warpAffine(k, rot, (length, length))
    k /= k.sum()

    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        return _finish(cv2.filter2D(_check(image), -1, k, borderType=cv2.BORDER_REFLECT))

    return apply


def occlusion(depth: float = 0.9, height: float = 0.3) -> Degradation:
    """A dark band (an eyelash shadow) across ``height`` of the photo, at a seeded position,
    darkening it by ``depth`` with soft edges."""
    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        img = _check(image)
        h = img.shape[0]
        rng = np.random.default_rng(seed)
        centre = rng.uniform(0.3, 0.7) * h
        d = np.abs(np.arange(h, dtype=np.float32) - centre) / (height * h / 2)
        shade = depth * np.clip(1.5 - d, 0, 1) ** 0.5 * (d < 1.5)
        return _finish(img * (1 - shade)[:, None, None])

    return apply


def highlights(count: int = 4, strength: float = 1.5) -> Degradation:
    """Saturated glare: ``count`` seeded broad bright blobs added and clipped at 1."""
    def apply(image: np.ndarray, seed: int = 0) -> np.ndarray:
        img = _check(image)
        y, x = _grid(img)
        rng = np.random.default_rng(seed)
        glare = np.zeros(img.shape[:2], np.float32)
        for _ in range(count):
            cy, cx = rng.uniform(-0.5, 0.5, 2)
            r = rng.uniform(0.12, 0.25)
            glare += np.exp(-((y - cy) ** 2 + (x - cx) ** 2) / (2 * r**2))
        return _finish(img + strength * glare[..., None])

    return apply


def _colour(g: float, b: float) -> Degradation:
    return channel_gain((1.1, g, b))


CALIBRATION_FAMILIES: dict[str, tuple[Degradation, ...]] = {
    "noise": tuple(gaussian_noise(s) for s in (0.01, 0.04, 0.1, 0.2)),
    "blur": tuple(gaussian_blur(s) for s in (0.7, 1.5, 3.0, 6.0)),
    "contrast": tuple(contrast(f) for f in (0.6, 0.35, 0.18, 0.07)),
    "dark": tuple(dark(f) for f in (0.6, 0.35, 0.18, 0.07)),
    "speckle": tuple(speckle(a) for a in (0.005, 0.03, 0.1, 0.3)),
    "colour": tuple(_colour(g, b) for g, b in ((0.9, 0.8), (0.7, 0.5), (0.45, 0.3),
                                              (0.25, 0.15))),
}
"""Calibration families, each at strengths 0 (harmless) to 3 (destroying)."""
STRENGTHS = 4

HELD_OUT: dict[str, Degradation] = {
    "vignetting": vignette(),
    "haze": haze(),
    "motion-blur": motion_blur(),
    "downscale-4": down_up(0.25),
    "jpeg-q10": jpeg(10),
    "occlusion": occlusion(),
    "highlights": highlights(),
}
"""Held-out families (evaluation only), one strong setting each."""


def degrade(image: np.ndarray, family: str, strength: int | None = None,
            seed: int = 0) -> np.ndarray:
    """``image`` under a calibration ``family`` at ``strength`` (0-3), or a held-out family
    (``strength`` None)."""
    if family in CALIBRATION_FAMILIES:
        if strength is None or not 0 <= strength < STRENGTHS:
            raise ValueError(f"{family}: strength must be 0-{STRENGTHS - 1}, got {strength}")
        return CALIBRATION_FAMILIES[family][strength](image, seed)
    if family in HELD_OUT:
        return HELD_OUT[family](image, seed)
    raise ValueError(f"unknown degradation {family!r}; known: "
                     f"{', '.join([*CALIBRATION_FAMILIES, *HELD_OUT])}")
