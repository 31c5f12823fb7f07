"""What the app's pages share: configuration, error guard, models, inputs, the cached
segmentation with live progress, the review flag and the download builders, and the same
for super-resolution (last section).

Configuration (environment variables, all optional):

* ``VESSELFLOW_APP_MODELS``: JSON object, display name -> shipped model name or model folder,
  used instead of the shipped ``cnf-drive`` and ``factored-drive`` (e.g. for tests, or for a
  model you trained yourself: ``{"My CNF": "runs/cnf-drive"}``).
* ``VESSELFLOW_DRIVE``: a DRIVE folder for the Evaluate page (default ``../shared/data/DRIVE``
  next to the repository, when it exists).
* ``VESSELFLOW_APP_SR_MODELS``: the Super-resolution page's models instead of the shipped
  ``sr-cnf`` and ``sr-factored``: a JSON object like ``VESSELFLOW_APP_MODELS`` or a
  comma-separated list of model folders.
* ``VESSELFLOW_SR_DATA``: the SR data folder whose Set5 images are the Super-resolution page's
  examples (default ``../shared/data/SR``; a synthetic image is always offered).

Nothing here writes to disk: uploads are decoded from memory and results live in Streamlit's
in-memory caches.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import streamlit as st

from vesselflow import __version__, inference
from vesselflow.data.errors import ImageReadError
from vesselflow.models.io import SHIPPED, WEIGHTS_DIR, LoadedModel, load_model, resolve_model
from vesselflow.visualize import (
    colorize,
    gray,
    overlay,
    png_bytes,
    thumbnail,
    tiff_bytes,
    zip_bytes,
)

LOG = logging.getLogger("vesselflow.app")
REPO = Path(__file__).resolve().parents[1]
MODELS_ENV = "VESSELFLOW_APP_MODELS"
DRIVE_ENV = "VESSELFLOW_DRIVE"
DEFAULT_MODELS = {
    "Conditional flow (cnf-drive)": "cnf-drive",
    "Factored baseline (factored-drive)": "factored-drive",
    "Factored baseline, unweighted Bernoulli (factored-bce)": "factored-bce",
}
MAX_PIXELS = 40_000_000  # ~6300 x 6300: far above any fundus camera, far below memory trouble
IMAGE_TYPES = ["png", "jpg", "jpeg", "tif", "tiff", "bmp", "gif", "dcm", "nii", "gz"]
SAMPLE_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128)
BATCH_SIZE = 4  # samples per batch: the mean map on screen is refreshed after each batch
ZIP_SAMPLES = 4  # individual samples written into the results zip (all are kept in memory)
DISPLAY_SIDE = 900  # pictures on screen are at most this many pixels on their long side

DEFAULT_UNCERTAINTY_REFERENCE = {"cnf": 0.15, "factored": 0.37}
"""Per model kind: the mean uncertainty (sample std averaged inside the FOV) above which an
image is flagged for expert review, used when the model's meta has no
``uncertainty_reference``.

