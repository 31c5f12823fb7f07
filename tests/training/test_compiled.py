"""The training speed work must not change what is trained: the objective on fixed
batches, channels_last, the ``--compile`` switch and its fallback, actnorm's init flag."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from vesselflow.cli import build_parser
from vesselflow.flows import ActNorm
from vesselflow.sr.models import SRConfig, build_sr_model
from vesselflow.training.compiled import CompiledForward
from vesselflow.vessel.models import VesselConfig, build_model
from vesselflow.vessel.train.task import TrainOptions, train

# Losses of the models below on the batches below, computed by the trainer's code before
# the speed work (commit fe8d5ca, float32, 1 thread): two calls, the first initialising actnorm.
BEFORE = {
    "cnf": (0.7703624963760376, 0.7938191294670105),
    "factored": (0.14767110347747803, 0.14767110347747803),
    "sr-cnf": (0.8931937217712402, 0.9698796272277832),
    "sr-factored": (4.539032936096191, 4.539032936096191),
}


def _vessel(kind: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = build_model(VesselConfig(kind=kind)).train()
    g = torch.Generator().manual_seed(1)
    batch = {"image": torch.rand(2, 3, 32, 32, generator=g),
             "label": (torch.rand(2, 1, 32, 32, generator=g) > 0.85).float(),
             "fov": torch.ones(2, 1, 32, 32)}
    return model, batch


def _sr(kind: str) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    config = SRConfig.from_dict({**SRConfig().to_dict(), "kind": kind, "features": 32,
                                 "blocks": 4, "growth": 16})
    model = build_sr_model(config).train()
    g = torch.Generator().manual_seed(2)
    batch = {"hr": torch.rand(2, 3, 32, 32, generator=g),
             "lr": torch.rand(2, 3, 16, 16, generator=g)}
    return model, batch


def _losses(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, float]:
    out = []
    for seed in (5, 6):  # the dequantization noise
        torch.manual_seed(seed)
        out.append(float(model(batch)[0].detach()))
    return out[0], out[1]


@pytest.mark.parametrize("name", list(BEFORE))
@pytest.mark.parametrize("channels_last", [False, True])
def test_loss_on_a_fixed_batch_is_unchanged(name: str, channels_last: bool) -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model, batch = _sr(name[3:]) if name.startswith("sr-") else _vessel(name)
        if channels_last:  # what the trainer does on CPU
            model = model.to(memory_format=torch.channels_last)
            batch = {k: v.contiguous(memory_format=torch.channels_last) for k, v in batch.items()}
        got = _losses(model, batch)
    finally:
        torch.set_num_threads(threads)
    assert got == pytest.approx(BEFORE[name], abs=1e-5), got


def test_actnorm_init_flag_follows_loaded_state() -> None:
    layer = ActNorm(3).train()
    x = torch.randn(4, 3, 5, 5) * 3 + 2
    layer(x)
    trained = {k: v.clone() for k, v in layer.state_dict().items()}
    layer(torch.randn(4, 3, 5, 5))  # initialised: a second batch changes nothing
    assert torch.equal(layer.bias, trained["bias"])
    layer.load_state_dict(ActNorm(3).state_dict())  # an uninitialised state: init again
    layer(x)
    assert torch.allclose(layer.bias, trained["bias"])
    fresh = ActNorm(3).train()
    fresh.load_state_dict(trained)  # an initialised state is never overwritten
    fresh(torch.randn(4, 3, 5, 5))
    assert torch.equal(fresh.bias, trained["bias"])


def test_compile_trial_leaves_no_trace(monkeypatch) -> None:
    model, batch = _vessel("cnf")
    model(batch)  # the eager first step initialises actnorm
    monkeypatch.setattr(torch, "compile", lambda m, **kw: m)  # a "compiler" that is eager
    before_rng = torch.get_rng_state()
    buffers = {k: v.clone() for k, v in model.named_buffers()}
    forward = CompiledForward(model, say=lambda *a, **k: None)
    assert forward.enable(batch) and forward.active
    assert torch.equal(torch.get_rng_state(), before_rng)
    assert all(torch.equal(v, buffers[k]) for k, v in model.named_buffers())
    assert all(p.grad is None for p in model.parameters())


def test_compile_failure_falls_back_to_eager(monkeypatch, capsys) -> None:
    model, batch = _vessel("factored")

    def broken(m, **kw):
        def run(*a, **k):
            raise RuntimeError("no C++ compiler found\nlong traceback")
        return run

    monkeypatch.setattr(torch, "compile", broken)
    forward = CompiledForward(model)
    assert not forward.enable(batch) and not forward.active
    assert "torch.compile failed (RuntimeError: no C++ compiler found)" in capsys.readouterr().out
    assert torch.isfinite(forward(batch)[0])


def test_train_with_compile_flag_falls_back(drive_dir: Path, tmp_path: Path, monkeypatch,
                                            capsys) -> None:
    def unavailable(m, **kw):
        raise RuntimeError("compiler unavailable")

    monkeypatch.setattr(torch, "compile", unavailable)
    tiny = {"width": 4, "steps": 1, "hidden": (4, 4), "deq_steps": 1, "deq_hidden": 4,
            "deq_width": 4}
    run = tmp_path / "run"
    summary = train(TrainOptions(model="factored", drive=drive_dir, out=run, patch_size=32,
                                 batch_size=2, steps=3, val_every=1000, ckpt_every=2,
                                 log_every=1, warmup=2, val_samples=1, compile=True,
                                 model_overrides=tiny))
    assert summary["steps"] == 3
    assert "torch.compile failed" in capsys.readouterr().out
    assert json.loads((run / "config.json").read_text())["train"]["compile"] is True


@pytest.mark.parametrize("argv", [
    ["train", "--model", "cnf", "--drive", "d", "--out", "o", "--compile"],
    ["sr", "train", "--model", "cnf", "--data", "d", "--out", "o", "--compile"],
])
def test_cli_accepts_compile(argv: list[str]) -> None:
    a = build_parser().parse_args(argv)
    assert a.compile is True
    assert build_parser().parse_args([x for x in argv if x != "--compile"]).compile is False
