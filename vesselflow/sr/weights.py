"""The SR model family: the same folder format as the vessel models (``model.safetensors`` +
``config.json``), shipped as ``sr-cnf`` and ``sr-factored`` in ``vesselflow/weights/``."""

from __future__ import annotations

from pathlib import Path

from vesselflow.io.weights import LoadedModel, ModelFamily, load_weights
from vesselflow.sr.models import SRConfig, build_sr_model

SR_SHIPPED = ("sr-cnf", "sr-factored")
SR_FAMILY = ModelFamily("an SR model", SR_SHIPPED, SRConfig.from_dict, build_sr_model)
LoadedSRModel = LoadedModel  # the one loaded-model record, under the name SR code uses


def load_sr_model(name_or_path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a shipped name, model folder or training run folder (its ``best/``)."""
    return load_weights(name_or_path, SR_FAMILY, device)
