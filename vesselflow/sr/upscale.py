"""``vesselflow sr upscale``: 2x super-resolution of users' images, robust like ``segment``.

Inputs (``-i``) are resolved exactly as for ``vesselflow segment`` (a file, a folder searched
recursively, a glob, or a CSV of ``path[,id]``); any format the vessel reader takes works
(8/16-bit, grey, RGBA, DICOM, 2-D NIfTI), and the result is 8-bit RGB.

Per image ``<id>``: ``<id>_x2.png`` (the first sample at ``--temperature``; temperature 0 is
the model's point estimate) and, with ``--samples N > 1``, ``<id>_x2_mean.png`` (mean of the N
samples), ``<id>_x2_std.png`` (per-pixel standard deviation of the luma Y across samples,
x8, as a where-is-the-model-unsure map) and ``<id>_x2_sNN.png`` per sample. Per run:
``run.json`` (model, settings, per-image status and timings, failures).

Every file is written to a temp file and renamed; a bad input is reported and skipped (exit
status 1 at the end); ``--continue`` skips images already done with the same settings and
``--overwrite`` replaces a previous run.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

STATE = ".vesselflow-sr"
MAX_LR_PIXELS = 1_500_000  # ~1.2k x 1.2k in, 2.4k x 2.4k out: ~6 GB peak on CPU for sr-cnf


class UpscaleError(ValueError):
    """A problem with the command's arguments or output folder (not with one image)."""


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("upscale", help="2x super-resolve your own images",
                       description=__doc__.split("\n\n")[1] if __doc__ else None)
    p.add_argument("-i", "--input", required=True,
                   help="image file, folder, glob or CSV of path[,id]")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", default="sr-cnf",
                   help="sr-cnf (default), sr-factored, a model folder or a run folder")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="sampling temperature (0 = point estimate, default; 0.8 = sharper "
                   "but invented detail)")
    p.add_argument("--samples", type=int, default=1, help="samples per image (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--continue", dest="resume", action="store_true",
                      help="finish a previous run in OUT (same settings)")
    mode.add_argument("--overwrite", action="store_true", help="replace a previous run in OUT")
    p.set_defaults(func=_cmd_upscale)


def _cmd_upscale(a: argparse.Namespace) -> int:
    try:
        report = upscale(a.input, a.out, model=a.model, temperature=a.temperature,
                         samples=a.samples, seed=a.seed, device=a.device, resume=a.resume,
                         overwrite=a.overwrite)
    except (UpscaleError, FileNotFoundError, ValueError) as e:
        print(f"vesselflow sr upscale: error: {e}", file=sys.stderr)
        return 2
    done, skipped, failed = (report["counts"][k] for k in ("done", "skipped", "failed"))
    print(f"upscaled {done} image(s), {skipped} already done, {failed} failed in "
          f"{report['seconds']:.1f} s -> {a.out}")
    for f in report["failures"]:
        print(f"  FAILED {f['error']}", file=sys.stderr)
    return 1 if failed else 0


def output_names(image_id: str, samples: int) -> list[str]:
    names = [f"{image_id}_x2.png"]
    if samples > 1:
        names += [f"{image_id}_x2_mean.png", f"{image_id}_x2_std.png"]
        names += [f"{image_id}_x2_s{k:02d}.png" for k in range(samples)]
    return names


