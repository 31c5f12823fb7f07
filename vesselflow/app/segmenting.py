"""The Segment and Evaluate pages' analysis: sampling controls, the cached segmentation with
live progress, its per-image summary, and the downloads, written by the library's output writer
and run record (the same files and run.json entries as ``vesselflow segment``) and zipped.

An upload is named, and seeded, as ``vesselflow segment`` names and seeds a single input file
(:func:`image_id`): the same photo, model, seed and number of samples give the same maps here
as on the command line.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import streamlit as st
from streamlit.delta_generator import DeltaGenerator

from vesselflow import __version__
from vesselflow.app.config import BATCH_SIZE, DISPLAY_SIDE, SAMPLE_CHOICES, ZIP_SAMPLES
from vesselflow.app.guard import AppError
from vesselflow.app.inputs import InputImage
from vesselflow.batch.inputs import file_id
from vesselflow.io.encoders import zip_bytes
from vesselflow.io.weights import LoadedModel
from vesselflow.vessel.analysis import pipeline
from vesselflow.vessel.analysis.scale_rule import SCALE_CHOICES, parse_scale
from vesselflow.vessel.analysis.summary import ImageSummary, summarise
from vesselflow.vessel.biomarkers import BiomarkerReport
from vesselflow.vessel.models import VesselModel
from vesselflow.vessel.review.verdict import ReviewCalibration
from vesselflow.vessel.visualize import gray, thumbnail


@dataclass(frozen=True)
class SamplingParams:
    n: int = 16
    temperature: float = 1.0
    seed: int = 0
    rescale: bool = True
    analysis_scale: str = "auto"


def sampling_controls() -> SamplingParams:
    """Sidebar controls for the sampler, with the app's defaults."""
    sb = st.sidebar
    n = sb.select_slider("Samples", SAMPLE_CHOICES, value=16, key="n_samples",
                         help="Number of vessel maps drawn from the model. The probability "
                              "map is their mean; more samples give a smoother, more stable "
                              "estimate (time grows linearly).")
    temperature = sb.slider("Temperature", 0.0, 1.5, 1.0, 0.05, key="temperature",
                            help="Scales the spread of the model's random draws. 1.0 samples "
                                 "the learned distribution; lower values give more "
                                 "conservative, less varied maps. For the factored baseline "
                                 "the probability map is exact and only the individual "
                                 "samples change.")
    with sb.expander("Advanced"):
        seed = st.number_input("Random seed", 0, 2**31 - 1, 0, 1, key="seed",
                               help="Same image, settings and seed give the same samples.")
        rescale = st.checkbox("Match DRIVE's scale", value=True, key="rescale",
                              help="Resize the image so its field of view has the diameter "
                                   "of DRIVE's (538 px), the scale the models were trained "
                                   "at. Results are mapped back to the original size for "
                                   "download. Recommended for photos from other cameras.")
        scale = st.selectbox("Analysis scale", SCALE_CHOICES, index=0, key="analysis_scale",
                             disabled=not rescale,
                             help="How large the photo is analysed, relative to its field "
                                  "of view at DRIVE's diameter (1). auto uses the pixels a "
                                  "large photo has, up to where its main vessels are 1.25x "
                                  "as wide as DRIVE's and within the model's trained scale "
                                  "range (a quick first pass measures them); small photos "
                                  "stay at 1. A fixed scale is clamped by the photo's "
                                  "pixels and the trained range.")
    return SamplingParams(int(n), float(temperature), int(seed), bool(rescale), str(scale))


Segmentation = pipeline.Segmentation


def image_id(item: InputImage) -> str:
    """The id of an upload: its file's stem, as ``vesselflow segment`` names a single input.
    Its seed derives from it, and its downloads are named by it."""
    return file_id(item.name)


