"""The one batch runner behind ``vesselflow segment`` and ``vesselflow sr upscale``.

A task (:class:`BatchTask`) says how to process one image and what its outputs are called;
the runner does the rest, the same for every task: refuses to mix runs (``--continue`` with
the same settings or ``--overwrite``), skips finished images on ``--continue``, shows progress,
keeps going past a bad image and records it, writes ``run.json`` and ``metrics.csv``, shards
over torchrun ranks and turns SIGTERM into KeyboardInterrupt (see :mod:`vesselflow.runtime`).

Never losing work: every file is written to a temp file and renamed; a marker written last
vouches for an image's outputs; temp files left by a ``kill -9`` are removed by
``--continue``, which redoes every image without a valid marker.

Sharding: under ``torchrun --nproc_per_node=N`` (RANK/WORLD_SIZE in the environment) rank r
takes inputs r, r + N, r + 2N, ... of the (deterministic) input list; rank 0 merges the
per-rank results into run.json and metrics.csv after a gloo barrier. Each image's seed derives
from the run seed and its id (:func:`vesselflow.batch.inputs.image_seed`), so results do not
depend on the sharding.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vesselflow.batch.inputs import BatchError, InputItem
from vesselflow.batch.state import (
    RUN_FILES,
    check_folder,
    completed,
    failure_record,
    marker_path,
    remove_stray_temps,
    write_metrics,
)
from vesselflow.io.files import sha256_file, write_json
from vesselflow.runtime import Dist, environment, now


@dataclass
class BatchTask:
    """What a batch command plugs into :func:`run_batch`.

    ``process(item, out, on_progress)`` writes one image's outputs into ``out`` (atomically)
    and returns its metrics row (``status`` "ok"); it may call ``on_progress(fraction)``. It
    may raise anything: the runner records the failure and goes on.
    """

    command: str  # "segment", "sr upscale": messages and run.json
    state_dir: str  # bookkeeping folder inside OUT
    output_suffixes: tuple[str, ...]  # a file in OUT ending so is a previous run's output
    metric_fields: tuple[str, ...]  # metrics.csv columns
    output_names: Callable[[str], list[str]]  # an image's files as this run writes them
    all_output_names: Callable[[str], list[str]]  # every file an image may have (clean-up)
    process: Callable[[InputItem, Path, Callable[[float], None]], dict[str, Any]]
    settings: dict[str, Any]  # what decides an image's outputs: a --continue must match
    record: dict[str, Any]  # run.json entries: model, parameters, seed, device
    outputs: list[str]  # run.json "outputs": the kinds of file written per image
    start_line: str  # printed once at the start
    ok_line: Callable[[dict[str, Any]], str]  # a finished image's log line
    # The task's own per-run files besides run.json and metrics.csv (biomarkers.csv).
    run_files: tuple[str, ...] = ()
    # Settings a run from before they existed had (see batch.state.check_folder).
    settings_defaults: dict[str, Any] = field(default_factory=dict)
    # finish(out, rows) writes the task's run files from the merged rows (rank 0, atomically)
    # and returns entries for run.json.
    finish: Callable[[Path, list[dict[str, Any]]], dict[str, Any]] | None = None
    # summary(rows) -> extra lines printed after the run's summary line (review flags).
    summary: Callable[[list[dict[str, Any]]], list[str]] | None = None


@dataclass
class _RunInfo:
    """What run.json records besides the per-image rows."""

    task: BatchTask
    inputs: str | Path
    out: Path
    items: list[InputItem]
    world: int
    started: str
    t_start: float


def run_batch(task: BatchTask, dist: Dist, items: list[InputItem], inputs: str | Path,
              out: Path, *, resume: bool, overwrite: bool, progress: bool,
              say: Callable[[str], None], started: str, t_start: float) -> dict[str, Any]:
    """Process every item of this rank into ``out``; returns the run record (run.json).

    Raises:
        BatchError: a refused output folder or ranks that disagree on the inputs.
            KeyboardInterrupt passes through after finished work is recorded.
    """
    listing = hashlib.sha256("\n".join(f"{i.id}\t{i.path}" for i in items).encode()).hexdigest()
    if not dist.all_equal(listing):
        raise BatchError("the ranks found different input lists (did the input change "
                         "during start-up?); every rank must see the same files")
    run = _RunInfo(task, inputs, out, items, dist.world, started, t_start)
    # Every rank checks the folder before any rank writes to it, so they all decide alike.
    check_folder(out, task.settings, resume, overwrite, state_dir=task.state_dir,
                 suffixes=task.output_suffixes, run_files=task.run_files,
                 defaults=task.settings_defaults)
    dist.barrier()
    state = out / task.state_dir
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite and (state / "done").exists():
            shutil.rmtree(state / "done")  # old markers must not vouch for replaced outputs
        for part in state.glob("part-*.json"):
            part.unlink()
        write_json(state / "settings.json", task.settings)
        remove_stray_temps(out, [*RUN_FILES, *task.run_files])
    dist.barrier()
    (state / "done").mkdir(parents=True, exist_ok=True)

    mine = items[dist.rank::dist.world]
    # Temp files a killed (kill -9) run left behind; each rank cleans only its own images'.
    remove_stray_temps(out, [n for i in mine for n in task.all_output_names(i.id)])
    remove_stray_temps(state / "done", [f"{i.id}.json" for i in mine])
    if dist.main:
        say(task.start_line)

    rows: list[dict[str, Any]] = []
    bar = None
    if progress and dist.main:
        from tqdm import tqdm

        bar = tqdm(total=len(mine), unit="img", dynamic_ncols=True, file=sys.stderr,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total} img "
                              "[{elapsed}<{remaining}{postfix}]")

    def note(text: str, failure: bool = False) -> None:
        # With a bar, only failures get a line (the bar shows the rest); without, every image.
        if failure:
            if bar is not None:
                bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)
        elif not progress:
            say(text)

    interrupted = False
    try:
        for k, item in enumerate(mine):
            tag = f"[{k + 1}/{len(mine)}]" + (f" rank {dist.rank}" if dist.world > 1 else "")
            if bar is not None:
                bar.set_postfix_str(item.id, refresh=False)
            names = task.output_names(item.id)
            done_before = completed(out, task.state_dir, item, names) if resume else None
            if done_before is not None:
                rows.append({**done_before, "status": "skipped"})
                note(f"{tag} {item.id}: complete from a previous run, skipped")
                if bar is not None:
                    bar.update(1)
                continue
            t0 = time.perf_counter()
            base = bar.n if bar is not None else 0.0

            def on_progress(fraction: float, base: float = base) -> None:
                if bar is not None:  # fractional progress within an image keeps the ETA live
                    bar.update(base + 0.95 * fraction - bar.n)

            try:
                digest = sha256_file(item.path) if item.path.is_file() else ""
                row = task.process(item, out, on_progress)
                rec = {"id": item.id, "input": str(item.path), "input_sha256": digest, **row,
                       "seconds": round(time.perf_counter() - t0, 3), "outputs": names,
                       "finished": now()}
                # Written last: its presence means every output is complete (--continue).
                write_json(marker_path(out, task.state_dir, item.id), rec)
                rows.append(rec)
                note(f"{tag} {item.id}: {task.ok_line(rec)}")
            except Exception as e:  # one bad image never stops the batch
                rec = failure_record(item, e, time.perf_counter() - t0, task.metric_fields)
                rows.append(rec)
                note(f"{tag} {item.id}: FAILED: {rec['error']}", failure=True)
            if bar is not None:
                bar.update(base + 1 - bar.n)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if bar is not None:
            bar.close()
        # Record what is finished even when interrupted, so no finished image goes unreported.
        write_json(state / f"part-{dist.rank}.json",
                   {"rank": dist.rank, "rows": rows, "interrupted": interrupted})
        if interrupted and dist.world == 1:
            _finish(run, interrupted=True)

    dist.barrier()
    record: dict[str, Any] = _finish(run, interrupted=False) if dist.main else {}
    failed = dist.total(sum(r["status"] == "failed" for r in rows))
    dist.barrier()  # nobody exits (and lets torchrun tear the group down) before the merge
    if not dist.main:
        record = {"counts": {"failed": failed}, "failures": []}
    return record


def _finish(run: _RunInfo, *, interrupted: bool) -> dict[str, Any]:
    """Merge the ranks' part files into run.json and metrics.csv (rank 0); print a summary."""
    task = run.task
    state = run.out / task.state_dir
    by_id: dict[str, dict[str, Any]] = {}
    for r in range(run.world):
        try:
            part = json.loads((state / f"part-{r}.json").read_text())
        except (OSError, ValueError) as e:
            raise BatchError(f"{state}: the part file of rank {r} is missing ({e})") from None
        interrupted = interrupted or bool(part.get("interrupted"))
        for row in part["rows"]:
            by_id[row["id"]] = row
    # One row per input, in input order; an interrupted run's remaining inputs read "not run".
    rows = [by_id.get(i.id, {"id": i.id, "input": str(i.path), "status": "not run"})
            for i in run.items]
    counts = {"total": len(rows)}
    for status in ("ok", "failed", "skipped", "not run"):
        counts[status.replace(" ", "_")] = sum(r["status"] == status for r in rows)
    failures = [{"id": r["id"], "input": r["input"], "error": r.get("error", "")}
                for r in rows if r["status"] == "failed"]
    seconds = time.perf_counter() - run.t_start
    record = {
        "command": task.command,
        "argv": sys.argv[1:],
        "input": str(run.inputs), "output": str(run.out),
        **task.record, "world_size": run.world,
        "environment": environment(),
        "started": run.started, "finished": now(), "seconds": round(seconds, 2),
        "interrupted": interrupted,
        "counts": counts, "failures": failures,
        "outputs": task.outputs,
    }
    if task.finish is not None:
        record.update(task.finish(run.out, rows))
    write_metrics(run.out / "metrics.csv", rows, task.metric_fields)
    write_json(run.out / "run.json", record)
    per = [r["seconds"] for r in rows if r["status"] == "ok"]
    rate = f", {sum(per) / len(per):.1f} s/image" if per else ""
    not_run = f", {counts['not_run']} not run" if counts["not_run"] else ""
    print(f"{task.command} {'interrupted' if interrupted else 'done'}: {counts['total']} "
          f"image(s): {counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} "
          f"skipped{not_run} in {seconds:.1f} s{rate}", flush=True)
    for f in failures:
        print(f"  failed: {f['error']}", flush=True)
    for line in task.summary(rows) if task.summary is not None else ():
        print(line, flush=True)
    files = ", ".join(["run.json", "metrics.csv", *task.run_files][:-1]) + " and " + (
        task.run_files[-1] if task.run_files else "metrics.csv")
    print(f"  outputs, {files} in {run.out}"
          + ("; rerun with --continue to finish" if interrupted else ""), flush=True)
    return record


def open_run(dist_factory: Callable[[], Dist] = Dist) -> Dist:
    """The torchrun environment of this process, as a :class:`BatchError` when it is bad."""
    try:
        return dist_factory()
    except RuntimeError as e:
        raise BatchError(str(e)) from None