def _write_png(path: Path, array: Any) -> None:
    from PIL import Image

    from ..utils import atomic_path

    with atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _check_out(out: Path, settings: dict[str, Any], resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise UpscaleError(f"{out}: exists and is not a folder")
    state = out / STATE / "settings.json"
    if not state.exists() or overwrite:
        return
    if not resume:
        raise UpscaleError(f"{out}: holds a previous upscale run; use --continue to finish "
                           f"it, --overwrite to replace it, or another folder")
    before = json.loads(state.read_text())
    diff = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
    if diff:
        shown = "; ".join(f"{k} was {x!r}, now {y!r}" for k, (x, y) in diff.items())
        raise UpscaleError(f"{out}: --continue with different settings ({shown})")


def upscale(inputs: str | Path, out: Path, *, model: str = "sr-cnf", temperature: float = 0.0,
            samples: int = 1, seed: int = 0, device: str = "auto", resume: bool = False,
            overwrite: bool = False) -> dict[str, Any]:
    """Super-resolve every input; returns (and writes as ``run.json``) the run report."""
    if samples < 1:
        raise UpscaleError(f"--samples must be at least 1, got {samples}")
    if not math.isfinite(temperature) or temperature < 0:
        raise UpscaleError(f"--temperature must be a number >= 0, got {temperature}")
    from ..segment import SegmentError, collect_inputs

    out = Path(out)
    try:
        items = collect_inputs(inputs, exclude=out)
    except SegmentError as e:
        raise UpscaleError(str(e)) from e

    import numpy as np
    import torch

    from .. import __version__
    from ..data.errors import ImageReadError
    from ..data.io import read_image
    from ..segment import image_seed
    from ..utils import environment, pick_device, write_json
    from .data import to_image, to_tensor
    from .io import load_sr_model
    from .metrics import rgb_to_y

    dev = pick_device(device)
    loaded = load_sr_model(model, device=dev)
    settings = {"model_sha256": loaded.sha256, "temperature": temperature,
                "samples": samples, "seed": seed}
    _check_out(out, settings, resume, overwrite)
    (out / STATE / "done").mkdir(parents=True, exist_ok=True)
    write_json(out / STATE / "settings.json", settings)
    t0 = time.time()
    records: list[dict[str, Any]] = []
    for k, item in enumerate(items, 1):
        marker = out / STATE / "done" / f"{item.id}.json"
        names = output_names(item.id, samples)
        if resume and marker.exists() and all((out / n).exists() for n in names):
            records.append({**json.loads(marker.read_text()), "status": "skipped"})
            print(f"[{k}/{len(items)}] {item.id}: already done", flush=True)
            continue
        t1 = time.time()
        try:
            img = read_image(item.path)
            h, w = img.shape[:2]
            if h * w > MAX_LR_PIXELS:
                raise ValueError(f"{w}x{h} is larger than the {MAX_LR_PIXELS / 1e6:.1f} MP "
                                 f"this command upscales at once; crop or downscale it first")
            lr = to_tensor((img * 255).round().astype(np.uint8))[None].to(dev)
            gen = torch.Generator(device=dev).manual_seed(image_seed(seed, item.id) % 2**63)
            with torch.no_grad():
                sr = loaded.model.sample(lr, samples, temperature, gen)[0] if temperature \
                    else loaded.model.predict(lr, 0.0, gen).expand(samples, -1, -1, -1)
            imgs = [to_image(s) for s in sr]
            _write_png(out / names[0], imgs[0])
            if samples > 1:
                stack = np.stack(imgs).astype(np.float32)
                _write_png(out / names[1], stack.mean(0).round().astype(np.uint8))
                ystd = np.std([rgb_to_y(i) for i in imgs], axis=0) * 8
                _write_png(out / names[2], np.clip(ystd, 0, 255).round().astype(np.uint8))
                for name, s in zip(names[3:], imgs, strict=True):
                    _write_png(out / name, s)
            rec = {"id": item.id, "input": str(item.path), "status": "done",
                   "size_in": [w, h], "size_out": [imgs[0].shape[1], imgs[0].shape[0]],
                   "outputs": names, "seconds": round(time.time() - t1, 2)}
            write_json(marker, rec)
            print(f"[{k}/{len(items)}] {item.id}: {w}x{h} -> {rec['size_out'][0]}x"
                  f"{rec['size_out'][1]} in {rec['seconds']:.1f} s", flush=True)
        except (ImageReadError, ValueError, OSError, RuntimeError) as e:
            rec = {"id": item.id, "input": str(item.path), "status": "failed",
                   "error": str(e) if str(item.path) in str(e) else f"{item.path}: {e}"}
            print(f"[{k}/{len(items)}] {item.id}: FAILED: {rec['error']}", file=sys.stderr,
                  flush=True)
        records.append(rec)
    counts = {s: sum(r["status"] == s for r in records) for s in ("done", "skipped", "failed")}
    report = {"command": "vesselflow sr upscale", "version": __version__,
              "model": {"name": loaded.name, "kind": loaded.config.kind,
                        "sha256": loaded.sha256},
              "settings": settings, "device": dev, "counts": counts,
              "seconds": round(time.time() - t0, 2), "images": records,
              "failures": [r for r in records if r["status"] == "failed"],
              "environment": environment()}
    write_json(out / "run.json", report)
    return report
