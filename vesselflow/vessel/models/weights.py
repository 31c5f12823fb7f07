"""The vessel model family: shipped ``cnf-drive`` and ``factored-drive``, and its loader."""

from __future__ import annotations

from pathlib import Path

from vesselflow.io.weights import LoadedModel, ModelFamily, load_weights
from vesselflow.vessel.models.vessel import VesselConfig, build_model

SHIPPED = ("cnf-drive", "factored-drive", "factored-bce")
FAMILY = ModelFamily("a vessel model", SHIPPED, VesselConfig.from_dict, build_model)


def load_model(name_or_path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a shipped or trained vessel model in eval mode (see :func:`load_weights`)."""
    return load_weights(name_or_path, FAMILY, device)
