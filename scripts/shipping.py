"""What ``ship_model.py`` and ``ship_sr_model.py`` share: reading a run's provenance, and
writing ``vesselflow/weights/<name>/`` as a whole (built beside it, then swapped in)."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # torch is imported only by ship(): results_table.py reads commands() fast
    import torch

ROOT = Path(__file__).resolve().parents[1]


def repo_path(path: str | Path, root: Path = ROOT) -> str:
    """``path`` relative to the repository when it lies inside it, else as given: a recorded
    path must mean the same in any clone, not on one machine."""
    p = Path(path)
    if p.is_absolute():
        try:
            return str(p.resolve().relative_to(root.resolve()))
        except ValueError:
            return str(path)
    return str(path)


def repo_command(command: str | None, root: Path = ROOT) -> str | None:
    """A recorded command line as a reader types it in a clone of the repository.

    The training loop records ``sys.argv`` as run, so its first word is however the entry point
    was started (``.venv/bin/vesselflow``, a worktree's ``vesselflow/__main__.py``,
    ``python -m vesselflow``): it becomes ``vesselflow``. Absolute paths inside the repository
    (also in ``--opt=PATH``) become repository-relative; others are kept as recorded."""
    if not command:
        return command
    words = shlex.split(command)
    first = words[0].replace("\\", "/")
    if first.endswith("vesselflow/__main__.py") or Path(first).name == "vesselflow":
        words = ["vesselflow", *words[1:]]
    elif Path(first).name.startswith("python") and words[1:3] == ["-m", "vesselflow"]:
        words = ["vesselflow", *words[3:]]
    out = []
    for w in words:
        key, eq, value = w.partition("=")
        out.append(f"{key}={repo_path(value, root)}" if eq and w.startswith("--")
                   else repo_path(w, root))
    return shlex.join(out)


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
    history = [{**h, "command": repo_command(h.get("command"))}
               for h in run_cfg.get("history") or []] or None
    options = {k: repo_path(v) if isinstance(v, str) and Path(v).is_absolute() else v
               for k, v in (run_cfg.get("train") or {}).items()} or None
    return {"command": repo_command(run_cfg.get("command")), "history": history,
            "options": options,
            "steps": summary.get("steps"), "wall_minutes": summary.get("wall_minutes"),
            "device": run_cfg.get("device"), "environment": run_cfg.get("environment"),
            "data": data}


def commands(training: dict[str, Any]) -> str:
    """The training command(s) in Markdown: a resumed run lists each invocation in order."""
    history = training.get("history") or []
    if len(history) < 2:
        return f"`{repo_command(training.get('command'))}`"
    return ", then ".join(f"`{repo_command(h['command'])}`"
                          + (f" (from step {h['from_step']})" if h["from_step"] else "")
                          for h in history)


def _keep_review_calibration(old: Path, new: Path, digest: str) -> None:
    """A re-shipped model keeps its calibrations (the review's ``quality.json``, the
    biomarkers' ``biomarkers.json``) if they were made with these weights."""
    from vesselflow.vessel.biomarker_calibration import CALIBRATION_FILE as BIOMARKERS
    from vesselflow.vessel.review.verdict import CALIBRATION_FILE

    for name in (CALIBRATION_FILE, BIOMARKERS):
        calibration = old / name
        try:
            same = json.loads(calibration.read_text()).get("model_sha256") == digest
        except (OSError, ValueError):
            continue
        if same:
            shutil.copy2(calibration, new / name)


def ship(name: str, model: torch.nn.Module, meta: dict[str, Any], intro: str,
         facts: list[str]) -> tuple[Path, str]:
    """Write weights, config and MODEL_CARD.md (``intro``, the sha256, ``facts`` and how it
    was trained) to ``vesselflow/weights/<name>/`` as a whole; returns (folder, sha256)."""
    from vesselflow.io.weights import WEIGHTS_DIR, save_model

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
    _keep_review_calibration(dest, tmp, digest)
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return dest, digest
