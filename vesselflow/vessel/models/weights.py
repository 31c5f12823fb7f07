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


def threshold_for(loaded: LoadedModel, n_samples: int) -> float:
    """The model's a-priori threshold for a mean of ``n_samples`` samples.

    Models shipped with a per-count table (``meta["thresholds"]``, chosen on DRIVE's
    validation split at each count by
    :func:`vesselflow.vessel.train.validation.choose_thresholds`) use the entry of the largest
    count <= ``n_samples`` (the smallest count below it); others their one threshold.
    """
    table = loaded.meta.get("thresholds") or {}
    if not table:
        return loaded.threshold
    counts = sorted(int(k) for k in table)
    below = [c for c in counts if c <= n_samples]
    n = below[-1] if below else counts[0]
    return float(table[str(n)]["threshold"])
