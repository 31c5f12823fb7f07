"""The Segment and Evaluate pages' analysis: sampling controls, the cached segmentation with
live progress, and the downloads, written by the library's output writer (the same files as
``vesselflow segment``) and zipped."""

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

from vesselflow import __version__
from vesselflow.app.config import BATCH_SIZE, DISPLAY_SIDE, SAMPLE_CHOICES, ZIP_SAMPLES
from vesselflow.app.guard import AppError
from vesselflow.app.inputs import InputImage, stem
from vesselflow.app.models import uncertainty_reference
from vesselflow.io.encoders import zip_bytes
from vesselflow.io.weights import LoadedModel
from vesselflow.vessel.analysis import pipeline
from vesselflow.vessel.visualize import gray, thumbnail


@dataclass(frozen=True)
class SamplingParams:
    n: int = 16
    temperature: float = 1.0
    seed: int = 0
    rescale: bool = True


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
    return SamplingParams(int(n), float(temperature), int(seed), bool(rescale))


Segmentation = pipeline.Segmentation


def segment_image(model: Any, image: np.ndarray, params: SamplingParams, keep: int = 0,
                  fov: np.ndarray | None = None, device: str = "cpu",
                  callback: Callable[[int, np.ndarray], None] | None = None) -> Segmentation:
    """The library's :func:`~vesselflow.vessel.analysis.pipeline.segment_image` with the app's
    settings and wording."""
    try:
        return pipeline.segment_image(
            model, image, n=params.n, temperature=params.temperature, seed=params.seed,
            batch_size=BATCH_SIZE, keep=keep, fov=fov, rescale=params.rescale, device=device,
            callback=callback)
    except pipeline.AnalysisError as exc:
        hint = (" (To analyse it as it is, turn off *Match DRIVE's scale* under Advanced in "
                "the sidebar.)" if isinstance(exc, pipeline.EnlargementError) else "")
        raise AppError(str(exc).split(": ", 1)[-1] + hint) from exc


@st.cache_data(max_entries=12, show_spinner=False)
def _segment_cached(model_key: str, image_key: str, fov_key: str, params: SamplingParams,
                    keep: int, _model: LoadedModel, _image: np.ndarray, _fov: np.ndarray | None,
                    _callback: Callable | None) -> Segmentation:
    device = str(next(_model.model.parameters()).device)
    return segment_image(_model.model, _image, params, keep=keep, fov=_fov, device=device,
                         callback=_callback)


class LiveProgress:
    """Progress bar and running-mean picture, updated from inside the cached sampler.

    The updates run in a snapshot of the caller's context, taken outside the cached function,
    so Streamlit does not record them as part of the cached result: a cache hit then simply
    returns the result instead of replaying stale progress messages.
    """

    def __init__(self, n: int, bar_slot: Any, map_slot: Any | None, label: str) -> None:
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


def segment(loaded: LoadedModel, image_key: str, image: np.ndarray, params: SamplingParams,
            keep: int = 0, fov: np.ndarray | None = None, bar_slot: Any = None,
            map_slot: Any = None, label: str = "Sampling") -> Segmentation:
    """Cached segmentation keyed by model hash, image hash and parameters, with live progress.

    ``bar_slot`` / ``map_slot`` are ``st.empty()`` placeholders for the progress bar and the
    running mean; the bar is removed when sampling ends.
    """
    bar_slot = bar_slot if bar_slot is not None else st.empty()
    progress = LiveProgress(params.n, bar_slot, map_slot, label)
    fov_key = "detect" if fov is None else hashlib.sha256(np.packbits(fov)).hexdigest()
    model_key = f"{loaded.sha256}:{next(loaded.model.parameters()).device}"
    try:
        result = _segment_cached(model_key, image_key, fov_key, params, keep, loaded, image,
                                 fov, progress)
    finally:
        bar_slot.empty()
    return result


@st.cache_data(max_entries=24, show_spinner=False)
def _biomarkers_cached(model_key: str, image_key: str, params: SamplingParams, threshold: float,
                       pixel_size: float | None, kind: str, _result: Segmentation) -> Any:
    from vesselflow.vessel.biomarkers import segmentation_report

    return segmentation_report(_result, threshold, kind, pixel_size)


def biomarkers(loaded: LoadedModel, image_key: str, result: Segmentation,
               params: SamplingParams, threshold: float, pixel_size: float | None = None
               ) -> Any:
    """Cached :func:`vesselflow.vessel.biomarkers.segmentation_report` of a segmentation."""
    with st.spinner(f"Measuring the vessels of the mask and of {result.n} samples…"):
        return _biomarkers_cached(loaded.sha256, image_key, params, float(threshold),
                                  pixel_size, loaded.config.kind, result)


@st.cache_resource(show_spinner=False)
def _reference(folder: str, sha256: str) -> Any:
    from vesselflow.vessel.review.verdict import Reference

    return Reference.load(folder)


