"""Training throughput of the shipped configurations: steps per minute of wall time, before and
after the speed work (patch-region augmentation, optional ``torch.compile``), in one process.

Not a test: ``python benchmarks/bench_train.py`` writes ``results/bench_train.json`` and
``results/bench_train.md`` (docs/RESULTS.md's training-throughput table is built from them by
``scripts/results_table.py``). The machine is shared, so the variants are interleaved: every
round times each of them for ``--steps`` steps (the order rotating), and the reported rate is
the median over rounds; the ratios are the robust part. The load average is recorded.

Variants (vessel models; the SR data path is unchanged, so SR has no "window" variant):
  before          today's trainer: whole-image ``albumentations.Affine`` then crop
                  (:class:`~vesselflow.vessel.data.augment_whole_image.WholeImageTrainAugment`),
                  eager
  after           patch-region warp (:class:`~vesselflow.vessel.data.augment.TrainAugment`), eager
  after_nchw      as ``after`` without channels_last (does channels_last still pay?)
  after_compile   as ``after`` with ``--compile`` (compile time reported separately)
A step is what :func:`vesselflow.training.loop.fit` does per step: next batch, move to
channels_last, loss, backward, gradient clipping, Adam. "data" is the time spent in ``next``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from vesselflow.runtime import environment
from vesselflow.training.compiled import CompiledForward
from vesselflow.training.loop import _to
from vesselflow.vessel.data.augment_whole_image import WholeImageTrainAugment
from vesselflow.vessel.train.task import TrainOptions, VesselTask

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "vesselflow" / "weights"
CONFIGS = ("cnf-drive", "factored-drive", "sr-cnf")


def _shipped(name: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(model config, training options) the shipped model was trained with."""
    cfg = json.loads((WEIGHTS / name / "config.json").read_text())
    return cfg["model"], cfg["meta"]["training"]["options"]