Provisional values from ``vesselflow.evaluation.metrics.uncertainty_reference`` (1.25 x the
highest per-image value on DRIVE's 4 validation images, 16 samples, temperature 1.0) measured
on early checkpoints: CNF 0.095-0.120 per image, factored 0.26-0.30 (its exact per-pixel
Bernoulli std is higher everywhere). A model's own stored reference replaces them.
"""

RESEARCH_NOTICE = (
    "**Research use only — not for diagnosis.** vesselflow is not a medical device; its maps "
    "must not be used for clinical decisions without review by a qualified clinician."
)


class AppError(Exception):
    """A problem with a friendly message for the user (shown as-is, no traceback)."""


# ----------------------------------------------------------------------------- error guard
def run_page(body: Callable[[], None]) -> None:
    """Run a page body; any error becomes a short ``st.error`` (details go to the log).

    Streamlit's own control flow (``st.stop``, ``st.rerun``, a widget change interrupting a
    run) derives from BaseException and passes through untouched.
    """
    try:
        body()
    except (AppError, ImageReadError) as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:
        LOG.exception("unexpected error on a vesselflow app page")
        st.error(f"Something went wrong ({type(exc).__name__}: {_short(exc)}). The details "
                 "were written to the console where the app was started. Try another image "
                 "or other settings; if it persists, please report it.", icon=":material/error:")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# ----------------------------------------------------------------------------- models
def _json_models(env: str, raw: str, hint: str = "") -> dict[str, str]:
    """Parse a models variable holding a JSON object of display name -> model source."""
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise AppError(f"{env} is not valid JSON ({exc.msg}); expected an object like "
                       '{"My model": "path/to/model-folder"}' + hint) from exc
    if not isinstance(value, dict) or not value or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise AppError(f"{env} must be a non-empty JSON object of display name -> model "
                       "folder (strings)")
    return value


def model_choices() -> dict[str, str]:
    """Display name -> model source (shipped name or folder), from the environment."""
    raw = os.environ.get(MODELS_ENV, "").strip()
    return _json_models(MODELS_ENV, raw) if raw else dict(DEFAULT_MODELS)


def _missing_model(source: str, shipped: tuple[str, ...], how: str) -> str | None:
    """Why a model folder or shipped name does not resolve (a sentence), or None."""
    try:
        resolve_model(source, shipped)
    except FileNotFoundError:
        if source in shipped:
            return (f"The shipped model **{source}** is not installed: its weights are missing "
                    f"from `{WEIGHTS_DIR / source}`. They are produced by training {how}.")
        return (f"No model found at `{source}`: expected a folder with `model.safetensors` "
                "and `config.json` (or a training run folder with `best/`).")
    return None


def model_problem(source: str) -> str | None:
    """Why a model cannot be loaded (a sentence for the user), or None when it is there."""
    return _missing_model(source, SHIPPED, "(see the README, *Training*) and ship with "
                          "released versions; to use a model you trained, set "
                          f"`{MODELS_ENV}` (see the About page)")


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _load_model(source: str, stamp: tuple[int, int], device: str) -> LoadedModel:
    # Shared by every session and never modified: sampling runs under inference_mode.
    return load_model(source, device=device)


def get_model(source: str) -> LoadedModel:
    """The model for ``source``, loaded once per weights file (reloaded if it changes)."""
    from vesselflow.utils import pick_device

    problem = model_problem(source)
    if problem:
        raise AppError(problem)
    stat = (resolve_model(source) / "model.safetensors").stat()
    try:
        return _load_model(source, (stat.st_mtime_ns, stat.st_size), pick_device("auto"))
    except (ValueError, RuntimeError, OSError) as exc:
        raise AppError(f"The model at `{source}` could not be loaded: {_short(exc)}") from exc


def model_picker() -> tuple[str, LoadedModel]:
    """Sidebar model choice; stops the page with a clear message when none can be loaded."""
    choices = model_choices()
    problems = {label: model_problem(src) for label, src in choices.items()}
    available = [label for label, p in problems.items() if p is None]
    if not available:
        st.error("No vessel model is available, so images cannot be segmented yet.",
                 icon=":material/error:")
        for label, p in problems.items():
            st.markdown(f"- *{label}*: {p}")
        st.stop()
    label = st.sidebar.selectbox(
        "Model", available, key="model",
        help="CNF: the conditional normalizing flow (samples whole, coherent vessel maps). "
             "Factored: the per-pixel baseline (independent pixels).")
    missing = [lb for lb in choices if lb not in available]
    if missing:
        st.sidebar.caption("Not installed: " + ", ".join(missing))
    return label, get_model(choices[label])


def uncertainty_reference(loaded: LoadedModel) -> tuple[float, str]:
    """(reference value, where it comes from) for the expert-review flag."""
    value = loaded.meta.get("uncertainty_reference")
    if isinstance(value, int | float) and value > 0:
        return float(value), "stored with the model (from DRIVE's validation images)"
    default = DEFAULT_UNCERTAINTY_REFERENCE.get(loaded.config.kind,
                                                DEFAULT_UNCERTAINTY_REFERENCE["cnf"])
    return default, (f"provisional default for {loaded.config.kind} models (this model "
                     "stores none)")


# ----------------------------------------------------------------------------- sampling
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


Segmentation = inference.Segmentation


def segment_image(model: Any, image: np.ndarray, params: SamplingParams, keep: int = 0,
                  fov: np.ndarray | None = None, device: str = "cpu",
                  callback: Callable[[int, np.ndarray], None] | None = None) -> Segmentation:
    """:func:`vesselflow.inference.segment_image` with the app's settings and wording."""
    try:
        return inference.segment_image(
            model, image, n=params.n, temperature=params.temperature, seed=params.seed,
            batch_size=BATCH_SIZE, keep=keep, fov=fov, rescale=params.rescale, device=device,
            callback=callback)
    except inference.AnalysisError as exc:
        hint = (" (To analyse it as it is, turn off *Match DRIVE's scale* under Advanced in "
                "the sidebar.)" if "enlarge" in str(exc) else "")
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
    from vesselflow.biomarkers import segmentation_report

    return segmentation_report(_result, threshold, kind, pixel_size)


def biomarkers(loaded: LoadedModel, image_key: str, result: Segmentation,
               params: SamplingParams, threshold: float, pixel_size: float | None = None
               ) -> Any:
    """Cached :func:`vesselflow.biomarkers.segmentation_report` of a segmentation."""
    with st.spinner(f"Measuring the vessels of the mask and of {result.n} samples…"):
        return _biomarkers_cached(loaded.sha256, image_key, params, float(threshold),
                                  pixel_size, loaded.config.kind, result)


# ----------------------------------------------------------------------------- inputs
@dataclass
class InputImage:
    """A decoded input: ``key`` identifies its content (sha256), ``notes`` warn the user."""

    name: str
    key: str
    image: np.ndarray
    notes: tuple[str, ...] = ()
    label: np.ndarray | None = None
    fov: np.ndarray | None = None
    label2: np.ndarray | None = None


