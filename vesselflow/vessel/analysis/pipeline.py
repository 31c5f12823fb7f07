"""The one analysis path of a photo: FOV, analysis scale, input normalisation, sampling, and
the one way back to the photo's size.

``vesselflow segment``, ``vesselflow evaluate``, the benchmarks and the app all call
:func:`segment_image`; its :class:`Segmentation` maps results back to the photo's size
(:meth:`Segmentation.at_original_size`), and its per-image numbers are summarised once by
:func:`vesselflow.vessel.analysis.summary.summarise`.

Seeds: every image is sampled with :func:`vesselflow.batch.inputs.image_seed` of the run seed
and the image's id (a file's stem, as ``vesselflow segment`` names a single input), so the same
photo, model, seed and number of samples give the same maps in segment, evaluate and the app,
whatever the order or sharding of a batch. A CNF's samples also depend on how many are drawn at
once (``batch_size``): the app draws as many at once as ``vesselflow segment`` does by default.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from vesselflow.batch.inputs import image_seed
from vesselflow.vessel.analysis.sampler import sample_stats, vessel_mask
from vesselflow.vessel.analysis.scale_rule import ScaleChoice
from vesselflow.vessel.models import VesselFactored, VesselModel
from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DEGREES, ScaleInfo

MAX_ANALYSIS_PIXELS = 16_000_000
"""Largest image (pixels) a rescale to DRIVE's scale may produce; beyond it the FOV is suspect."""


class AnalysisError(ValueError):
    """An image that cannot be analysed as asked (empty FOV, absurd enlargement)."""


class EnlargementError(AnalysisError):
    """Bringing the image to DRIVE's scale would enlarge it beyond any fundus photograph
    (analysing it at its own size may still work)."""


@dataclass(frozen=True)
class OriginalMaps:
    """A segmentation's maps at the input image's size (H, W): what is written and scored.

    Attributes:
        mean: float32 vessel probability, bilinear, clipped to [0, 1].
        std: float32 per-pixel uncertainty, bilinear, clipped to [0, 0.5] (a binary sample's
            std is at most 0.5).
        fov: bool field of view at the input's size (the one given or detected there).
        mask: bool ``mean >= threshold`` inside ``fov`` (the ``vessel_mask`` convention).
        samples: (k, H, W) bool samples, nearest neighbour, or None.
    """

    mean: np.ndarray
    std: np.ndarray
    fov: np.ndarray
    mask: np.ndarray
    samples: np.ndarray | None


@dataclass
class Segmentation:
    """Result of :func:`segment_image`, at the analysis scale (DRIVE's, when rescaled).

    Attributes:
        image: (h, w, 3) float32 image the model saw; fov: (h, w) bool field of view.
        mean: vessel probability (mean of samples); std: per-pixel uncertainty (sample std).
        samples: (k, h, w) bool individual samples, or None.
        n: number of samples the mean and std are over.
        scale: how the original image was resized (:meth:`at_original_size` maps back).
        fov_source: "given" or "detected"; seconds: sampling time.
        input_features: the review's input features of the photo at the analysis scale,
            before the input normalisation (:func:`vesselflow.vessel.review.features.
            input_features`).
        original_fov: (H, W) bool field of view at the input's size.
        image_id: the id the seed derives from; seed: the sampler's seed (None: unseeded).
        fov_degrees: the camera's field of view the rescale assumed.
        scale_choice: the analysis scale and why (:mod:`vesselflow.vessel.analysis.
            scale_rule`); None when the image was analysed as it is (``rescale=False``).
        exact: ``mean`` is an exact probability map (the factored model), not a mean of
            ``n`` samples.
    """

    image: np.ndarray
    fov: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None
    n: int
    scale: ScaleInfo
    fov_source: str
    seconds: float
    input_features: dict[str, float]
    original_fov: np.ndarray
    image_id: str = "image"
    seed: int | None = None
    fov_degrees: float = DRIVE_FOV_DEGREES
    scale_choice: ScaleChoice | None = None
    exact: bool = False

    def mask(self, threshold: float) -> np.ndarray:
        """Binary vessel mask at the analysis scale: mean >= threshold, inside the FOV."""
        return vessel_mask(self.mean, self.fov, threshold)

    def at_original_size(self, threshold: float, *, samples: bool = True) -> OriginalMaps:
        """The maps at the input image's size: the one way back, for the output files, the
        scores and the app (see :class:`OriginalMaps`); ``samples=False`` skips the samples.

        Mean and std are resized bilinearly (anti-aliased when shrinking); the samples by
        nearest neighbour (:func:`vesselflow.vessel.preprocess.scale.restore_size`,
        ``order=0``); the mask is the resized mean at ``threshold`` inside the input-size FOV.
        """
        from vesselflow.vessel.preprocess.scale import restore_size

        mean = np.clip(restore_size(self.mean, self.scale), 0.0, 1.0).astype(np.float32)
        std = np.clip(restore_size(self.std, self.scale), 0.0, 0.5).astype(np.float32)
        kept = None
        if samples and self.samples is not None:
            kept = np.stack([restore_size(s, self.scale, order=0) for s in self.samples]
                            ) if len(self.samples) else self.samples
        return OriginalMaps(mean, std, self.original_fov,
                            vessel_mask(mean, self.original_fov, threshold), kept)


