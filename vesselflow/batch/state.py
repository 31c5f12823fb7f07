"""The output folder of a batch run: refusing to mix runs, ``--continue`` markers, temp files
left by a killed run, and the per-image failure rows and ``metrics.csv``.

Bookkeeping lives in ``OUT/<state_dir>/``: ``settings.json`` (what a ``--continue`` must match),
``done/<id>.json`` (a marker written last, atomically, once all of an image's outputs are in
place) and per-rank part files.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vesselflow.batch.inputs import BatchError, InputItem
from vesselflow.io.files import sha256_file, write_csv

RUN_FILES = ("run.json", "metrics.csv")


def previous_outputs(out: Path, state_dir: str, suffixes: Sequence[str],
                     run_files: Sequence[str] = ()) -> list[str]:
    """Names in OUT that a previous run wrote (unrelated files do not count).

    ``run_files``: the task's own per-run files besides :data:`RUN_FILES`.
    """
    if not out.is_dir():
        return []
    found = []
    names = {*RUN_FILES, *run_files}
    for entry in sorted(os.listdir(out)):
        if entry in names or entry == state_dir or entry.endswith(tuple(suffixes)):
            found.append(entry)
    return found


def check_folder(out: Path, settings: dict[str, Any], resume: bool, overwrite: bool, *,
                 state_dir: str, suffixes: Sequence[str], run_files: Sequence[str] = (),
                 defaults: dict[str, Any] | None = None) -> None:
    """Refuse to mix runs: previous outputs need --continue (same settings) or --overwrite.

    ``defaults``: the value of a setting that a run from before the setting existed had
    (``{"biomarkers": False}``: such a run made none, so it resumes with ``--no-biomarkers``).
    """
    if out.exists() and not out.is_dir():
        raise BatchError(f"{out}: exists and is not a folder")
    previous = previous_outputs(out, state_dir, suffixes, run_files)
    if not previous or overwrite:
        return
    if not resume:
        shown = ", ".join(previous[:4]) + (", ..." if len(previous) > 4 else "")
        raise BatchError(f"{out}: holds outputs of a previous run ({shown}); use --continue "
                           f"to finish it, --overwrite to replace it, or another folder")
    path = out / state_dir / "settings.json"
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # outputs without settings (an old or foreign layout): markers decide per image
    before = {**(defaults or {}), **before}
    diff = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
    if diff:
        shown = "; ".join(f"{k} was {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise BatchError(f"{out}: --continue with different settings ({shown}); use the same "
                           f"settings, or --overwrite")


def remove_stray_temps(out: Path, names: Sequence[str]) -> int:
    """Delete temp files left beside ``names`` by a killed run (``.<name>.*.tmp``)."""
    removed = 0
    for name in names:
        for tmp in glob.glob(os.path.join(glob.escape(str(out)), f".{glob.escape(name)}.*.tmp")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
                removed += 1
    return removed


def marker_path(out: Path, state_dir: str, image_id: str) -> Path:
    """Where an image's marker lives: written last, once all its outputs are in place."""
    return out / state_dir / "done" / f"{image_id}.json"


def completed(out: Path, state_dir: str, item: InputItem, names: Sequence[str]
              ) -> dict[str, Any] | None:
    """The marker of a finished image if all its outputs are present and the input unchanged."""
    try:
        marker = json.loads(marker_path(out, state_dir, item.id).read_text())
    except (OSError, ValueError):
        return None
    if not all((out / n).is_file() for n in names):
        return None
    try:
        if marker.get("input_sha256") != sha256_file(item.path):
            return None  # the input changed since: redo it
    except OSError:
        return None
    return marker


def failure_record(item: InputItem, error: BaseException, seconds: float,
                   fields: Sequence[str]) -> dict[str, Any]:
    """The row of an image that failed: the error names the file; other metrics are NaN."""
    from vesselflow.io.errors import ImageReadError

    msg = str(error) if isinstance(error, ImageReadError) else f"{type(error).__name__}: {error}"
    if str(item.path) not in msg:
        msg = f"{item.path}: {msg}"  # every message names the file
    nan = float("nan")
    row: dict[str, Any] = {"id": item.id, "input": str(item.path), "status": "failed"}
    row.update({k: nan for k in fields if k not in ("id", "input", "status", "error")})
    row.update({"seconds": round(seconds, 3), "error": msg})
    return row


def write_metrics(path: Path, rows: list[dict[str, Any]], fields: Sequence[str]) -> None:
    """``metrics.csv``: one row per input in ``fields`` order (NaN written as ``nan``)."""
    write_csv(path, rows, fields)
