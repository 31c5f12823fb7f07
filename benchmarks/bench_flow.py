"""Benchmark the vessel flow on this machine: training-step time and sampling throughput.

Not a test: run ``make bench`` (or ``python benchmarks/bench_flow.py``) and read the table.
Figures vary about +-20% run to run on a shared 2-core VM, so the two memory formats are
measured interleaved in one process and reported side by side.

Outputs ``results/bench_flow.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import torch

from vesselflow.flows import cached_context
from vesselflow.runtime import environment
from vesselflow.vessel.models import VesselConfig, build_model


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def train_step_time(model, patch: int, batch: int, channels_last: bool, reps: int) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    b = {"image": torch.rand(batch, 3, patch, patch).contiguous(memory_format=fmt),
         "label": (torch.rand(batch, 1, patch, patch) > 0.88).float(),
         "fov": torch.ones(batch, 1, patch, patch)}
    times = []
    for i in range(reps + 1):
        t = time.perf_counter()
        loss, _ = model.loss(b)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step includes actnorm's data-dependent initialisation
            times.append(time.perf_counter() - t)
    return statistics.median(times)


@torch.inference_mode()
def sampling_rate(model, size: tuple[int, int], n: int, batch: int, channels_last: bool
                  ) -> float:
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt).eval()
    x = torch.rand(1, 3, *size).contiguous(memory_format=fmt)
    with cached_context():
        feats = model.features(x)
        model.sample_labels(feats, min(batch, 2))  # warm-up: allocator, kernels, cache
        t = time.perf_counter()
        done = 0
        while done < n:
            model.sample_labels(feats, min(batch, n - done))
            done += min(batch, n - done)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--batch", type=int, default=8, help="samples per batch")
    ap.add_argument("--reps", type=int, default=5, help="training steps timed per setting")
    ap.add_argument("--out", type=Path, default=Path("results/bench_flow.json"))
    a = ap.parse_args()
    torch.manual_seed(0)
    model = build_model(VesselConfig(kind="cnf"))
    with torch.no_grad():  # move off the identity start so every layer does real work
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    n_params = sum(p.numel() for p in model.parameters())
    size = (584, 568)  # DRIVE 584x565 padded to a multiple of 4
    res: dict = {"config": model.config.to_dict(), "parameters": n_params,
                 "threads": torch.get_num_threads(), "environment": environment(),
                 "train_step_s": {}, "samples_per_s": {}}
    print(f"vessel CNF: {n_params / 1e6:.2f}M parameters, {torch.get_num_threads()} threads")
    for patch in (64, 128):
        for cl in (False, True):
            key = f"{patch}px_batch8_{'channels_last' if cl else 'nchw'}"
            res["train_step_s"][key] = train_step_time(model, patch, 8, cl, a.reps)
            print(f"  train step {key:32s} {res['train_step_s'][key] * 1e3:8.0f} ms",
                  flush=True)
    for cl in (False, True, False, True):  # interleaved: fair under a noisy neighbour
        key = "channels_last" if cl else "nchw"
        rate = sampling_rate(model, size, a.samples, a.batch, cl)
        res["samples_per_s"].setdefault(key, []).append(rate)
        print(f"  sampling 584x568 {key:14s} {rate:6.2f} samples/s "
              f"({a.samples / rate:.1f} s for {a.samples})", flush=True)
    res["samples_per_s"] = {k: max(v) for k, v in res["samples_per_s"].items()}
    res["peak_rss_mb"] = _peak_mb()
    print(f"  peak resident memory {res['peak_rss_mb']:.0f} MB")
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
