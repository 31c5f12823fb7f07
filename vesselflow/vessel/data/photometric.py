"""Photometric training augmentation: what other cameras do to a fundus photo.

Image-only: labels and FOV masks are never touched, so they stay binary and aligned. Two
albumentations pipelines run on the (P, P, 3) float patch that
:class:`~vesselflow.vessel.data.augment.TrainAugment` has already warped:

* ``colour`` (pointwise in the pixel value, so it commutes with the geometry): brightness and
  contrast, gamma, hue/saturation, colour temperature (Planckian jitter: warm and cold casts),
  and, rarely, conversion to grey (some cameras and exports are monochrome).
* ``degrade`` (local): Gaussian blur (defocus), Gaussian noise (sensor noise, dithering),
  JPEG compression (clinic exports).

The colour pipeline also runs on ``extra`` pixels, stacked under the patch in the same call
so they get exactly the same parameters: a sample of the whole image's FOV pixels, from which
the per-image FOV standardisation (:mod:`vesselflow.vessel.preprocess.normalise`) takes its
statistics as it would at inference on the whole photo.

Ranges are generic (not the corruption benchmark's values): exposure x[0.6, 1.4]
(multiplicative), brightness offset +-0.08, contrast +-30%, gamma
[0.55, 1.8], hue +-8 degrees, saturation +-30%, colour temperature 3000-15000 K, blur sigma up
to 2 px, noise sigma up to 0.06, JPEG quality 25-95.
"""

from __future__ import annotations

import albumentations as A
import numpy as np

PHOTOMETRIC = ("none", "camera")
"""``TrainOptions.photometric`` values: none (the paper's augmentation only) or camera."""


def _colour(p: float) -> A.Compose:
    return A.Compose([
        # Exposure is multiplicative (black stays black); a small additive offset (flare).
        A.MultiplicativeNoise(multiplier=(0.6, 1.4), per_channel=False, elementwise=False,
                              p=p),
        A.RandomBrightnessContrast(brightness_limit=(-0.08, 0.08), contrast_limit=(-0.3, 0.3),
                                   p=p),
        A.RandomGamma(gamma_limit=(55, 180), p=p),
        A.HueSaturationValue(hue_shift_limit=8, sat_shift_limit=30, val_shift_limit=0, p=p),
        A.PlanckianJitter(mode="blackbody", temperature_limit=(3000, 15000), p=p),
        A.ToGray(p=0.05),
    ])


def _degrade(p: float) -> A.Compose:
    return A.Compose([
        A.GaussianBlur(blur_limit=(3, 9), sigma_limit=(0.3, 2.0), p=p / 2),
        A.GaussNoise(std_range=(0.005, 0.06), p=p / 2),
        A.ImageCompression(quality_range=(25, 95), p=p / 2),
    ])


class PhotometricAugment:
    """Random camera-like photometric changes of an image patch (module docstring).

    Args:
        p: probability of each colour transform (the local ones get ``p / 2``).
        seed: seed of albumentations' generator for this object (None: random).

    Call with ``patch`` (P, P, 3) float32 in [0, 1] and optionally ``extra`` (N, 3) pixels;
    returns ``(patch, extra)`` as float32 in [0, 1] (``extra`` None if not given).
    """

    def __init__(self, p: float = 0.5, seed: int | None = None) -> None:
        self.p = p
        self.colour, self.degrade = _colour(p), _degrade(p)
        self.set_random_state(seed)

    def set_random_state(self, seed: int | None) -> None:
        # Two generators from one seed: the pipelines must not replay the same draws.
        self.colour.set_random_seed(seed)
        self.degrade.set_random_seed(None if seed is None else seed + 1)

    def __call__(self, patch: np.ndarray, extra: np.ndarray | None = None
                 ) -> tuple[np.ndarray, np.ndarray | None]:
        if patch.ndim != 3 or patch.shape[2] != 3:
            raise ValueError(f"patch must be (P, P, 3), got {patch.shape}")
        p_h, p_w = patch.shape[:2]
        canvas = np.clip(patch, 0.0, 1.0).astype(np.float32, copy=False)
        n_rows = 0
        if extra is not None:
            # The extra pixels as rows of the patch's width (zero-padded): one call, one
            # parameter draw for both.
            n = len(extra)
            n_rows = -(-n // p_w)
            rows = np.zeros((n_rows * p_w, 3), np.float32)
            rows[:n] = extra
            canvas = np.concatenate([canvas, rows.reshape(n_rows, p_w, 3)], axis=0)
        canvas = np.clip(self.colour(image=np.ascontiguousarray(canvas))["image"], 0.0, 1.0)
        out = np.clip(self.degrade(image=np.ascontiguousarray(canvas[:p_h]))["image"], 0, 1)
        out_extra = None
        if extra is not None:
            out_extra = canvas[p_h:].reshape(n_rows * p_w, 3)[: len(extra)]
        return out.astype(np.float32, copy=False), out_extra
