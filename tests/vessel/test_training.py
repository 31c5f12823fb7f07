"""The trainer: run folder, resume, crash-safe checkpoints, NaN guard, 2-process DDP."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_VESSEL as TINY

from vesselflow.training.checkpoint import load_last, save_last
from vesselflow.training.loop import NonFiniteLossError
from vesselflow.vessel.models import VesselCNF, VesselConfig, build_model
from vesselflow.vessel.train.task import TrainOptions, train


def _opts(drive: Path, out: Path, **kw) -> TrainOptions:
    base = dict(model="cnf", drive=drive, out=out, patch_size=32, batch_size=2, steps=4,
                val_every=1000, ckpt_every=2, log_every=1, warmup=2, val_samples=1,
                model_overrides=TINY)
    base.update(kw)
    return TrainOptions(**base)


def test_train_writes_a_run_and_resumes(drive_dir: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    summary = train(_opts(drive_dir, run, model="factored"))
    assert summary["steps"] == 4 and 0 <= summary["threshold"] <= 1
    for f in ("config.json", "metrics.jsonl", "summary.json", "last/model.safetensors",
              "last/optimizer.pt", "best/model.safetensors", "best/config.json"):
        assert (run / f).exists(), f
    best = json.loads((run / "best" / "config.json").read_text())
    meta = best["meta"]
    assert "threshold" in meta and meta["sha256"]
    # one threshold per sample count, the evaluation's (100) being the model's threshold
    assert {"1", "16", "100"} <= set(meta["thresholds"])
    assert meta["thresholds"]["100"]["threshold"] == meta["threshold"]
    # the trained scale range travels with the model (the analysis scale is clamped by it)
    assert best["model"]["scale_range"] == [0.8, 1.2]
    # the command is recorded as the CLI, never with the machine's path to the interpreter
    assert json.loads((run / "config.json").read_text())["command"].split()[0] == "vesselflow"
    with pytest.raises(FileExistsError, match="--resume"):
        train(_opts(drive_dir, run, model="factored"))
    summary = train(_opts(drive_dir, run, model="factored", steps=6, resume=True))
    assert summary["steps"] == 6
    steps = [json.loads(line).get("step") for line in (run / "metrics.jsonl").open()]
    assert 5 in steps and steps.count(1) == 1  # resumed at 4, did not start over
    history = json.loads((run / "config.json").read_text())["history"]
    assert [h["from_step"] for h in history] == [0, 4]  # both invocations are on record


def test_checkpoint_swap_survives_a_crash_between_renames(tmp_path: Path) -> None:
    m = build_model(VesselConfig(kind="factored", **TINY))
    opt = torch.optim.Adam(m.parameters())
    save_last(tmp_path, m, opt, {"step": 1})
    save_last(tmp_path, m, opt, {"step": 2})
    assert load_last(tmp_path)[2]["step"] == 2
    (tmp_path / "last").rename(tmp_path / "last.old")  # killed after the first rename
    assert load_last(tmp_path)[2]["step"] == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_persistent_non_finite_losses_stop_cleanly(drive_dir: Path, tmp_path: Path,
                                                   monkeypatch) -> None:
    calls = {"n": 0}
    original = VesselCNF.loss

    def flaky(self, batch):
        calls["n"] += 1
        loss, metrics = original(self, batch)
        return (loss * float("nan"), metrics) if calls["n"] > 3 else (loss, metrics)

    monkeypatch.setattr(VesselCNF, "loss", flaky)
    with pytest.raises(NonFiniteLossError, match="consecutive non-finite"):
        train(_opts(drive_dir, tmp_path / "run", steps=50, max_bad_steps=3))
    assert load_last(tmp_path / "run")[2]["step"] == 2  # the last good checkpoint is kept


def test_two_process_ddp_keeps_replicas_identical(drive_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--standalone", "-m", "vesselflow", "train", "--model", "factored", "--drive",
           str(drive_dir), "--out", str(out), "--steps", "3", "--batch-size", "2",
           "--patch-size", "32", "--width", "4", "--val-every", "1000", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["replicas_identical"] is True
    assert summary["steps"] == 3


def test_train_with_the_generalisation_recipe(drive_dir: Path, tmp_path: Path) -> None:
    """Photometric augmentation, a wider scale range, FOV standardisation and the U-Net:
    the run trains, and the model it writes carries the recipe into inference."""
    run = tmp_path / "run"
    summary = train(_opts(drive_dir, run, model="factored", steps=2, photometric="camera",
                          scale=(0.75, 1.5), model_overrides={
                              **TINY, "conditioning": "unet", "input_norm": "fov-standardise"}))
    assert summary["steps"] == 2
    cfg = json.loads((run / "best" / "config.json").read_text())
    assert cfg["model"]["conditioning"] == "unet"
    assert cfg["model"]["input_norm"] == "fov-standardise"
    train_opts = json.loads((run / "config.json").read_text())["train"]
    assert train_opts["photometric"] == "camera" and list(train_opts["scale"]) == [0.75, 1.5]


def test_cli_passes_the_recipe_flags(monkeypatch, tmp_path: Path) -> None:
    cli = importlib.import_module("vesselflow.cli.main")

    seen = {}
    monkeypatch.setattr("vesselflow.vessel.train.task.train", lambda o: seen.setdefault("o", o))
    rc = cli.main(["train", "--model", "cnf", "--drive", str(tmp_path), "--out",
                   str(tmp_path / "r"), "--conditioning", "unet", "--input-norm",
                   "fov-standardise", "--photometric", "camera", "--scale-range", "0.75", "1.5",
                   "--norm", "group"])
    assert rc == 0
    o = seen["o"]
    assert o.photometric == "camera" and o.scale == (0.75, 1.5)
    assert o.model_overrides == {"conditioning": "unet", "input_norm": "fov-standardise",
                                 "norm": "group"}
    assert cli.main(["train", "--model", "cnf", "--drive", str(tmp_path), "--out",
                     str(tmp_path / "r"), "--scale-range", "1.5", "0.7"]) == 2
