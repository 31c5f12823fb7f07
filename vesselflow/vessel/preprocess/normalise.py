"""Inference-time input normalisation: match an image's FOV colour statistics to DRIVE's.

A DRIVE-trained model reacts to colour statistics as much as to vessels: a bright,
yellowish photograph can come out with an empty map. ``fov-standardise`` standardises each
colour channel *inside the field of view* to the statistics of the training images:

    x'_c = (x_c - mean_c(image, FOV)) / std_c(image, FOV) * std_c(DRIVE) + mean_c(DRIVE)

inside the FOV, clipped to [0, 1] (the range the model was trained on); outside the FOV 0.
DRIVE's channel statistics are, per channel, the average over DRIVE's 20 training-folder images
(``trainval``: the 16 training and 4 validation images) of each image's FOV mean and FOV std
(the within-image spread, which is what one image is standardised to; the pooled std would add
the between-image spread). They are computed by
:func:`vesselflow.vessel.data.drive_stats.drive_channel_stats` from the images and stored
in ``vesselflow/weights/drive-fov-stats.json`` by
``vesselflow drive-stats --drive ../shared/data/DRIVE`` (:mod:`vesselflow.cli.drive_stats`), so
inference does not need DRIVE; a test recomputes it.

A model trained with it says so in its config (``VesselConfig.input_norm``) and gets it at
inference everywhere (``segment``, ``evaluate``, the app, validation); models trained without
it do not, unless ``benchmarks/generalisation.py --input-norm fov-standardise`` asks (the
measurement of what it does for a model that never saw standardised images). In training,
:class:`~vesselflow.vessel.data.augment.TrainAugment` standardises each patch with the
statistics of a sample of its whole photo's FOV pixels, after the photometric augmentation.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

INPUT_NORMS = ("none", "fov-standardise")
"""Accepted values of ``input_norm`` (``None`` means "none")."""

STATS_PATH = Path(__file__).resolve().parents[2] / "weights" / "drive-fov-stats.json"
"""Where the DRIVE training images' FOV statistics are stored (0-1 intensities)."""

_MIN_STD = 1e-3  # a flat channel (e.g. a grey image's copy) is shifted, not blown up


def fov_channel_stats(image: np.ndarray, fov: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (each (3,), float64) of ``image`` (H, W, 3) inside ``fov``."""
    fov = np.asarray(fov, dtype=bool)
    if image.shape[:2] != fov.shape:
        raise ValueError(f"image {image.shape[:2]} and FOV {fov.shape} sizes differ")
    if not fov.any():
        raise ValueError("the field of view is empty")
    px = np.asarray(image, dtype=np.float64)[fov]  # (N, 3)
    return px.mean(0), px.std(0)


def load_drive_stats(path: str | Path = STATS_PATH) -> dict:
    """DRIVE's stored FOV channel statistics
    (:func:`vesselflow.vessel.data.drive_stats.drive_channel_stats` computes them)."""
    path = Path(path)
    try:
        stats = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise FileNotFoundError(
            f"{path}: cannot read the DRIVE FOV statistics ({e}); recompute them with "
            f"vesselflow drive-stats --drive <DRIVE folder>") from None
    if len(stats.get("mean", ())) != 3 or len(stats.get("std", ())) != 3:
        raise ValueError(f"{path}: expected 3-channel 'mean' and 'std'")
    return stats


def fov_standardise(image: np.ndarray, fov: np.ndarray, target: dict | None = None,
                    stats: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
    """Standardise each channel inside ``fov`` to ``target``'s FOV statistics (module
    docstring).

    Args:
        image: (H, W, 3) float in [0, 1]; fov: (H, W) bool.
        target: ``{"mean": (3,), "std": (3,)}`` on 0-1; default DRIVE's stored statistics.
        stats: the image's own (mean, std) per channel; default computed inside ``fov``.
            Training passes those of the whole photo while ``image`` is a patch of it.

    Returns:
        float32 (H, W, 3) in [0, 1], 0 outside the FOV.
    """
    target = load_drive_stats() if target is None else target
    fov = np.asarray(fov, dtype=bool)
    mean, std = fov_channel_stats(image, fov) if stats is None else stats
    gain = np.asarray(target["std"], np.float64) / np.maximum(std, _MIN_STD)
    out = (np.asarray(image, np.float64) - mean) * gain + np.asarray(target["mean"], np.float64)
    out = np.clip(out, 0.0, 1.0)
    out[~fov] = 0.0
    return out.astype(np.float32)


def apply_input_norm(image: np.ndarray, fov: np.ndarray, input_norm: str | None
                     ) -> np.ndarray:
    """``input_norm`` in :data:`INPUT_NORMS` (or None) applied to an image and its FOV."""
    if input_norm in (None, "none"):
        return image
    if input_norm == "fov-standardise":
        return fov_standardise(image, fov)
    raise ValueError(f"unknown input_norm {input_norm!r}; expected one of {INPUT_NORMS}")