def segment_image(model: VesselModel, image: np.ndarray, *, n: int = 16,
                  temperature: float = 1.0, seed: int | None = 0, batch_size: int = 8,
                  keep: int = 0, fov: np.ndarray | None = None, rescale: bool = True,
                  device: str = "cpu", name: str = "image", image_id: str | None = None,
                  callback: Callable[[int, np.ndarray], None] | None = None,
                  fov_degrees: float = DRIVE_FOV_DEGREES,
                  input_norm: str | None = None,
                  analysis_scale: str | float = 1.0) -> Segmentation:
    """Detect the FOV (unless given), bring the image to DRIVE's scale, sample, summarise.

    The one analysis path of ``vesselflow segment``, ``vesselflow evaluate`` and the app.
    Images whose FOV diameter differs from DRIVE's are resized so it matches (the models
    learned vessel widths at that scale); :meth:`Segmentation.at_original_size` maps the maps
    back.

    ``seed``: the run seed; the sampler gets ``image_seed(seed, image_id)`` (None: unseeded).
    ``image_id``: the image's id (default ``name``, which also names it in messages).
    ``fov_degrees``: the camera's field of view (DRIVE's by default); folded into the rescale
    by :func:`vesselflow.vessel.preprocess.scale.target_fov_diameter` so that a degree of
    retina spans as many pixels as in DRIVE. ``input_norm``: "none" or "fov-standardise"
    (:mod:`vesselflow.vessel.preprocess.normalise`), applied to the rescaled image inside its
    FOV; None (default) uses the model's own (``config.input_norm``), what it was trained with.
    ``analysis_scale``: ``"auto"`` or a scale relative to the FOV at DRIVE's diameter (1, the
    default; :mod:`vesselflow.vessel.analysis.scale_rule`): ``auto`` measures the main vessels
    in a first pass at scale 1 when the photo has pixels to spare; a fixed scale is clamped by
    the photo's pixels and the model's trained scale range.

    Raises:
        AnalysisError: naming ``name``, for an empty FOV or a rescale beyond
            :data:`MAX_ANALYSIS_PIXELS` (a tiny detected FOV usually means no fundus at all).
    """
    from vesselflow.vessel.preprocess.fov import MIN_FOV_DIAMETER, detect_fov, fov_diameter
    from vesselflow.vessel.preprocess.normalise import apply_input_norm
    from vesselflow.vessel.preprocess.scale import rescale_to_drive, target_fov_diameter
    from vesselflow.vessel.review.features import input_features

    image_id = name if image_id is None else image_id
    fov_source = "given" if fov is not None else "detected"
    if fov is None:
        fov = detect_fov(image)
    fov = np.asarray(fov, dtype=bool)
    if not fov.any():
        raise AnalysisError(f"{name}: the field of view is empty: no part of the image can be "
                            f"analysed")
    diameter = fov_diameter(fov)  # a circle fit to the boundary: once per image
    if diameter < MIN_FOV_DIAMETER:
        raise AnalysisError(
            f"{name}: the {fov_source} field of view is only {diameter:.0f} px across "
            f"(image {fov.shape[1]}x{fov.shape[0]}); at least {MIN_FOV_DIAMETER} px are needed "
            f"to see vessels. Is this a fundus photograph, at its full resolution?")
    if input_norm is None:
        input_norm = getattr(model.config, "input_norm", "none")
    sampler_seed = None if seed is None else image_seed(seed, image_id)
    choice = None
    if rescale:
        # Checked before resizing: a tiny FOV must not blow the image up in memory.
        h, w = fov.shape
        choice = _choose_scale(model, image, fov, diameter, analysis_scale, fov_degrees,
                               input_norm, sampler_seed, batch_size, device)
        target = target_fov_diameter(fov_degrees) * choice.scale
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
    features = input_features(x, fov_x)  # on the photo as taken, before the normalisation
    x = apply_input_norm(x, fov_x, input_norm)
    t0 = time.perf_counter()
    stats = sample_stats(model, x, n=n, temperature=temperature, batch_size=batch_size,
                         seed=sampler_seed, keep=keep, device=device, callback=callback)
    return Segmentation(np.asarray(x, dtype=np.float32), fov_x, stats.mean, stats.std,
                        stats.samples, stats.n, info, fov_source,
                        round(time.perf_counter() - t0, 2), features, fov, image_id,
                        sampler_seed, float(fov_degrees), choice,
                        exact=isinstance(model, VesselFactored))


def _choose_scale(model: VesselModel, image: np.ndarray, fov: np.ndarray, diameter: float,
                  requested: str | float, fov_degrees: float, input_norm: str,
                  seed: int | None, batch_size: int, device: str) -> ScaleChoice:
    """The analysis scale of one photo (:func:`~vesselflow.vessel.analysis.scale_rule.
    choose_scale`); ``auto`` on a photo with pixels to spare first samples it at scale 1 to
    measure its main vessels against DRIVE's."""
    from vesselflow.vessel.analysis import scale_rule as rule
    from vesselflow.vessel.preprocess.normalise import apply_input_norm
    from vesselflow.vessel.preprocess.scale import rescale_to_drive, target_fov_diameter

    target = target_fov_diameter(fov_degrees)
    limit = rule.pixel_limit(diameter, target)
    trained = rule.trained_range(model.config)
    ratio = None
    if rule.needs_first_pass(requested, limit):
        x1, fov1, _ = rescale_to_drive(image, fov, target_diameter=target)
        stats = sample_stats(model, apply_input_norm(x1, fov1, input_norm),
                             n=rule.FIRST_PASS_SAMPLES, seed=seed, device=device,
                             batch_size=min(batch_size, rule.FIRST_PASS_SAMPLES))
        calibre = rule.main_vessel_calibre(vessel_mask(stats.mean, fov1,
                                                       rule.FIRST_PASS_THRESHOLD))
        if calibre is not None:
            ratio = calibre / rule.DRIVE_MAIN_CALIBRE_PX
    return rule.choose_scale(requested, limit=limit, trained_range=trained,
                             calibre_ratio=ratio)
