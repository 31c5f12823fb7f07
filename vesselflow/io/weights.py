"""Saving and loading models of every family: ``model.safetensors`` + ``config.json``.

``config.json`` holds ``{"model": <the family's config>, "meta": {...}}``; meta carries the
a-priori threshold, metrics, training command and the weights' sha256. Shipped models live in
``vesselflow/weights/<name>/`` and are addressed by name (``cnf-drive``, ``sr-cnf``, ...).

A model family (vessel, super-resolution) is a :class:`ModelFamily`: its shipped names, how
to read its config and how to build the model. :func:`load_weights` is the one loader.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vesselflow.io.files import atomic_path, sha256_file, write_json

WEIGHTS_DIR = Path(__file__).resolve().parents[1] / "weights"


@dataclass(frozen=True)
class ModelFamily:
    """What the loader needs to know about a family of models."""

    what: str  # for messages: "a vessel model", "an SR model"
    shipped: tuple[str, ...]
    config_from_dict: Callable[[dict[str, Any]], Any]
    build: Callable[[Any], torch.nn.Module]


@dataclass
class LoadedModel:
    """A model in eval mode with its name, config, metadata and weights hash."""

    model: Any
    config: Any
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


def resolve_model(name_or_path: str | Path, shipped: tuple[str, ...]) -> Path:
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


def run_name(name_or_path: str | Path, folder: Path, shipped: tuple[str, ...]) -> str:
    """The name a model is shown and recorded under: the shipped name, or the folder's name
    (a training run's, for its ``best/``)."""
    if str(name_or_path) in shipped:
        return str(name_or_path)
    return folder.parent.name if folder.name == "best" else folder.name


def load_weights(name_or_path: str | Path, family: ModelFamily, device: str = "cpu"
                 ) -> LoadedModel:
    """Load a shipped name, model folder or training run folder (its ``best/``) of
    ``family`` in eval mode; the sha256 is checked if recorded."""
    folder = resolve_model(name_or_path, family.shipped)
    cfg, digest, state = read_checked(folder)
    try:
        config = family.config_from_dict(cfg["model"])
    except (KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{folder}: not {family.what} ({err})") from err
    model = family.build(config)
    model.load_state_dict(state)
    model.eval().to(device)
    if device == "cpu":
        model = model.to(memory_format=torch.channels_last)
    return LoadedModel(model, config, run_name(name_or_path, folder, family.shipped), folder,
                       digest, cfg.get("meta", {}))
