"""The one analysis path of a photo: FOV, analysis scale, input normalisation, sampling.

``vesselflow segment``, ``vesselflow evaluate``, the benchmarks and the app all call
:func:`segment_image`; its :class:`Segmentation` maps results back to the photo's size.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vesselflow.vessel.analysis.sampler import sample_stats, vessel_mask
from vesselflow.vessel.models import VesselModel
from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DEGREES

MAX_ANALYSIS_PIXELS = 16_000_000
"""Largest image (pixels) a rescale to DRIVE's scale may produce; beyond it the FOV is suspect."""


class AnalysisError(ValueError):
    """An image that cannot be analysed as asked (empty FOV, absurd enlargement)."""


class EnlargementError(AnalysisError):
    """Bringing the image to DRIVE's scale would enlarge it beyond any fundus photograph
    (analysing it at its own size may still work)."""


@dataclass
class Segmentation:
    """Result of :func:`segment_image`, at the analysis scale (DRIVE's, when rescaled).

    Attributes:
        image: (h, w, 3) float32 image the model saw; fov: (h, w) bool field of view.
        mean: vessel probability (mean of samples); std: per-pixel uncertainty (sample std).
        samples: (k, h, w) bool individual samples, or None.
        scale: how the original image was resized (``restore_size`` maps results back).
        fov_source: "given" or "detected"; seconds: sampling time.
    """

    image: np.ndarray
    fov: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None
    n: int
    scale: object  # vesselflow.vessel.preprocess.scale.ScaleInfo
    fov_source: str
    seconds: float
    input_quality: dict | None = None  # vesselflow.vessel.review.verdict.input_features, pre-norm

    @property
    def mean_uncertainty(self) -> float:
        """Mean sample std inside the FOV: one number per image (flags expert review)."""
        from vesselflow.vessel.evaluation.metrics import mean_uncertainty

        return mean_uncertainty(self.std, self.fov)

    def original(self, map_2d: np.ndarray, order: int = 1) -> np.ndarray:
        """A map at the analysis scale resized back to the input image's size."""
        from vesselflow.vessel.preprocess.scale import restore_size

        return restore_size(map_2d, self.scale, order=order)

    def mask(self, threshold: float) -> np.ndarray:
        """Binary vessel mask at the analysis scale: mean >= threshold, inside the FOV."""
        return vessel_mask(self.mean, self.fov, threshold)


def segment_image(model: VesselModel, image: np.ndarray, *, n: int = 16,
                  temperature: float = 1.0, seed: int | None = 0, batch_size: int = 8,
                  keep: int = 0, fov: np.ndarray | None = None, rescale: bool = True,
                  device: str = "cpu", name: str = "image",
                  callback: Callable[[int, np.ndarray], None] | None = None,
                  fov_degrees: float = DRIVE_FOV_DEGREES,
                  input_norm: str | None = None) -> Segmentation:
    """Detect the FOV (unless given), bring the image to DRIVE's scale, sample, summarise.

    The one analysis path of ``vesselflow segment`` and the app. Images whose FOV diameter
    differs from DRIVE's are resized so it matches (the models learned vessel widths at that
    scale); :func:`vesselflow.vessel.preprocess.scale.restore_size` maps the maps back.

    ``fov_degrees``: the camera's field of view (DRIVE's is 45); folded into the rescale by
    :func:`vesselflow.vessel.preprocess.scale.target_fov_diameter` so that a degree of
    retina spans as many pixels as in DRIVE. ``input_norm``: "none" or "fov-standardise"
    (:mod:`vesselflow.vessel.preprocess.normalise`), applied to the rescaled image inside its FOV;
    None (default) uses the model's own (``config.input_norm``), what it was trained with.

    Raises:
        AnalysisError: naming ``name``, for an empty FOV or a rescale beyond
            :data:`MAX_ANALYSIS_PIXELS` (a tiny detected FOV usually means no fundus at all).
    """
    from vesselflow.vessel.preprocess.fov import detect_fov
    from vesselflow.vessel.preprocess.normalise import apply_input_norm
    from vesselflow.vessel.preprocess.scale import (
        ScaleInfo,
        fov_diameter,
        rescale_to_drive,
        target_fov_diameter,
    )

    fov_source = "given" if fov is not None else "detected"
    if fov is None:
        fov = detect_fov(image)
    if not fov.any():
        raise AnalysisError(f"{name}: the field of view is empty: no part of the image can be "
                            f"analysed")
    from vesselflow.vessel.review.verdict import MIN_FOV_DIAMETER, input_features

    diameter = fov_diameter(fov)  # a circle fit to the boundary: once per image
    if diameter < MIN_FOV_DIAMETER:
        raise AnalysisError(
            f"{name}: the {fov_source} field of view is only {diameter:.0f} px across "
            f"(image {fov.shape[1]}x{fov.shape[0]}); at least {MIN_FOV_DIAMETER} px are needed "
            f"to see vessels. Is this a fundus photograph, at its full resolution?")
    if rescale:
        # Checked before resizing: a tiny FOV must not blow the image up in memory.
        h, w = fov.shape
        target = target_fov_diameter(fov_degrees)
        factor = target / diameter
        if h * w * factor**2 > MAX_ANALYSIS_PIXELS:
            raise EnlargementError(
                f"{name}: the {fov_source} field of view is only "
                f"{target / factor:.0f} px across; bringing it to DRIVE's scale "
                f"would enlarge the image to {w * factor:.0f}x{h * factor:.0f} px. Is this a "
                f"fundus photograph with a visible field of view?")
        x, fov_x, info = rescale_to_drive(image, fov, target_diameter=target)
    else:
        shape = tuple(fov.shape)
        x, fov_x, info = image, fov, ScaleInfo(shape, shape, 1.0, diameter)
    if input_norm is None:
        input_norm = getattr(model.config, "input_norm", "none")
    quality = input_features(x, fov_x)  # on the photo as taken, before the normalisation
    x = apply_input_norm(x, fov_x, input_norm)
    t0 = time.perf_counter()
    stats = sample_stats(model, x, n=n, temperature=temperature, batch_size=batch_size,
                         seed=seed, keep=keep, device=device, callback=callback)
    return Segmentation(np.asarray(x, dtype=np.float32), fov_x, stats.mean, stats.std,
                        stats.samples, stats.n, info, fov_source,
                        round(time.perf_counter() - t0, 2), quality)