def _format_notes(data: bytes) -> list[str]:
    """Friendly notes about how an upload was converted (header only, nothing decoded)."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            mode = img.mode
            bits = 0
            if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 24:
                bits = data[24]  # IHDR bit depth (Pillow reduces 16-bit RGB to 8 bits)
            elif hasattr(img, "tag_v2"):  # TIFF BitsPerSample
                per_sample = img.tag_v2.get(258, (8,))
                bits = max(per_sample) if isinstance(per_sample, tuple) else int(per_sample)
    except Exception:  # not a Pillow format (DICOM, NIfTI): the decoder reports problems
        return []
    notes = []
    if mode in ("I;16", "I;16L", "I;16B", "I;16N") or bits == 16:
        notes.append("16-bit image: intensities were scaled from 0–65535 to 0–1 (no "
                     "contrast stretching), so a dark photograph stays dark.")
    if mode in ("RGBA", "LA", "La", "RGBa", "PA"):
        notes.append("The image has an alpha (transparency) channel: transparent areas were "
                     "made black, like the surround of a fundus photograph.")
    return notes


@st.cache_data(max_entries=32, show_spinner=False)
def decode_upload(data: bytes, name: str) -> InputImage:
    """Decode uploaded bytes (any format vesselflow reads); ImageReadError on bad files."""
    from vesselflow.data.io import read_image_bytes

    image = read_image_bytes(data, name, max_pixels=MAX_PIXELS)
    notes = _format_notes(data)
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1],
                                                                         image[..., 2]):
        notes.append("Grayscale image: the models were trained on colour fundus photographs "
                     "(vessel contrast is mostly in the green channel), so results on a "
                     "grayscale image are less reliable.")
    h, w = image.shape[:2]
    if min(h, w) < 128:
        notes.append(f"Very small image ({w}×{h} px): fine vessels cannot be resolved; "
                     "results are unreliable.")
    return InputImage(name, hashlib.sha256(data).hexdigest(), image, tuple(notes))


EXAMPLES = {
    "retina": "Fundus photograph (scikit-image example, public domain)",
    "synthetic": "Synthetic fundus with known vessels",
}


@st.cache_data(max_entries=4, show_spinner=False)
def example_image(which: str, seed: int = 3) -> InputImage:
    """A bundled example: scikit-image's retina photo or a synthetic fundus with its label."""
    if which == "retina":
        from skimage.data import retina

        image = np.asarray(retina(), dtype=np.float32) / 255.0  # 1411 x 1411, rescaled later
        return InputImage("skimage_retina.png", "example:retina", image,
                          ("scikit-image's retina example (1411×1411 px, public domain): "
                           "larger than DRIVE, so it is analysed at DRIVE's scale.",))
    if which == "synthetic":
        from vesselflow.data.synthetic import synthetic_fundus

        d = synthetic_fundus((584, 565), seed=seed)
        return InputImage(f"synthetic_{seed}.png", f"example:synthetic:{seed}", d["image"],
                          ("A cartoon fundus drawn by vesselflow with a known vessel map "
                           "(open the Evaluate page to score the model on it).",),
                          label=d["label"], fov=d["fov"])
    raise ValueError(f"unknown example {which!r}")


def drive_root() -> Path | None:
    """The configured DRIVE folder, or None when there is none."""
    env = os.environ.get(DRIVE_ENV)
    path = Path(env).expanduser() if env else REPO.parent / "shared" / "data" / "DRIVE"
    return path if path.is_dir() else None


# ----------------------------------------------------------------------------- downloads
def run_record(loaded: LoadedModel, item: InputImage, result: Segmentation,
               params: SamplingParams, threshold: float) -> dict[str, Any]:
    """Everything needed to reproduce or audit a result (``run.json`` in the zip)."""
    from vesselflow.utils import environment

    ref, ref_source = uncertainty_reference(loaded)
    mu = result.mean_uncertainty
    info = result.scale
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
                    "flagged_for_review": bool(mu > ref),
                    "vessel_fraction_in_fov": float(result.mask(threshold).sum()
                                                    / max(int(result.fov.sum()), 1)),
                    "seconds": result.seconds},
        "files": {
            "mask.png": "binary vessel mask at the threshold (255 = vessel), inside the FOV",
            "prob.png": "vessel probability, 8-bit (value / 255 = probability)",
            "prob.tif": "vessel probability, float32 in [0, 1]",
            "uncertainty.png": "per-pixel uncertainty, 8-bit (value / 510 = sample std)",
            "uncertainty.tif": "per-pixel uncertainty (sample standard deviation), float32",
            "uncertainty_color.png": "uncertainty for viewing: magma, black 0 to yellow 0.5",
            "overlay.png": "mask (green) over the image",
            "fov.png": "field of view used (255 = inside)",
            "samples/": "individual binary samples (255 = vessel)",
            "note": "all at the uploaded image's size; names as written by vesselflow segment",
        },
        "environment": environment(),
    }


