"""Loading SR models: the same folder format as the vessel models (``model.safetensors`` +
``config.json``), shipped as ``sr-cnf`` and ``sr-factored`` in ``vesselflow/weights/``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ..models.io import read_checked, resolve_model
from .models import SRConfig, SRModel, build_sr_model

SR_SHIPPED = ("sr-cnf", "sr-factored")


@dataclass
class LoadedSRModel:
    """An SR model in eval mode with its name, config, metadata and weights hash."""

    model: SRModel
    config: SRConfig
    name: str
    path: Path
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)


def load_sr_model(name_or_path: str | Path, device: str = "cpu") -> LoadedSRModel:
    """Load a shipped name, model folder or training run folder (its ``best/``)."""
    folder = resolve_model(name_or_path, SR_SHIPPED)
    cfg, digest, state = read_checked(folder)
    try:
        config = SRConfig.from_dict(cfg["model"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{folder}: not an SR model ({err})") from err
    model = build_sr_model(config)
    model.load_state_dict(state)
    model.eval().to(device)
    if device == "cpu":
        model = model.to(memory_format=torch.channels_last)
    name = (str(name_or_path) if str(name_or_path) in SR_SHIPPED
            else folder.parent.name if folder.name == "best" else folder.name)
    return LoadedSRModel(model, config, name, folder, digest, cfg.get("meta", {}))
