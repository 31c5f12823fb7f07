"""The app's settings: environment variables, limits and the bundled examples' locations.

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
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from vesselflow.app.guard import AppError
from vesselflow.io.images import IMAGE_SUFFIXES

REPO = Path(__file__).resolve().parents[2]  # the repository (../shared/data beside it)
MODELS_ENV = "VESSELFLOW_APP_MODELS"
DRIVE_ENV = "VESSELFLOW_DRIVE"
DEFAULT_MODELS = {
    "Conditional flow (cnf-drive)": "cnf-drive",
    "Factored baseline (factored-drive)": "factored-drive",
    "Factored baseline, unweighted Bernoulli (factored-bce)": "factored-bce",
}


MAX_PIXELS = 40_000_000  # ~6300 x 6300: far above any fundus camera, far below memory trouble
IMAGE_TYPES = sorted({s.rsplit(".", 1)[-1] for s in IMAGE_SUFFIXES})
"""Upload types: the reader's suffixes (``.nii.gz`` uploads as ``gz``)."""
SAMPLE_CHOICES = (1, 2, 4, 8, 16, 32, 64, 128)
BATCH_SIZE = 8
"""Samples drawn at once (the mean map on screen is refreshed after each batch): ``vesselflow
segment``'s default ``--batch-size``, because a CNF's samples depend on how they are batched,
and the same photo, model and seed must give the command line's maps."""
ZIP_SAMPLES = 4  # individual samples written into the results zip (all are kept in memory)
DISPLAY_SIDE = 900  # pictures on screen are at most this many pixels on their long side

RESEARCH_NOTICE = (
    "**Research use only — not for diagnosis.** vesselflow is not a medical device; its maps "
    "must not be used for clinical decisions without review by a qualified clinician."
)


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


def drive_root() -> Path | None:
    """The configured DRIVE folder, or None when there is none."""
    env = os.environ.get(DRIVE_ENV)
    path = Path(env).expanduser() if env else REPO.parent / "shared" / "data" / "DRIVE"
    return path if path.is_dir() else None


SR_MODELS_ENV = "VESSELFLOW_APP_SR_MODELS"
SR_DATA_ENV = "VESSELFLOW_SR_DATA"
DEFAULT_SR_MODELS = {
    "Conditional flow (sr-cnf)": "sr-cnf",
    "Factored baseline (sr-factored)": "sr-factored",
}


SR_SCALE = 2
SR_MIN_LR_SIDE = 8  # smaller inputs leave nothing to measure after the 2-pixel border crop
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
