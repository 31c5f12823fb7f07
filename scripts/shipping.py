"""What ``ship_model.py`` and ``ship_sr_model.py`` share: reading a run's provenance, and
writing ``vesselflow/weights/<name>/`` as a whole (built beside it, then swapped in)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch

from vesselflow.io.weights import WEIGHTS_DIR, save_model


def read_run(run: Path, evaluation: Path | None, sha256: str
             ) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None]:
    """The run's config.json and summary.json, and the evaluation's metrics.json (if given),
    refusing an evaluation of other weights than ``run/best``."""
    run_cfg = json.loads((run / "config.json").read_text())
    summary = json.loads((run / "summary.json").read_text())
    return run_cfg, summary, read_evaluation(evaluation, sha256)


def read_evaluation(evaluation: Path | None, sha256: str) -> dict[str, Any] | None:
    """The evaluation's metrics.json (if given), refusing an evaluation of other weights."""
    test = json.loads((evaluation / "metrics.json").read_text()) if evaluation else None
    if test and test["model"]["sha256"] != sha256:
        raise SystemExit(f"{evaluation} evaluated other weights (sha256 "
                         f"{test['model']['sha256'][:12]}...) than {sha256[:12]}...")
    return test


def training_meta(run_cfg: dict[str, Any], summary: dict[str, Any], data: str
                  ) -> dict[str, Any]:
    """How the weights were made: command, options, steps, wall time, hardware, data."""
    return {"command": run_cfg.get("command"), "history": run_cfg.get("history"),
            "options": run_cfg.get("train"),
            "steps": summary.get("steps"), "wall_minutes": summary.get("wall_minutes"),
            "device": run_cfg.get("device"), "environment": run_cfg.get("environment"),
            "data": data}


def commands(training: dict[str, Any]) -> str:
    """The training command(s) in Markdown: a resumed run lists each invocation in order."""
    history = training.get("history") or []
    if len(history) < 2:
        return f"`{training.get('command')}`"
    return ", then ".join(f"`{h['command']}`" + (f" (from step {h['from_step']})"
                                                 if h["from_step"] else "")
                          for h in history)


def _keep_quality_reference(old: Path, new: Path, digest: str) -> None:
    """A re-shipped model keeps its quality reference if it was calibrated on these weights."""
    import json

    ref = old / "quality.json"
    try:
        same = json.loads(ref.read_text()).get("model_sha256") == digest
    except (OSError, ValueError):
        return
    if same:
        shutil.copy2(ref, new / "quality.json")


def ship(name: str, model: torch.nn.Module, meta: dict[str, Any], intro: str,
         facts: list[str]) -> tuple[Path, str]:
    """Write weights, config and MODEL_CARD.md (``intro``, the sha256, ``facts`` and how it
    was trained) to ``vesselflow/weights/<name>/`` as a whole; returns (folder, sha256)."""
    dest = WEIGHTS_DIR / name
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    digest = save_model(model, tmp, meta)
    t = meta["training"]
    lines = [f"- sha256 of model.safetensors: `{digest}`", *facts,
             f"- trained with {commands(t)} for {t['steps']} steps, {t['wall_minutes']} min "
             f"on {t['device']} ({(t.get('environment') or {}).get('cpus')} CPUs)",
             "- config: see config.json"]
    (tmp / "MODEL_CARD.md").write_text(f"# {name}\n\n{intro}\n\n" + "\n".join(lines) + "\n")
    _keep_quality_reference(dest, tmp, digest)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest, digest