def verdict(loaded: LoadedModel, result: Segmentation, threshold: float) -> Any:
    """The quality verdict of :mod:`vesselflow.vessel.review.verdict` (``segment``'s, for the same
    image, model and threshold): ``ok`` or ``review`` with reasons."""
    from vesselflow.vessel.review.verdict import assess_segmentation

    return assess_segmentation(result, result.mask(threshold),
                               _reference(str(loaded.path), loaded.sha256))


def run_record(loaded: LoadedModel, item: InputImage, result: Segmentation,
               params: SamplingParams, threshold: float,
               summary: dict[str, float] | None = None) -> dict[str, Any]:
    """Everything needed to reproduce or audit a result (``run.json`` in the zip)."""
    from vesselflow.runtime import environment

    ref, ref_source = uncertainty_reference(loaded)
    mu = result.mean_uncertainty
    info = result.scale
    v = verdict(loaded, result, threshold)
    return {
        "tool": f"vesselflow {__version__} web app",
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "notice": "Research use only - not for diagnosis.",
        "image": {"name": item.name, "sha256": item.key,
                  "height": int(item.image.shape[0]), "width": int(item.image.shape[1])},
        "model": {"name": loaded.name, "kind": loaded.config.kind, "sha256": loaded.sha256,
                  "a_priori_threshold": loaded.threshold},
        "parameters": {"samples": params.n, "temperature": params.temperature,
                       "seed": params.seed, "batch_size": BATCH_SIZE,
                       "match_drive_scale": params.rescale, "threshold": float(threshold)},
        "preprocessing": {"fov": result.fov_source, "fov_diameter_px": info.fov_diameter,
                          "scale_factor": info.factor,
                          "analysis_size": list(info.scaled_shape)},
        "summary": {"mean_uncertainty_in_fov": mu, "uncertainty_reference": ref,
                    "uncertainty_reference_source": ref_source,
                    "review": v.status, "reasons": [f.code for f in v.findings],
                    "review_messages": v.sentences(),
                    "vessel_fraction_in_fov": (summary or {}).get("vessel_density"),
                    "seconds": result.seconds},
        "files": {
            "<name>_prob.tif": "vessel probability (mean of the samples), float32 in [0, 1]",
            "<name>_prob.png": "vessel probability, 8-bit (value / 255 = probability)",
            "<name>_mask.png": "vessel mask, probability >= threshold inside the FOV (255)",
            "<name>_uncertainty.png": "per-pixel uncertainty, 8-bit (value / 510 = sample std)",
            "<name>_overlay.png": "mask (green) over the image",
            "<name>_fov.png": "field of view used (255 = inside)",
            "<name>_samples.nii.gz": f"the first {ZIP_SAMPLES} binary samples, uint8 (H, W, N)",
            "note": "all at the uploaded image's size, written by vesselflow.vessel.outputs "
                    "exactly as vesselflow segment writes them",
        },
        "environment": environment(),
    }


def result_files(loaded: LoadedModel, item: InputImage, result: Segmentation,
                 params: SamplingParams, threshold: float, prefix: str = "") -> dict[str, bytes]:
    """All outputs of one image, at the uploaded image's size, for the zip: the files of
    :func:`vesselflow.vessel.outputs.write_outputs` (written to a temporary folder and read
    back) and ``run.json``."""
    import tempfile
    from pathlib import Path

    from vesselflow.vessel.outputs import write_outputs

    name = stem(item.name)
    # All samples stay in memory (the measurements use them); the zip carries the first few.
    zipped = (replace(result, samples=result.samples[:ZIP_SAMPLES])
              if result.samples is not None else result)
    with tempfile.TemporaryDirectory(prefix="vesselflow-app-") as tmp:
        summary = write_outputs(Path(tmp), name, item.image, zipped, threshold,
                                save_samples=result.samples is not None)
        files = {f.name: f.read_bytes() for f in sorted(Path(tmp).iterdir())}
    record = run_record(loaded, item, result, params, threshold, summary)
    files["run.json"] = (json.dumps(record, indent=2, default=str) + "\n").encode()
    return {prefix + k: v for k, v in files.items()}


def result_file(loaded: LoadedModel, item: InputImage, result: Segmentation,
                params: SamplingParams, threshold: float, suffix: str) -> bytes:
    """One of :func:`result_files` (``suffix`` such as ``"_mask.png"``), for its button."""
    name = stem(item.name) + suffix
    return result_files(loaded, item, result, params, threshold)[name]


def results_zip(loaded: LoadedModel, item: InputImage, result: Segmentation,
                params: SamplingParams, threshold: float) -> bytes:
    return zip_bytes(result_files(loaded, item, result, params, threshold))


def deferred(fn: Callable[..., bytes], *args: Any) -> Callable[[], bytes]:
    """A download payload built only when the user clicks (keeps reruns fast)."""
    return partial(fn, *args)
