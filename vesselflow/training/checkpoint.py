"""Atomic, resumable checkpoints of a training run.

Layout of a run folder::

    RUN/config.json        model config + training options
    RUN/last/              model.safetensors, optimizer.pt, state.json  (for --resume)
    RUN/best/              model.safetensors, config.json (best validation score)
    RUN/metrics.jsonl      one JSON line per log / validation event

``last/`` is replaced as a whole: the new checkpoint is written to ``last.tmp/`` and swapped
in with renames, so a run killed at any moment leaves a complete ``last/`` (or ``last.old/``,
which :func:`load_last` falls back to).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from vesselflow.io.files import write_json


def save_last(run: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
              state: dict[str, Any]) -> None:
    tmp, last, old = run / "last.tmp", run / "last", run / "last.old"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()},
              str(tmp / "model.safetensors"))
    torch.save(optimizer.state_dict(), tmp / "optimizer.pt")
    write_json(tmp / "state.json", state)
    shutil.rmtree(old, ignore_errors=True)
    if last.exists():
        last.rename(old)
    tmp.rename(last)
    shutil.rmtree(old, ignore_errors=True)


def load_last(run: Path) -> tuple[dict[str, torch.Tensor], dict, dict[str, Any]] | None:
    """(model state, optimizer state, run state) of the newest complete checkpoint, or None."""
    for folder in (run / "last", run / "last.old"):
        if (folder / "state.json").exists():
            return (load_file(str(folder / "model.safetensors")),
                    torch.load(folder / "optimizer.pt", weights_only=True),
                    json.loads((folder / "state.json").read_text()))
    return None


def append_metrics(run: Path, record: dict[str, Any]) -> None:
    """Append one JSON line (appends of one short line are effectively atomic)."""
    with open(run / "metrics.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