class Variant:
    """One model + optimiser + batch stream, timed step by step."""

    def __init__(self, name: str, model: torch.nn.Module, batches: Iterator, grad_clip: float,
                 lr: float, channels_last: bool = True) -> None:
        self.name, self.batches, self.grad_clip = name, batches, grad_clip
        self.channels_last = channels_last
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.model.train()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr)
        self.forward = CompiledForward(self.model, say=lambda *a, **k: None)
        self.rates: list[float] = []
        self.cpu_rates: list[float] = []
        self.data_s = self.wall_s = 0.0
        self.compile_s: float | None = None
        self.losses: list[float] = []

    def step(self) -> tuple[float, float]:
        t0 = time.perf_counter()
        batch = next(self.batches)
        batch = _to(batch, "cpu") if self.channels_last else batch
        t1 = time.perf_counter()
        loss, _ = self.forward(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.opt.step()
        self.losses.append(float(loss.detach()))
        self._last = batch
        return t1 - t0, time.perf_counter() - t0

    def compile(self) -> None:
        t = time.perf_counter()
        if not self.forward.enable(self._last):
            raise RuntimeError(f"{self.name}: torch.compile failed (see above)")
        self.compile_s = time.perf_counter() - t

    def timed(self, steps: int) -> None:
        data = wall = 0.0
        cpu = time.process_time()
        for _ in range(steps):
            d, w = self.step()
            data, wall = data + d, wall + w
        self.rates.append(60.0 * steps / wall)
        # CPU seconds of this process (all threads): steadier than wall time on a shared host.
        self.cpu_rates.append(60.0 * steps / (time.process_time() - cpu))
        self.data_s += data
        self.wall_s += wall

    def summary(self) -> dict[str, Any]:
        return {"steps_per_min": statistics.median(self.rates), "rounds": self.rates,
                "steps_per_cpu_min": statistics.median(self.cpu_rates),
                "cpu_rounds": self.cpu_rates,
                "data_share": self.data_s / self.wall_s, "compile_s": self.compile_s}


def _vessel_variants(name: str, drive: Path, names: list[str], seed: int) -> list[Variant]:
    from vesselflow.vessel.models import VesselConfig, build_model

    model_cfg, o = _shipped(name)
    out = []
    for v in names:
        opts = TrainOptions(model=model_cfg["kind"], drive=drive, out=Path("unused"),
                            patch_size=o["patch_size"], batch_size=o["batch_size"], seed=seed)
        task = VesselTask(opts)
        if v == "before":
            task.augment_class = WholeImageTrainAugment
        torch.manual_seed(seed)  # the same initial weights for every variant
        model = build_model(VesselConfig.from_dict(model_cfg))
        out.append(Variant(v, model, task.batches(0, 0), o["grad_clip"], o["lr"],
                           channels_last=v != "after_nchw"))
    return out


def _sr_variants(name: str, data: Path, names: list[str], seed: int) -> list[Variant]:
    from vesselflow.sr.models import SRConfig, build_sr_model
    from vesselflow.sr.training import SRTask, SRTrainOptions

    model_cfg, o = _shipped(name)
    opts = SRTrainOptions(model=model_cfg["kind"], data=data, out=Path("unused"),
                          patch_size=o["patch_size"], batch_size=o["batch_size"], seed=seed,
                          train_sets=tuple(o["train_sets"]),
                          model_overrides=o["model_overrides"])
    # One shared stream: the SR data path is the same in every variant, and its lazy
    # per-image degradation would otherwise be paid once per variant.
    batches = SRTask(opts).batches(0, 0)
    for _ in range(40):  # degrade most images before timing
        next(batches)
    out = []
    for v in names:
        torch.manual_seed(seed)
        model = build_sr_model(SRConfig.from_dict(model_cfg))
        out.append(Variant(v, model, batches, o["grad_clip"], o["lr"],
                           channels_last=v != "after_nchw"))
    return out


def bench_config(name: str, a: argparse.Namespace) -> dict[str, Any]:
    sr = name.startswith("sr-")
    names = ["before", "after_nchw"] if sr else ["before", "after", "after_nchw"]
    if a.compile and (a.compile_configs is None or name in a.compile_configs.split(",")):
        names.append("after_compile")
    if sr:
        variants = _sr_variants(name, a.sr_data, names, a.seed)
    else:
        variants = _vessel_variants(name, a.drive, names, a.seed)
    print(f"{name}: variants {names}", flush=True)
    for v in variants:
        v.step()  # actnorm initialisation, allocator warm-up, DRIVE cache
        v.step()
        if v.name == "after_compile":
            print(f"  compiling {name} ...", flush=True)
            v.compile()
            print(f"  compiled in {v.compile_s:.0f} s", flush=True)
            v.step()
    loads = [os.getloadavg()[0]]
    for r in range(a.rounds):
        order = variants[r % len(variants):] + variants[:r % len(variants)]
        for v in order:
            v.timed(a.steps)
        loads.append(os.getloadavg()[0])
        print(f"  round {r + 1}/{a.rounds}: " + "  ".join(
            f"{v.name} {v.rates[-1]:.1f}" for v in variants) + f" steps/min (load {loads[-1]:.1f})",
            flush=True)
    res = {v.name: v.summary() for v in variants}
    base = res["before"]["steps_per_min"]
    for v in res.values():
        v["ratio_to_before"] = v["steps_per_min"] / base
        v["cpu_ratio_to_before"] = v["steps_per_cpu_min"] / res["before"]["steps_per_cpu_min"]
    _, o = _shipped(name)
    return {"variants": res, "load_average": loads, "batch_size": o["batch_size"],
            "patch_size": o["patch_size"], "steps_per_round": a.steps, "rounds": a.rounds}


def loss_curve(a: argparse.Namespace, steps: int) -> dict[str, Any]:
    """A short seeded CNF run before and after (same seeds): the per-step losses."""
    names = ["before", "after"] + (["after_compile"] if a.compile else [])
    curves = {}
    for v in _vessel_variants("cnf-drive", a.drive, names, a.seed):
        torch.manual_seed(a.seed)
        v.step()
        if v.name == "after_compile":
            v.compile()
        torch.manual_seed(a.seed + 1)
        for _ in range(steps - 1):
            v.step()
        curves[v.name] = v.losses
        print(f"  loss curve {v.name}: first {v.losses[0]:.4f} last {v.losses[-1]:.4f}",
              flush=True)
    out: dict[str, Any] = {"steps": steps, "losses": curves}
    for k in names[1:]:
        d = [abs(x - y) for x, y in zip(curves[k], curves["before"], strict=True)]
        out[f"max_abs_diff_{k}"] = max(d)
        out[f"max_abs_diff_{k}_first10"] = max(d[:10])
    return out


def markdown(res: dict[str, Any]) -> str:
    lines = [f"Training steps per minute of wall time and per CPU-minute of the process (all "
             f"threads), {res['threads']} threads, shipped configurations, interleaved rounds "
             "(median; ratio to `before`). Load average during the runs: "
             f"{res['load_min']:.1f}-{res['load_max']:.1f} on 2 cores; on a loaded machine the "
             "wall-time rates are noisy, the CPU-time ones less so.", "",
             "| configuration | variant | steps/min (wall) | ratio | steps per CPU-min | ratio "
             "| data share | compile |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in res["configs"].items():
        for v, s in r["variants"].items():
            comp = f"{s['compile_s']:.0f} s" if s["compile_s"] else "-"
            lines.append(f"| {name} (batch {r['batch_size']}, {r['patch_size']}px) | {v} | "
                         f"{s['steps_per_min']:.1f} | {s['ratio_to_before']:.2f}x | "
                         f"{s['steps_per_cpu_min']:.1f} | {s['cpu_ratio_to_before']:.2f}x | "
                         f"{100 * s['data_share']:.0f}% | {comp} |")
    c = res.get("loss_curve")
    if c:
        diffs = ", ".join(f"{k[len('max_abs_diff_'):]} {v:.2g}" for k, v in c.items()
                          if k.startswith("max_abs_diff_"))
        lines += ["", f"Seeded {c['steps']}-step cnf-drive run, largest per-step loss "
                  f"difference (bpd) from `before`: {diffs}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--drive", type=Path, default=ROOT.parent / "shared" / "data" / "DRIVE")
    ap.add_argument("--sr-data", type=Path, default=ROOT.parent / "shared" / "data" / "SR")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--steps", type=int, default=6, help="steps per variant per round")
    ap.add_argument("--compile", action="store_true", help="add the --compile variant")
    ap.add_argument("--compile-configs", default=None,
                    help="only these configurations get the --compile variant")
    ap.add_argument("--merge", action="store_true",
                    help="add to the configurations already in --out instead of replacing")
    ap.add_argument("--curve-steps", type=int, default=0, help="loss-curve comparison length")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_train.json")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    command = "python benchmarks/bench_train.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in (
            ("configs", a.configs), ("rounds", a.rounds), ("steps", a.steps),
            ("curve_steps", a.curve_steps), ("compile_configs", a.compile_configs))
        if v is not None) + (" --compile" if a.compile else "")
    res: dict[str, Any] = {"threads": a.threads, "environment": environment(),
                           "command": command, "configs": {}}
    if a.merge and a.out.exists():
        res = json.loads(a.out.read_text())
        res["command"] = f"{res['command']}; then {command} --merge"
    for name in (c for c in a.configs.split(",") if c):
        res["configs"][name] = bench_config(name, a)
        _write(res, a.out)  # after every configuration: a long run killed late keeps results
    if a.curve_steps:
        res["loss_curve"] = loss_curve(a, a.curve_steps)
    md = _write(res, a.out)
    print(md)
    print(f"wrote {a.out} and {a.out.with_suffix('.md')}")


def _write(res: dict[str, Any], out: Path) -> str:
    loads = [x for r in res["configs"].values() for x in r["load_average"]]
    loads = loads or [os.getloadavg()[0]]
    res["load_min"], res["load_max"] = min(loads), max(loads)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    out.with_suffix(".md").write_text(f"`{res['command']}`\n\n" + md)
    return md


if __name__ == "__main__":
    main()