def stem(name: str) -> str:
    base = Path(name).name
    for suffix in (".nii.gz", *(f".{t}" for t in IMAGE_TYPES)):
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or "image"
    return base or "image"


def mask_png(result: Segmentation, threshold: float) -> bytes:
    return png_bytes(result.original(result.mask(threshold), order=0))


def prob_png(result: Segmentation) -> bytes:
    return png_bytes(gray(result.original(result.mean)))


def prob_tiff(result: Segmentation) -> bytes:
    return tiff_bytes(result.original(result.mean), "vessel probability (mean of samples)")


def uncertainty_color_png(result: Segmentation) -> bytes:
    return png_bytes(colorize(result.original(result.std), "magma", 0.0, 0.5))


def result_files(loaded: LoadedModel, item: InputImage, result: Segmentation,
                 params: SamplingParams, threshold: float, prefix: str = "") -> dict[str, bytes]:
    """All outputs of one image, at the uploaded image's size, for the zip."""
    mask = result.original(result.mask(threshold), order=0)
    std = result.original(result.std)
    files = {
        "mask.png": png_bytes(mask),
        "prob.png": prob_png(result),
        "prob.tif": prob_tiff(result),
        "uncertainty.png": png_bytes(gray(std, vmax=0.5)),
        "uncertainty.tif": tiff_bytes(std, "vessel uncertainty (sample std)"),
        "uncertainty_color.png": uncertainty_color_png(result),
        "overlay.png": png_bytes(overlay(item.image, mask)),
        "fov.png": png_bytes(result.original(result.fov, order=0)),
    }
    for i, s in enumerate((result.samples if result.samples is not None else [])[:ZIP_SAMPLES]):
        files[f"samples/sample_{i + 1:02d}.png"] = png_bytes(result.original(s, order=0))
    record = run_record(loaded, item, result, params, threshold)
    files["run.json"] = (json.dumps(record, indent=2, default=str) + "\n").encode()
    return {prefix + k: v for k, v in files.items()}


def results_zip(loaded: LoadedModel, item: InputImage, result: Segmentation,
                params: SamplingParams, threshold: float) -> bytes:
    return zip_bytes(result_files(loaded, item, result, params, threshold))


def deferred(fn: Callable[..., bytes], *args: Any) -> Callable[[], bytes]:
    """A download payload built only when the user clicks (keeps reruns fast)."""
    return partial(fn, *args)


