"""The models the pages offer: which are installed, and loading them once."""

from __future__ import annotations

import streamlit as st

from vesselflow.app.config import MODELS_ENV, SR_MODELS_ENV, model_choices
from vesselflow.app.guard import AppError, _short
from vesselflow.io.weights import (
    WEIGHTS_DIR,
    LoadedModel,
    ModelFamily,
    load_weights,
    resolve_model,
)
from vesselflow.sr.weights import SR_FAMILY, SR_SHIPPED
from vesselflow.vessel.models import FAMILY, SHIPPED


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
    return _missing_model(source, SHIPPED, "(see docs/TRAINING.md) and ship with "
                          "released versions; to use a model you trained, set "
                          f"`{MODELS_ENV}` (see the About page)")


@st.cache_resource(max_entries=4, show_spinner="Loading the model…")
def _load(source: str, family_key: str, stamp: tuple[int, int], device: str,
          _family: ModelFamily) -> LoadedModel:
    # Shared by every session and never modified: sampling runs under inference_mode.
    return load_weights(source, _family, device)


def _get(source: str, family: ModelFamily, problem: str | None, what: str) -> LoadedModel:
    """``source`` of ``family``, loaded once per weights file (reloaded if it changes)."""
    from vesselflow.runtime import pick_device

    if problem:
        raise AppError(problem)
    stat = (resolve_model(source, family.shipped) / "model.safetensors").stat()
    try:
        return _load(source, family.what, (stat.st_mtime_ns, stat.st_size),
                     pick_device("auto"), family)
    except (ValueError, RuntimeError, OSError, KeyError) as exc:
        raise AppError(f"The {what} at `{source}` could not be loaded: {_short(exc)}") from exc


def get_model(source: str) -> LoadedModel:
    """The vessel model for ``source`` (shipped name or folder), loaded once per file."""
    return _get(source, FAMILY, model_problem(source), "model")


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


def sr_model_problem(source: str) -> str | None:
    """Why an SR model cannot be loaded (a sentence for the user), or None when it is there."""
    return _missing_model(source, SR_SHIPPED, "(`vesselflow sr train`) and ship with released "
                          f"versions; to use a model you trained, set `{SR_MODELS_ENV}` to its "
                          "folder")


def get_sr_model(source: str) -> LoadedModel:
    """The SR model for ``source`` (shipped name or folder), loaded once per file."""
    return _get(source, SR_FAMILY, sr_model_problem(source), "super-resolution model")