def segment_image(model: VesselModel, image: np.ndarray, params: SamplingParams,
                  keep: int = 0, fov: np.ndarray | None = None, device: str = "cpu",
                  callback: Callable[[int, np.ndarray], None] | None = None,
                  name: str = "image") -> Segmentation:
    """The library's :func:`~vesselflow.vessel.analysis.pipeline.segment_image` with the app's
    settings and wording; ``name`` is the image's id (:func:`image_id`)."""
    try:
        return pipeline.segment_image(
            model, image, n=params.n, temperature=params.temperature, seed=params.seed,
            batch_size=BATCH_SIZE, keep=keep, fov=fov, rescale=params.rescale, device=device,
            callback=callback, name=name, analysis_scale=parse_scale(params.analysis_scale))
    except pipeline.AnalysisError as exc:
        hint = (" (To analyse it as it is, turn off *Match DRIVE's scale* under Advanced in "
                "the sidebar.)" if isinstance(exc, pipeline.EnlargementError) else "")
        raise AppError(str(exc).split(": ", 1)[-1] + hint) from exc


@st.cache_data(max_entries=12, show_spinner=False)
def _segment_cached(model_key: str, image_key: str, name: str, fov_key: str,
                    params: SamplingParams, keep: int, _model: LoadedModel, _image: np.ndarray,
                    _fov: np.ndarray | None, _callback: Callable | None) -> Segmentation:
    device = str(next(_model.model.parameters()).device)
    return segment_image(_model.model, _image, params, keep=keep, fov=_fov, device=device,
                         callback=_callback, name=name)


class LiveProgress:
    """Progress bar and running-mean picture, updated from inside the cached sampler.

    The updates run in a snapshot of the caller's context, taken outside the cached function,
    so Streamlit does not record them as part of the cached result: a cache hit then simply
    returns the result instead of replaying stale progress messages.
    """

    def __init__(self, n: int, bar_slot: DeltaGenerator, map_slot: DeltaGenerator | None,
                 label: str) -> None:
        self.n, self.bar_slot, self.map_slot, self.label = n, bar_slot, map_slot, label
        self._context = contextvars.copy_context()
        self._bar = bar_slot.progress(0.0, text=f"{label}: drawing {n} samples…")

    def __call__(self, done: int, running_mean: np.ndarray) -> None:
        self._context.run(self._update, done, running_mean)

    def _update(self, done: int, running_mean: np.ndarray) -> None:
        self._bar.progress(min(done / self.n, 1.0),
                           text=f"{self.label}: {done} of {self.n} samples drawn")
        if self.map_slot is not None and done < self.n:
            self.map_slot.image(thumbnail(gray(running_mean), DISPLAY_SIDE), width="stretch",
                                caption=f"Running mean of {done} samples (updating…)")


def segment(loaded: LoadedModel, item: InputImage, params: SamplingParams, keep: int = 0,
            fov: np.ndarray | None = None, bar_slot: DeltaGenerator | None = None,
            map_slot: DeltaGenerator | None = None,
            label: str = "Sampling") -> Segmentation:
    """Cached segmentation of ``item`` keyed by model hash, image hash, its id and the
    parameters, with live progress.

    ``bar_slot`` / ``map_slot`` are ``st.empty()`` placeholders for the progress bar and the
    running mean; the bar is removed when sampling ends.
    """
    bar_slot = bar_slot if bar_slot is not None else st.empty()
    progress = LiveProgress(params.n, bar_slot, map_slot, label)
    fov_key = "detect" if fov is None else hashlib.sha256(np.packbits(fov)).hexdigest()
    model_key = f"{loaded.sha256}:{next(loaded.model.parameters()).device}"
    try:
        result = _segment_cached(model_key, item.key, image_id(item), fov_key, params, keep,
                                 loaded, item.image, fov, progress)
    finally:
        bar_slot.empty()
    return result


@st.cache_resource(show_spinner=False)
def _calibration(folder: str, sha256: str) -> ReviewCalibration | None:
    return ReviewCalibration.load(folder, sha256)


def summary(loaded: LoadedModel, result: Segmentation, threshold: float) -> ImageSummary:
    """The per-image summary (:func:`vesselflow.vessel.analysis.summary.summarise`: vessel
    density, mean uncertainty, the review verdict) ``segment`` computes for the same image,
    model and threshold; a page computes it once and shows and downloads it."""
    return summarise(result, threshold, _calibration(str(loaded.path), loaded.sha256))


@st.cache_data(max_entries=24, show_spinner=False)
def _biomarkers_cached(model_key: str, image_key: str, name: str, params: SamplingParams,
                       threshold: float, pixel_size: float | None, kind: str,
                       _result: Segmentation, _summary: ImageSummary,
                       _loaded: LoadedModel) -> BiomarkerReport:
    from vesselflow.vessel.biomarker_calibration import load_for
    from vesselflow.vessel.biomarkers import segmentation_report

    cal, why = load_for(_loaded)  # only for these weights' sha256 (model_key), else None
    return segmentation_report(_result, _summary, kind, pixel_size, cal, why)