# ----------------------------------------------------------------------------- evaluation cases
@st.cache_data(max_entries=32, show_spinner=False)
def decode_mask(data: bytes, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode an uploaded tracing or FOV mask (bool, must have the image's size)."""
    from vesselflow.data.io import read_mask_bytes

    return read_mask_bytes(data, name, shape=shape, max_pixels=MAX_PIXELS)


@st.cache_data(max_entries=2, show_spinner=False)
def drive_test_ids(root: str) -> list[str]:
    """Ids of DRIVE's 20 test images (DatasetLayoutError when the copy is incomplete)."""
    from vesselflow.data.drive import drive_records

    return [r["id"] for r in drive_records(root, "test")]


@st.cache_data(max_entries=4, show_spinner="Reading the DRIVE image…")
def drive_case(root: str, case_id: str) -> InputImage:
    """A DRIVE test image with its official FOV mask and both observers' tracings."""
    from vesselflow.data.drive import drive_records
    from vesselflow.data.io import read_image_bytes, read_mask

    record = next(r for r in drive_records(root, "test") if r["id"] == case_id)
    data = Path(record["image"]).read_bytes()
    image = read_image_bytes(data, record["image"])
    shape = image.shape[:2]
    label2 = read_mask(record["label2"], shape=shape) if "label2" in record else None
    return InputImage(Path(record["image"]).name, hashlib.sha256(data).hexdigest(), image,
                      (), label=read_mask(record["label"], shape=shape),
                      fov=read_mask(record["fov"], shape=shape), label2=label2)


# ----------------------------------------------------------------------------- super-resolution
SR_MODELS_ENV = "VESSELFLOW_APP_SR_MODELS"
SR_DATA_ENV = "VESSELFLOW_SR_DATA"
DEFAULT_SR_MODELS = {
    "Conditional flow (sr-cnf)": "sr-cnf",
    "Factored baseline (sr-factored)": "sr-factored",
}
SR_SCALE = 2
SR_MIN_LR_SIDE = 8  # smaller inputs leave nothing to measure after the 2-pixel border crop
SR_SAMPLE_BUDGET = 4 * 256 * 256  # LR pixels per model call (samples in a batch x pixels)
SR_STD_VMAX = 16.0  # Y grey levels at the bright end of the uncertainty colour map
SET5 = ("baby", "bird", "butterfly", "head", "woman")


def sr_model_choices() -> dict[str, str]:
    """Display name -> SR model source, from ``VESSELFLOW_APP_SR_MODELS``.

    The variable holds a JSON object (display name -> shipped name or folder, as
    ``VESSELFLOW_APP_MODELS``) or a comma-separated list of names / folders (each shown under
    its own name). Unset: the shipped ``sr-cnf`` and ``sr-factored``.
    """
    raw = os.environ.get(SR_MODELS_ENV, "").strip()
    if not raw:
        return dict(DEFAULT_SR_MODELS)
    if raw.startswith("{"):
        return _json_models(SR_MODELS_ENV, raw, " or a comma-separated list of model folders")
    out: dict[str, str] = {}
    for source in (s.strip() for s in raw.split(",")):
        if not source:
            continue
        label = base = source if "/" not in source and "\\" not in source else (
            Path(source).name or source)
        k = 2
        while label in out:
            label, k = f"{base} ({k})", k + 1
        out[label] = source
    if not out:
        raise AppError(f"{SR_MODELS_ENV} names no model")
    return out


def sr_model_problem(source: str) -> str | None:
    """Why an SR model cannot be loaded (a sentence for the user), or None when it is there."""
    from vesselflow.sr.io import SR_SHIPPED

    return _missing_model(source, SR_SHIPPED, "(`vesselflow sr train`) and ship with released "
                          f"versions; to use a model you trained, set `{SR_MODELS_ENV}` to its "
                          "folder")


@st.cache_resource(max_entries=2, show_spinner="Loading the super-resolution model…")
def _load_sr_model(source: str, stamp: tuple[int, int], device: str) -> Any:
    from vesselflow.sr.io import load_sr_model

    return load_sr_model(source, device=device)


def get_sr_model(source: str) -> Any:
    """The :class:`~vesselflow.sr.io.LoadedSRModel` for ``source``, loaded once per file."""
    from vesselflow.sr.io import SR_SHIPPED
    from vesselflow.utils import pick_device

    problem = sr_model_problem(source)
    if problem:
        raise AppError(problem)
    stat = (resolve_model(source, SR_SHIPPED) / "model.safetensors").stat()
    try:
        return _load_sr_model(source, (stat.st_mtime_ns, stat.st_size), pick_device("auto"))
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        raise AppError(f"The super-resolution model at `{source}` could not be loaded: "
                       f"{_short(exc)}") from exc


def sr_data_root() -> Path | None:
    """The SR data folder (``VESSELFLOW_SR_DATA``, default ``../shared/data/SR``), or None."""
    env = os.environ.get(SR_DATA_ENV)
    path = Path(env).expanduser() if env else REPO.parent / "shared" / "data" / "SR"
    return path if path.is_dir() else None


def set5_files() -> dict[str, Path]:
    """Set5's images by name (from ``<root>/Set5/`` or loose in the root), possibly empty."""
    root = sr_data_root()
    if root is None:
        return {}
    folder = root / "Set5" if (root / "Set5").is_dir() else root
    out = {}
    for name in SET5:
        for suffix in (".png", ".bmp"):
            if (folder / f"{name}{suffix}").is_file():
                out[name] = folder / f"{name}{suffix}"
                break
    return out


def sr_examples() -> dict[str, str]:
    """Example key -> label: Set5's images when the SR data is there, and a synthetic fundus."""
    out = {f"set5:{name}": f"Set5: {name}" for name in set5_files()}
    out["synthetic"] = "Synthetic fundus (256×256, drawn by vesselflow)"
    return out


@st.cache_data(max_entries=8, show_spinner=False)
def sr_example_image(key: str) -> InputImage:
    """A bundled SR example (see :func:`sr_examples`) as an InputImage."""
    from vesselflow.data.io import read_image_bytes

    if key == "synthetic":
        from vesselflow.data.synthetic import synthetic_fundus

        image = synthetic_fundus((256, 256), seed=3)["image"]
        image = np.round(image * 255) / 255  # exactly 8-bit, like every photograph
        return InputImage("synthetic_fundus.png", "example:sr:synthetic", image.astype(
            np.float32), ("A cartoon fundus drawn by vesselflow: smooth, so bicubic already "
                          "does well on it.",))
    name = key.removeprefix("set5:")
    path = set5_files().get(name)
    if path is None:
        raise AppError(f"The example image {name!r} is not available any more.")
    data = path.read_bytes()
    image = read_image_bytes(data, path.name)
    h, w = image.shape[:2]
    return InputImage(path.name, hashlib.sha256(data).hexdigest(), image,
                      (f"Set5 *{name}* ({w}×{h} px), a standard super-resolution benchmark "
                       "image.",))


@st.cache_data(max_entries=16, show_spinner=False)
def decode_sr_upload(data: bytes, name: str) -> InputImage:
    """Decode an upload for super-resolution (any RGB image; ImageReadError on bad files)."""
    from vesselflow.data.io import read_image_bytes

    image = read_image_bytes(data, name, max_pixels=MAX_PIXELS)
    notes = _format_notes(data)
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1],
                                                                         image[..., 2]):
        notes.append("Grayscale image: it is enlarged as an RGB image with three equal "
                     "channels; the models were trained on colour photographs.")
    return InputImage(name, hashlib.sha256(data).hexdigest(), image, tuple(notes))


