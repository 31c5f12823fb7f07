"""``vesselflow sr upscale``: 2x super-resolution of users' images, robust like ``segment``.

Inputs (``-i``) are resolved exactly as for ``vesselflow segment`` (a file, a folder searched
recursively, a glob, or a CSV of ``path[,id]``); any format the vessel reader takes works
(8/16-bit, grey, RGBA, DICOM, 2-D NIfTI), and the result is 8-bit RGB.

Per image ``<id>``: ``<id>_x2.png`` (the first sample at ``--temperature``; temperature 0 is
the model's point estimate) and, with ``--samples N > 1``, ``<id>_x2_mean.png`` (mean of the N
samples), ``<id>_x2_std.png`` (per-pixel standard deviation of the luma Y across samples,
x8, as a where-is-the-model-unsure map) and ``<id>_x2_sNN.png`` per sample. Per run:
``run.json`` and ``metrics.csv``, by the batch runner shared with ``segment``
(:mod:`vesselflow.batch.runner`): every file is written to a temp file and renamed; a bad
input is reported and skipped (exit status 1 at the end); ``--continue`` skips images already
done with the same settings and ``--overwrite`` replaces a previous run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vesselflow.batch.inputs import BatchError, InputItem, collect_inputs, image_seed

STATE = ".vesselflow-sr"
MAX_LR_PIXELS = 1_500_000  # ~1.2k x 1.2k in, 2.4k x 2.4k out: ~6 GB peak on CPU for sr-cnf
OUTPUT_SUFFIXES = ("_x2.png", "_x2_mean.png", "_x2_std.png")
METRIC_FIELDS = ("id", "input", "status", "width", "height", "width_out", "height_out",
                 "seconds", "error")


def output_names(image_id: str, samples: int) -> list[str]:
    names = [f"{image_id}_x2.png"]
    if samples > 1:
        names += [f"{image_id}_x2_mean.png", f"{image_id}_x2_std.png"]
        names += [f"{image_id}_x2_s{k:02d}.png" for k in range(samples)]
    return names


def write_upscaled(out: Path, image_id: str, imgs: list[Any]) -> list[str]:
    """Write one image's results into ``out`` (atomically); returns the file names.

    ``imgs``: the (2h, 2w, 3) uint8 outputs, the first is ``<id>_x2.png``; with more than one,
    also their mean, the luma std x8 (:func:`vesselflow.sr.inference.luma_std`) and each one.
    """
    import numpy as np

    from vesselflow.io.encoders import write_png
    from vesselflow.sr.inference import luma_std

    names = output_names(image_id, len(imgs))
    write_png(out / names[0], imgs[0])
    if len(imgs) > 1:
        stack = np.stack(imgs)
        write_png(out / names[1], stack.astype(np.float32).mean(0).round().astype(np.uint8))
        ystd = luma_std(stack) * 8
        write_png(out / names[2], np.clip(ystd, 0, 255).round().astype(np.uint8))
        for name, s in zip(names[3:], imgs, strict=True):
            write_png(out / name, s)
    return names


def upscale_one(loaded: Any, item: InputItem, out: Path, *, samples: int,
                temperature: float, seed: int, device: str) -> dict[str, Any]:
    """Super-resolve one image and write its files; returns its metrics row."""
    import numpy as np
    import torch

    from vesselflow.io.images import read_image
    from vesselflow.sr.inference import draw_samples, point_estimate

    img = read_image(item.path)
    h, w = img.shape[:2]
    if h * w > MAX_LR_PIXELS:
        raise ValueError(f"{w}x{h} is larger than the {MAX_LR_PIXELS / 1e6:.1f} MP "
                         f"this command upscales at once; crop or downscale it first")
    lr = (img * 255).round().astype(np.uint8)
    if temperature:
        gen = torch.Generator(device=device).manual_seed(image_seed(seed, item.id) % 2**63)
        imgs = list(draw_samples(loaded.model, lr, samples, temperature, gen, device,
                                 batch=samples))
    else:
        imgs = [point_estimate(loaded.model, lr, device)] * samples
    write_upscaled(out, item.id, imgs)
    return {"status": "ok", "width": w, "height": h, "width_out": imgs[0].shape[1],
            "height_out": imgs[0].shape[0]}


def upscale(inputs: str | Path, out: Path, *, model: str = "sr-cnf", temperature: float = 0.0,
            samples: int = 1, seed: int = 0, device: str = "auto", resume: bool = False,
            overwrite: bool = False, progress: bool = False,
            log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Super-resolve every input; returns (and writes as ``run.json``) the run record.

    Raises:
        BatchError: bad arguments, no inputs, a refused output folder, a bad model.
    """
    import time

    from vesselflow.batch.runner import BatchTask, open_run, run_batch
    from vesselflow.runtime import now, pick_device, sigterm_as_interrupt
    from vesselflow.sr.weights import load_sr_model

    say = log or (lambda s: print(s, flush=True))
    if resume and overwrite:
        raise BatchError("--continue and --overwrite exclude each other")
    if samples < 1:
        raise BatchError(f"--samples must be at least 1, got {samples}")
    if not math.isfinite(temperature) or temperature < 0:
        raise BatchError(f"--temperature must be a number >= 0, got {temperature}")
    started, t_start = now(), time.perf_counter()
    out = Path(out).expanduser()
    items = collect_inputs(inputs, exclude=out)
    try:
        dev = pick_device(device)
        loaded = load_sr_model(model, device=dev)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        raise BatchError(f"cannot load model {model!r}: {e}") from None
    settings = {"model_sha256": loaded.sha256, "temperature": temperature,
                "samples": samples, "seed": seed}
    record = {"model": {"name": loaded.name, "path": str(loaded.path),
                        "kind": loaded.config.kind, "sha256": loaded.sha256},
              "parameters": {**settings, "device": device, "continue": resume,
                             "overwrite": overwrite},
              "seed": seed, "device": dev}
    task = BatchTask(
        command="sr upscale", state_dir=STATE, output_suffixes=OUTPUT_SUFFIXES,
        metric_fields=METRIC_FIELDS, output_names=lambda i: output_names(i, samples),
        all_output_names=lambda i: output_names(i, samples),
        process=lambda item, o, _p: upscale_one(loaded, item, o, samples=samples,
                                                temperature=temperature, seed=seed,
                                                device=dev),
        settings=settings, record=record, outputs=output_names("<id>", samples),
        start_line=f"sr upscale: {len(items)} image(s) with {loaded.name} "
        f"({loaded.config.kind}), {samples} sample(s) at temperature {temperature:g}, "
        f"device {dev} -> {out}",
        ok_line=lambda r: f"{r['width']}x{r['height']} -> {r['width_out']}x"
                          f"{r['height_out']} in {r['seconds']:.1f} s")
    dist = open_run()
    try:
        with sigterm_as_interrupt():
            return run_batch(task, dist, items, inputs, out, resume=resume,
                             overwrite=overwrite, progress=progress, say=say,
                             started=started, t_start=t_start)
    finally:
        dist.close()
