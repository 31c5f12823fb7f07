"""The one writer of a segmented image's files and of the record beside them, used by
``vesselflow segment`` and the app.

Per image ``<id>``, all at the input's original size (H, W), from
:meth:`vesselflow.vessel.analysis.pipeline.Segmentation.at_original_size`:

* ``<id>_prob.tif``  float32 mean of the samples (vessel probability) in [0, 1];
* ``<id>_prob.png``  the same as 8-bit (value / 255);
* ``<id>_mask.png``  0/255, ``prob >= threshold`` inside the FOV;
* ``<id>_uncertainty.png``  per-pixel std across samples as 8-bit (value / 510 = std, since a
  binary sample's std is at most 0.5);
* ``<id>_overlay.png``  RGB input with the mask drawn in green;
* ``<id>_fov.png``  0/255 field of view that was detected and used;
* ``<id>_samples.nii.gz`` (``save_samples``) uint8 0/1 stack (H, W, N), axis 0 = rows.

Per run, :func:`write_biomarkers` writes ``biomarkers.csv`` (one row per image), and
:func:`run_record` builds the ``run.json`` entries that segment's run (through the batch
runner) and the app's download share: the model, the parameters, the preprocessing, the review
calibration, the files and, for a single image, its per-image summary
(:class:`vesselflow.vessel.analysis.summary.ImageSummary`) with its review verdict.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vesselflow.io.encoders import nifti_gz_bytes, write_bytes, write_png, write_tiff

if TYPE_CHECKING:
    from vesselflow.io.weights import LoadedModel
    from vesselflow.vessel.analysis.pipeline import Segmentation
    from vesselflow.vessel.analysis.summary import ImageSummary
    from vesselflow.vessel.review.verdict import ReviewCalibration

FILES = {
    "_prob.tif": "vessel probability (mean of the samples), float32 in [0, 1]",
    "_prob.png": "vessel probability, 8-bit (value / 255 = probability)",
    "_mask.png": "vessel mask, probability >= threshold inside the FOV (255)",
    "_uncertainty.png": "per-pixel uncertainty, 8-bit (value / 510 = sample std)",
    "_overlay.png": "mask (green) over the image",
    "_fov.png": "field of view used (255 = inside)",
}
"""Suffix -> what the file holds (the ``files`` entry of run.json)."""
OUTPUT_SUFFIXES = tuple(FILES)
SAMPLES_SUFFIX = "_samples.nii.gz"
BIOMARKERS_FILE = "biomarkers.csv"
PNG_LEVEL = 3  # 2.5x faster than Pillow's default 6 for ~8% larger files (3504x2336 maps)


def output_names(image_id: str, save_samples: bool) -> list[str]:
    """File names (in OUT) of one image's outputs."""
    names = [image_id + s for s in OUTPUT_SUFFIXES]
    return [*names, image_id + SAMPLES_SUFFIX] if save_samples else names


def write_outputs(out: Path, image_id: str, image: np.ndarray, result: Segmentation,
                  threshold: float, save_samples: bool = False) -> None:
    """Write one image's files into ``out`` (atomically), at the input's size.

    Args:
        image: (H, W, 3) float32 input at its original size.
        result: its segmentation; every map comes back through
            :meth:`~vesselflow.vessel.analysis.pipeline.Segmentation.at_original_size`.
        save_samples: also write the samples the result kept (``<id>_samples.nii.gz``).
    """
    from vesselflow.vessel.visualize import overlay

    maps = result.at_original_size(threshold, samples=save_samples)
    write_tiff(out / f"{image_id}_prob.tif", maps.mean)
    write_png(out / f"{image_id}_prob.png", np.round(maps.mean * 255).astype(np.uint8),
              PNG_LEVEL)
    write_png(out / f"{image_id}_mask.png", maps.mask.astype(np.uint8) * 255, PNG_LEVEL)
    write_png(out / f"{image_id}_uncertainty.png",
              np.round(maps.std * 510).clip(0, 255).astype(np.uint8), PNG_LEVEL)
    write_png(out / f"{image_id}_overlay.png", overlay(image, maps.mask), PNG_LEVEL)
    write_png(out / f"{image_id}_fov.png", maps.fov.astype(np.uint8) * 255, PNG_LEVEL)
    if save_samples and maps.samples is not None:
        stack = np.moveaxis(maps.samples, 0, -1).view(np.uint8)  # bool (k, H, W) -> 0/1 (H, W, k)
        write_bytes(out / f"{image_id}{SAMPLES_SUFFIX}", nifti_gz_bytes(stack))


def write_biomarkers(path: Path, rows: list[dict[str, Any]]) -> int:
    """biomarkers.csv (atomically): one row per image with biomarkers (id, input, values).

    Returns the number of images written.
    """
    from vesselflow.io.files import write_csv

    table = [{"id": r["id"], "input": r["input"], **r["biomarkers"]} for r in rows
             if r.get("biomarkers")]
    write_csv(path, table, None if table else ("id", "input"))
    return len(table)