@dataclass(frozen=True)
class SRParams:
    """The page's settings: sampling temperature, sample count, seed, central crop (0: none)."""

    temperature: float = 0.8
    n: int = 4
    seed: int = 0
    crop: int = 0


@dataclass
class SRCase:
    """What the model is given: the LR image, its bicubic enlargement and, when simulating,
    the original it was made from (the ground truth).

    ``crop`` is (top, left, height, width) of the region used, in the input image's pixels.
    """

    key: str
    mode: str
    lr: np.ndarray
    bicubic: np.ndarray
    hr: np.ndarray | None
    crop: tuple[int, int, int, int]
    input_shape: tuple[int, int]


def sr_case(item: InputImage, mode: str, crop: int = 0) -> SRCase:
    """The LR input for ``mode`` "upscale" (the image itself) or "simulate" (the image
    bicubically shrunk by 2, the original kept as ground truth), after an optional central
    crop of side ``crop``; AppError if it is too large or too small."""
    from vesselflow.sr.upscale import MAX_LR_PIXELS

    if mode not in ("upscale", "simulate"):
        raise ValueError(f"unknown mode {mode!r}")
    h, w = item.image.shape[:2]
    ch, cw = (min(crop, h), min(crop, w)) if crop else (h, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    lr_h, lr_w = (ch, cw) if mode == "upscale" else (ch // SR_SCALE, cw // SR_SCALE)
    if lr_h * lr_w > MAX_LR_PIXELS:
        side = int(MAX_LR_PIXELS**0.5)
        what = "The image" if mode == "upscale" else "The half-size image"
        raise AppError(f"{what} is too large to enlarge here: {lr_w}×{lr_h} px is "
                       f"{lr_w * lr_h / 1e6:.1f} megapixels, above the limit of "
                       f"{MAX_LR_PIXELS / 1e6:.1f} (about {side}×{side} px). Choose a central "
                       "crop under *Advanced* in the sidebar, or crop or shrink the image "
                       "before uploading it.")
    if min(lr_h, lr_w) < SR_MIN_LR_SIDE:
        raise AppError(f"The image is too small to enlarge: the model input would be "
                       f"{lr_w}×{lr_h} px; at least {SR_MIN_LR_SIDE} px on each side is needed"
                       + (" (simulating halves the image first)." if mode == "simulate"
                          else "."))
    key = f"{item.key}:{mode}:{crop}"
    return _sr_case_cached(key, mode, (top, left, ch, cw), item.image)


@st.cache_data(max_entries=8, show_spinner="Preparing the image…")
def _sr_case_cached(key: str, mode: str, box: tuple[int, int, int, int],
                    _image: np.ndarray) -> SRCase:
    from vesselflow.sr.resize import bicubic_degrade, bicubic_upscale
    from vesselflow.visualize import to_uint8

    top, left, ch, cw = box
    image = to_uint8(_image[top : top + ch, left : left + cw])
    hr = None
    if mode == "simulate":
        hr, lr = bicubic_degrade(image, SR_SCALE)
        box = (top, left, hr.shape[0], hr.shape[1])  # cropped to a multiple of the scale
    else:
        lr = np.ascontiguousarray(image)
    return SRCase(key, mode, lr, bicubic_upscale(lr, SR_SCALE), hr, box,
                  (int(_image.shape[0]), int(_image.shape[1])))


def sr_batch_size(lr_shape: tuple[int, ...], n: int) -> int:
    """Samples drawn per model call: as many as fit :data:`SR_SAMPLE_BUDGET` LR pixels."""
    return max(1, min(n, SR_SAMPLE_BUDGET // max(1, lr_shape[0] * lr_shape[1])))


def sr_point_estimate(model: Any, lr: np.ndarray, device: str = "cpu",
                      callback: Callable[[float], None] | None = None) -> np.ndarray:
    """The model's temperature-0 output, ``model.predict(lr, 0.0)``, as (2h, 2w, 3) uint8
    (the CNF's latent mode; the factored model's mixture mean). ``callback(1.0)`` at the end.
    """
    import torch

    from vesselflow.sr.data import to_image, to_tensor

    with torch.no_grad():
        out = model.predict(to_tensor(lr)[None].to(device), 0.0)
    if callback is not None:
        callback(1.0)
    return to_image(out[0])


def sr_samples(model: Any, lr: np.ndarray, n: int, temperature: float, seed: int,
               device: str = "cpu", callback: Callable[[int], None] | None = None
               ) -> np.ndarray:
    """n samples at ``temperature``: (n, 2h, 2w, 3) uint8, drawn in batches of
    :func:`sr_batch_size` from one generator seeded with ``seed`` (same image, settings and
    seed give the same samples). ``callback(done)`` after each batch."""
    import torch

    from vesselflow.sr.data import to_image, to_tensor

    lr_t = to_tensor(lr)[None].to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    batch = sr_batch_size(lr.shape, n)
    out: list[np.ndarray] = []
    with torch.no_grad():
        while len(out) < n:
            draws = model.sample(lr_t, min(batch, n - len(out)), temperature, gen)[0]
            out.extend(to_image(d) for d in draws)
            if callback is not None:
                callback(len(out))
    return np.stack(out)


@dataclass
class SRResult:
    """One run: the point estimate, the samples, their mean and their spread.

    ``y_std`` is the per-pixel standard deviation of the samples' luma Y (BT.601, grey levels
    0..255), None with a single sample.
    """

    point: np.ndarray
    samples: np.ndarray
    mean: np.ndarray
    y_std: np.ndarray | None
    batch_size: int
    seconds: dict[str, float]

    @property
    def mean_uint8(self) -> np.ndarray:
        return np.clip(np.round(self.mean), 0, 255).astype(np.uint8)

    @property
    def mean_y_std(self) -> float | None:
        return None if self.y_std is None else float(self.y_std.mean())


class _Progress:
    """A progress bar updated from inside a cached function (see :class:`LiveProgress`)."""

    def __init__(self, slot: Any, text: str) -> None:
        self._context = contextvars.copy_context()
        self._bar = slot.progress(0.0, text=text)

    def __call__(self, fraction: float, text: str) -> None:
        self._context.run(self._bar.progress, min(max(fraction, 0.0), 1.0), text)


@st.cache_data(max_entries=8, show_spinner=False)
def _sr_point_cached(model_key: str, case_key: str, _model: Any, _lr: np.ndarray,
                     _device: str, _progress: Callable | None) -> tuple[np.ndarray, float]:
    t0 = time.perf_counter()
    report = None if _progress is None else (
        lambda f: _progress(f, f"Point estimate (temperature 0): {100 * f:.0f} %"))
    point = sr_point_estimate(_model, _lr, _device, report)
    return point, time.perf_counter() - t0


@st.cache_data(max_entries=6, show_spinner=False)
def _sr_samples_cached(model_key: str, case_key: str, temperature: float, n: int, seed: int,
                       _model: Any, _lr: np.ndarray, _device: str, _progress: Callable | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    from vesselflow.sr.metrics import rgb_to_y

    t0 = time.perf_counter()
    report = None if _progress is None else (
        lambda done: _progress(done / n, f"Sampling: {done} of {n} drawn"))
    samples = sr_samples(_model, _lr, n, temperature, seed, _device, report)
    mean = samples.astype(np.float32).mean(0)
    y_std = (np.std(np.stack([rgb_to_y(s) for s in samples]), axis=0).astype(np.float32)
             if n > 1 else None)
    return samples, mean, y_std, time.perf_counter() - t0


def sr_run(loaded: Any, case: SRCase, params: SRParams, bar_slot: Any = None) -> SRResult:
    """Point estimate and samples for ``case``, cached (changing the temperature, count or
    seed redraws only the samples), with a progress bar in ``bar_slot``."""
    device = str(next(loaded.model.parameters()).device)
    model_key = f"{loaded.sha256}:{device}"
    bar_slot = bar_slot if bar_slot is not None else st.empty()
    try:
        progress = _Progress(bar_slot, "Point estimate (temperature 0)…")
        point, t_point = _sr_point_cached(model_key, case.key, loaded.model, case.lr, device,
                                          progress)
        if params.temperature == 0:  # every sample would be the point estimate
            samples = np.repeat(point[None], params.n, axis=0)
            mean = point.astype(np.float32)
            y_std = np.zeros(point.shape[:2], np.float32) if params.n > 1 else None
            t_samples = 0.0
        else:
            progress = _Progress(bar_slot, f"Sampling: 0 of {params.n} drawn…")
            samples, mean, y_std, t_samples = _sr_samples_cached(
                model_key, case.key, params.temperature, params.n, params.seed, loaded.model,
                case.lr, device, progress)
    finally:
        bar_slot.empty()
    return SRResult(point, samples, mean, y_std, sr_batch_size(case.lr.shape, params.n),
                    {"point_estimate": round(t_point, 3), "samples": round(t_samples, 3)})


def sr_metrics(case: SRCase, result: SRResult) -> list[dict[str, Any]]:
    """Y-channel PSNR/SSIM against the ground truth (simulate mode), one row per output."""
    from vesselflow.sr.metrics import psnr_y, ssim_y

    if case.hr is None:
        return []
    b = SR_SCALE
    scores = [(psnr_y(s, case.hr, b), ssim_y(s, case.hr, b)) for s in result.samples]
    n = len(result.samples)
    rows = [("Bicubic (MATLAB imresize)", case.bicubic), ("Model, temperature 0",
                                                          result.point),
            (f"Mean of the {n} samples", result.mean)]
    out = [{"output": name, "PSNR-Y (dB)": psnr_y(img, case.hr, b),
            "SSIM-Y": ssim_y(img, case.hr, b)} for name, img in rows]
    out.append({"output": f"Single samples (average of {n})",
                "PSNR-Y (dB)": float(np.mean([s[0] for s in scores])),
                "SSIM-Y": float(np.mean([s[1] for s in scores]))})
    return out


@st.cache_data(max_entries=8, show_spinner="Measuring against the original…")
def _sr_metrics_cached(key: str, _case: SRCase, _result: SRResult) -> list[dict[str, Any]]:
    return sr_metrics(_case, _result)


def sr_metrics_cached(loaded: Any, case: SRCase, params: SRParams, result: SRResult
                      ) -> list[dict[str, Any]]:
    """:func:`sr_metrics`, computed once per model, case and settings."""
    if case.hr is None:
        return []
    return _sr_metrics_cached(f"{loaded.sha256}:{case.key}:{params}", case, result)


def sr_run_record(loaded: Any, item: InputImage, case: SRCase, params: SRParams,
                  result: SRResult, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything needed to reproduce or audit a super-resolution result (``run.json``)."""
    from vesselflow.utils import environment

    lh, lw = case.lr.shape[:2]
    oh, ow = result.point.shape[:2]
    top, left, ch, cw = case.crop
    return {
        "tool": f"vesselflow {__version__} web app, super-resolution",
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "notice": "Research use only. Samples are plausible detail, not measured detail.",
        "image": {"name": item.name, "sha256": item.key, "height": case.input_shape[0],
                  "width": case.input_shape[1]},
        "mode": case.mode,
        "mode_description": (
            "the image (or its crop) was enlarged 2x" if case.mode == "upscale" else
            "the image (or its crop) was shrunk 2x with MATLAB-compatible bicubic imresize, "
            "enlarged 2x by the model and compared with the original"),
        "region": {"top": top, "left": left, "height": ch, "width": cw,
                   "central_crop": params.crop or None},
        "sizes": {"model_input": [lw, lh], "output": [ow, oh]},
        "model": {"name": loaded.name, "kind": loaded.config.kind, "sha256": loaded.sha256,
                  "scale": loaded.config.scale},
        "parameters": {"temperature": params.temperature, "samples": params.n,
                       "seed": params.seed, "batch_size": result.batch_size,
                       "point_estimate": "temperature 0 (model.predict): the flow's zero "
                                         "latent, or the factored model's mixture mean"},
        "metrics": {"protocol": "Y channel (BT.601), 2-pixel border cropped, vs the original",
                    "rows": metrics} if metrics else None,
        "summary": {"mean_y_std_of_samples": result.mean_y_std, "seconds": result.seconds},
        "files": {
            "x2.png": "model output at temperature 0 (point estimate)",
            "bicubic_x2.png": "bicubic enlargement (MATLAB imresize), for comparison",
            "mean_x2.png": "mean of the samples",
            "uncertainty_y_std.png": "per-pixel std of the samples' luma Y, x8 (value / 8 = "
                                     "std in grey levels)",
            "uncertainty_color.png": f"the same for viewing: magma, black 0 to yellow "
                                     f"{SR_STD_VMAX:g} grey levels",
            "samples/": "the individual samples at the chosen temperature",
            "model_input.png": "the image the model enlarged",
            "original.png": "simulate mode: the original (ground truth)",
        },
        "environment": environment(),
    }


def sr_files(loaded: Any, item: InputImage, case: SRCase, params: SRParams,
             result: SRResult, metrics: list[dict[str, Any]]) -> dict[str, bytes]:
    """Every output of one run, for the zip."""
    from vesselflow.visualize import colorize, png_bytes

    files = {"x2.png": png_bytes(result.point), "bicubic_x2.png": png_bytes(case.bicubic),
             "mean_x2.png": png_bytes(result.mean_uint8)}
    if result.y_std is not None:
        files["uncertainty_y_std.png"] = png_bytes(
            np.clip(np.round(result.y_std * 8), 0, 255).astype(np.uint8))
        files["uncertainty_color.png"] = png_bytes(colorize(result.y_std, "magma", 0.0,
                                                            SR_STD_VMAX))
    for i, s in enumerate(result.samples, start=1):
        files[f"samples/sample_{i:02d}.png"] = png_bytes(s)
    files["model_input.png"] = png_bytes(case.lr)
    if case.hr is not None:
        files["original.png"] = png_bytes(case.hr)
    files["run.json"] = sr_run_json(loaded, item, case, params, result, metrics)
    return files


def sr_run_json(loaded: Any, item: InputImage, case: SRCase, params: SRParams,
                result: SRResult, metrics: list[dict[str, Any]]) -> bytes:
    record = sr_run_record(loaded, item, case, params, result, metrics)
    return (json.dumps(record, indent=2, default=str) + "\n").encode()


def sr_zip(loaded: Any, item: InputImage, case: SRCase, params: SRParams, result: SRResult,
           metrics: list[dict[str, Any]]) -> bytes:
    return zip_bytes(sr_files(loaded, item, case, params, result, metrics))
