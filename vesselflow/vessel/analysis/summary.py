"""The per-image summary: every number reported about one segmented image, computed once.

:func:`summarise` turns a :class:`~vesselflow.vessel.analysis.pipeline.Segmentation` and a
threshold into an :class:`ImageSummary`, at the **analysis scale** (the image resized to
DRIVE's FOV diameter): where the model works, where the review calibrations were measured and
where the biomarkers are measured, so the numbers compare across cameras and photo sizes.
segment's ``metrics.csv`` and ``run.json``, evaluate's ``per_image.csv``, the benchmarks and the
app all read it; nothing computes vessel density, mean uncertainty or the review verdict again.

The mask's skeleton is computed here once and shared by the review's fragmentation and the
biomarkers (:func:`vesselflow.vessel.biomarkers.segmentation_report`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vesselflow.vessel.analysis.pipeline import Segmentation
    from vesselflow.vessel.review.verdict import ReviewCalibration, Verdict


@dataclass(frozen=True)
class ImageSummary:
    """One image's numbers at the analysis scale, and the mask they were measured on.

    Attributes:
        threshold: the mask threshold (vessel where the mean map >= it, inside the FOV).
        vessel_density: mask pixels / FOV pixels.
        mean_uncertainty: mean per-pixel sample std inside the FOV.
        verdict: the review verdict (:mod:`vesselflow.vessel.review.verdict`).
        scale_factor: analysis px per input px (1.0 when not resized).
        fov_diameter: the FOV's diameter in input pixels; fov_source: "given" or "detected".
        original_size, analysis_size: (H, W) of the input and of the analysis.
        samples: samples the maps are over; seed: the sampler's seed (None: unseeded).
        analysis_scale: the analysis scale used (1 = FOV at DRIVE's diameter; None: the image
            as it is); scale_note: why it differs from the one asked for ("" if it does not).
        sampling_seconds: the sampling time.
        mask: (h, w) bool the mask at the analysis scale; skeleton: (h, w) bool its skeleton.
    """

    threshold: float
    vessel_density: float
    mean_uncertainty: float
    verdict: Verdict
    scale_factor: float
    fov_diameter: float
    fov_source: str
    original_size: tuple[int, int]
    analysis_size: tuple[int, int]
    samples: int
    seed: int | None
    sampling_seconds: float
    mask: np.ndarray
    skeleton: np.ndarray
    analysis_scale: float | None = None
    scale_note: str = ""

    def row(self) -> dict[str, Any]:
        """The image's columns of segment's ``metrics.csv`` (and its ``--continue`` marker)."""
        return {**self.verdict.row(), "review_messages": self.verdict.sentences(),
                "vessel_density": self.vessel_density,
                "mean_uncertainty": self.mean_uncertainty,
                "height": self.original_size[0], "width": self.original_size[1],
                "scale_factor": round(self.scale_factor, 4),
                "analysis_scale": None if self.analysis_scale is None
                else round(self.analysis_scale, 4),
                "fov_diameter": round(self.fov_diameter, 1), "seed": self.seed,
                "samples": self.samples, "sampling_seconds": round(self.sampling_seconds, 3)}

    def to_dict(self) -> dict[str, Any]:
        """The ``summary`` block of a single image's ``run.json`` (the app's download)."""
        return {"scale": "analysis (FOV at DRIVE's diameter)",
                "vessel_density": self.vessel_density,
                "mean_uncertainty": self.mean_uncertainty, "threshold": self.threshold,
                **self.verdict.row(), "reasons": list(self.verdict.codes_list),
                "review_messages": self.verdict.sentences(),
                "review_threshold": self.verdict.threshold,
                "review_features": {k: round(v, 6) for k, v in self.verdict.features.items()},
                "scale_factor": self.scale_factor, "analysis_scale": self.analysis_scale,
                "scale_note": self.scale_note, "fov_diameter_px": self.fov_diameter,
                "fov_source": self.fov_source, "original_size": list(self.original_size),
                "analysis_size": list(self.analysis_size), "samples": self.samples,
                "seed": self.seed, "sampling_seconds": self.sampling_seconds}


def summarise(seg: Segmentation, threshold: float,
              calibration: ReviewCalibration | None) -> ImageSummary:
    """The per-image summary of ``seg`` with its mask at ``threshold``, and the review
    verdict against the model's ``calibration`` (None: ``not assessed``)."""
    from skimage.morphology import skeletonize

    from vesselflow.vessel.review.features import map_features
    from vesselflow.vessel.review.verdict import assess

    mask = seg.mask(threshold)  # (h, w) bool, inside the FOV
    fov_px = int(np.count_nonzero(seg.fov))  # never 0: segment_image refuses an empty FOV
    density = int(np.count_nonzero(mask)) / fov_px
    uncertainty = float(seg.std[seg.fov].mean())
    skeleton = skeletonize(mask) if mask.any() else np.zeros_like(mask)
    features = {**seg.input_features,
                **map_features(seg.mean, seg.fov, mask, skeleton, density,
                               None if seg.exact else seg.n)}
    info = seg.scale
    return ImageSummary(
        threshold=float(threshold), vessel_density=density, mean_uncertainty=uncertainty,
        verdict=assess(features, calibration), scale_factor=info.factor,
        fov_diameter=info.fov_diameter, fov_source=seg.fov_source,
        original_size=tuple(info.original_shape), analysis_size=tuple(info.scaled_shape),
        samples=seg.n, seed=seg.seed, sampling_seconds=seg.seconds, mask=mask,
        skeleton=skeleton,
        analysis_scale=None if seg.scale_choice is None else seg.scale_choice.scale,
        scale_note="" if seg.scale_choice is None else seg.scale_choice.note)