# ------------------------------------------------------------------------------- run record
def analysis_parameters(*, samples: int, temperature: float, seed: int, batch_size: int,
                        threshold: float, threshold_from: str, rescale: bool = True,
                        fov_degrees: float | None = None,
                        analysis_scale: str | float = 1.0) -> dict[str, Any]:
    """What decides an image's maps, as run.json records it (segment and the app alike).

    ``threshold_from``: "model" (the model's a-priori threshold) or "given" (the user's).
    ``fov_degrees``: the camera's field of view; None is DRIVE's. ``analysis_scale``: "auto"
    or the scale asked for (:mod:`vesselflow.vessel.analysis.scale_rule`).
    """
    from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DEGREES

    return {"samples": samples, "temperature": temperature, "seed": seed,
            "batch_size": batch_size, "threshold": float(threshold),
            "threshold_from": threshold_from, "match_drive_scale": rescale,
            "analysis_scale": analysis_scale,
            "fov_degrees": DRIVE_FOV_DEGREES if fov_degrees is None else fov_degrees}


def model_record(loaded: LoadedModel) -> dict[str, Any]:
    """The model block of run.json: name, where, kind, version, sha256, threshold, config."""
    from vesselflow import __version__

    meta = loaded.meta
    return {"name": loaded.name, "path": str(loaded.path), "kind": loaded.config.kind,
            "version": meta.get("version", __version__), "sha256": loaded.sha256,
            "threshold": loaded.threshold, "config": loaded.config.to_dict(),
            "trained_step": meta.get("step")}


def calibration_record(calibration: ReviewCalibration | None) -> dict[str, Any] | None:
    """Where the review verdicts come from (None: the model has no calibration)."""
    if calibration is None:
        return None
    if calibration.stale:
        return {"usable": False, "why": calibration.stale}
    return {"usable": True, "threshold": calibration.threshold,
            **{k: calibration.meta.get(k) for k in ("model_sha256", "samples", "calibration",
                                                     "command")}}


def files_record(samples_written: int | None) -> dict[str, str]:
    """The ``files`` block: each output per image (``<id>``) and what it holds."""
    files = {f"<id>{suffix}": what for suffix, what in FILES.items()}
    if samples_written:
        files[f"<id>{SAMPLES_SUFFIX}"] = (f"{samples_written} binary samples, uint8 "
                                           "(H, W, N)")
    files["note"] = ("all at the input image's size, written by "
                     "vesselflow.vessel.outputs.write_outputs (segment and the app alike)")
    return files


def run_record(loaded: LoadedModel, parameters: dict[str, Any], *,
               calibration: ReviewCalibration | None, samples_written: int | None = None,
               summary: ImageSummary | None = None) -> dict[str, Any]:
    """The run.json entries segment's run and the app's download share.

    Args:
        parameters: :func:`analysis_parameters`, plus whatever else the caller ran with.
        calibration: the model's review calibration (what its verdicts check against).
        samples_written: how many samples each image's ``_samples.nii.gz`` holds, if any.
        summary: for a single image (the app), its per-image summary with the verdict;
            a batch's per-image numbers are in metrics.csv instead.

    Returns:
        ``model``, ``parameters``, ``preprocessing``, ``review_calibration``, ``files`` and,
        with ``summary``, ``summary``.
    """
    from vesselflow.vessel.preprocess.scale import (
        DEFAULT_TOLERANCE,
        DRIVE_FOV_DIAMETER,
        target_fov_diameter,
    )

    degrees = parameters["fov_degrees"]
    rescale = (f"image resized so the FOV diameter is the analysis scale times "
               f"{target_fov_diameter(degrees):.1f} px (DRIVE's {DRIVE_FOV_DIAMETER} px at "
               f"{degrees:g} degrees; scale {parameters.get('analysis_scale', 1.0)}: "
               f"vesselflow.vessel.analysis.scale_rule), not resized within "
               f"{DEFAULT_TOLERANCE:.0%}" if parameters.get("match_drive_scale", True)
               else "none: analysed at the image's own size")
    record: dict[str, Any] = {
        "model": model_record(loaded),
        "parameters": parameters,
        "preprocessing": {
            "fov": "detected from the image (vesselflow.vessel.preprocess.fov)",
            "rescale": rescale,
            "input_norm": getattr(loaded.config, "input_norm", "none"),
            "map_back": "mean and std bilinear, samples nearest neighbour, mask = mean >= "
                        "threshold inside the FOV at the input's size",
            "summary": "vessel density, mean uncertainty and the review verdict at the "
                       "analysis scale (vesselflow.vessel.analysis.summary)"},
        "review_calibration": calibration_record(calibration),
        "files": files_record(samples_written),
    }
    if summary is not None:
        record["summary"] = summary.to_dict()
    return record
