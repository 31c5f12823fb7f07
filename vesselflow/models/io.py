"""Saving and loading vessel models: ``model.safetensors`` + ``config.json`` in a folder.

``config.json`` holds ``{"model": VesselConfig, "meta": {...}}``; meta carries the a-priori
threshold, metrics, training command and the weights' sha256. Shipped models live in
``vesselflow/weights/<name>/`` and are addressed by name (``cnf-drive``, ``factored-drive``,
``factored-bce``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from ..utils import atomic_path, sha256_file, write_json
from .vessel import VesselConfig, VesselModel, build_model

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"
SHIPPED = ("cnf-drive", "factored-drive", "factored-bce")


@dataclass
class LoadedModel:
    """A model in eval mode with its name, config, metadata and weights hash."""

    model: VesselModel
    config: VesselConfig
    name: str
    path: Path
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def threshold(self) -> float:
        return float(self.meta.get("threshold", 0.5))


def save_model(model: torch.nn.Module, folder: str | Path, meta: dict[str, Any] | None = None
               ) -> str:
    """Write weights and config atomically; returns the weights' sha256."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(folder / "model.safetensors") as tmp:
        save_file(state, str(tmp))
    digest = sha256_file(folder / "model.safetensors")
    meta = dict(meta or {})
    meta["sha256"] = digest
    write_json(folder / "config.json", {"model": model.config.to_dict(), "meta": meta})
    return digest


def resolve_model(name_or_path: str | Path, shipped: tuple[str, ...] = SHIPPED) -> Path:
    """A shipped name, a model folder, or a ``model.safetensors`` file -> the model folder."""
    text = str(name_or_path)
    if text in shipped:
        folder = WEIGHTS_DIR / text
        if not (folder / "model.safetensors").exists():
            raise FileNotFoundError(f"shipped model {text!r} is missing from {folder}: the "
                                    f"package was installed without its weights")
        return folder
    path = Path(text)
    if path.is_file() and path.suffix == ".safetensors":
        path = path.parent
    if path.is_dir() and (path / "best" / "model.safetensors").exists():
        path = path / "best"  # a training run folder: use its best checkpoint
    if not (path / "model.safetensors").exists() or not (path / "config.json").exists():
        raise FileNotFoundError(f"{text}: not a shipped model ({', '.join(shipped)}) nor a "
                                f"folder with model.safetensors and config.json")
    return path


def read_checked(folder: Path) -> tuple[dict[str, Any], str, dict[str, torch.Tensor]]:
    """config.json, the weights' sha256 (checked against the recorded one) and the weights."""
    cfg = json.loads((folder / "config.json").read_text())
    digest = sha256_file(folder / "model.safetensors")
    recorded = cfg.get("meta", {}).get("sha256")
    if recorded and recorded != digest:
        raise ValueError(f"{folder / 'model.safetensors'}: sha256 {digest[:12]}... does not "
                         f"match config.json ({recorded[:12]}...): the file is corrupt")
    return cfg, digest, load_file(str(folder / "model.safetensors"))


def load_model(name_or_path: str | Path, device: str = "cpu") -> LoadedModel:
    """Load a shipped or trained model in eval mode; the sha256 is checked if recorded."""
    folder = resolve_model(name_or_path)
    cfg, digest, state = read_checked(folder)
    config = VesselConfig.from_dict(cfg["model"])
    model = build_model(config)
    model.load_state_dict(state)
    model.eval().to(device)
    if device == "cpu":
        model = model.to(memory_format=torch.channels_last)
    name = str(name_or_path) if str(name_or_path) in SHIPPED else folder.name
    return LoadedModel(model, config, name, folder, digest, cfg.get("meta", {}))