def biomarkers(loaded: LoadedModel, item: InputImage, result: Segmentation,
               summary: ImageSummary, params: SamplingParams,
               pixel_size: float | None = None) -> BiomarkerReport:
    """Cached :func:`vesselflow.vessel.biomarkers.segmentation_report` of a segmentation."""
    with st.spinner(f"Measuring the vessels of the mask and of {result.n} samples…"):
        return _biomarkers_cached(loaded.sha256, item.key, image_id(item), params,
                                  summary.threshold, pixel_size, loaded.config.kind, result,
                                  summary, loaded)


def run_record(loaded: LoadedModel, item: InputImage, result: Segmentation,
               params: SamplingParams, summary: ImageSummary) -> dict[str, Any]:
    """Everything needed to reproduce or audit a result (``run.json`` in the zip): the
    entries of :func:`vesselflow.vessel.outputs.run_record`, as ``vesselflow segment``
    writes them, with the image and its per-image summary."""
    from vesselflow.runtime import environment
    from vesselflow.vessel.outputs import analysis_parameters
    from vesselflow.vessel.outputs import run_record as shared_record

    given = abs(summary.threshold - loaded.threshold) > 1e-12
    parameters = analysis_parameters(
        samples=params.n, temperature=params.temperature, seed=params.seed,
        batch_size=BATCH_SIZE, threshold=summary.threshold,
        threshold_from="given" if given else "model", rescale=params.rescale,
        analysis_scale=parse_scale(params.analysis_scale))
    kept = None if result.samples is None else min(ZIP_SAMPLES, len(result.samples))
    return {
        "tool": f"vesselflow {__version__} web app",
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "notice": "Research use only - not for diagnosis.",
        "image": {"name": item.name, "id": image_id(item), "sha256": item.key,
                  "height": int(item.image.shape[0]), "width": int(item.image.shape[1])},
        **shared_record(loaded, parameters, samples_written=kept, summary=summary,
                        calibration=_calibration(str(loaded.path), loaded.sha256)),
        "environment": environment(),
    }


def result_files(loaded: LoadedModel, item: InputImage, result: Segmentation,
                 params: SamplingParams, summary: ImageSummary,
                 prefix: str = "") -> dict[str, bytes]:
    """All outputs of one image, at the uploaded image's size, for the zip: the files of
    :func:`vesselflow.vessel.outputs.write_outputs` (written to a temporary folder and read
    back) and ``run.json``."""
    import tempfile
    from pathlib import Path

    from vesselflow.vessel.outputs import write_outputs

    # All samples stay in memory (the measurements use them); the zip carries the first few.
    zipped = (replace(result, samples=result.samples[:ZIP_SAMPLES])
              if result.samples is not None else result)
    with tempfile.TemporaryDirectory(prefix="vesselflow-app-") as tmp:
        write_outputs(Path(tmp), image_id(item), item.image, zipped, summary.threshold,
                      save_samples=result.samples is not None)
        files = {f.name: f.read_bytes() for f in sorted(Path(tmp).iterdir())}
    record = run_record(loaded, item, result, params, summary)
    files["run.json"] = (json.dumps(record, indent=2, default=str) + "\n").encode()
    return {prefix + k: v for k, v in files.items()}


def result_file(loaded: LoadedModel, item: InputImage, result: Segmentation,
                params: SamplingParams, summary: ImageSummary, suffix: str) -> bytes:
    """One of :func:`result_files` (``suffix`` such as ``"_mask.png"``), for its button."""
    return result_files(loaded, item, result, params, summary)[image_id(item) + suffix]


def results_zip(loaded: LoadedModel, item: InputImage, result: Segmentation,
                params: SamplingParams, summary: ImageSummary) -> bytes:
    return zip_bytes(result_files(loaded, item, result, params, summary))


def deferred(fn: Callable[..., bytes], *args: Any) -> Callable[[], bytes]:
    """A download payload built only when the user clicks (keeps reruns fast)."""
    return partial(fn, *args)
