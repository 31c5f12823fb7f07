"""The Super-resolution page's analysis: the LR case (upscale or simulate), the cached point
estimate and samples (:mod:`vesselflow.sr.inference`), metrics against the original and the
downloads."""

from __future__ import annotations

import contextvars
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np
import streamlit as st

from vesselflow import __version__
from vesselflow.app.config import SR_MIN_LR_SIDE, SR_SCALE
from vesselflow.app.guard import AppError
from vesselflow.app.inputs import InputImage
from vesselflow.io.encoders import zip_bytes


@dataclass(frozen=True)
class SRParams:
    """The page's settings: sampling temperature, sample count, seed, central crop (0: none)."""

    temperature: float = 0.8
    n: int = 4
    seed: int = 0
    crop: int = 0


@dataclass
class SRCase:
    """What the model is given: the LR image, its bicubic enlargement and, when simulating,
    the original it was made from (the ground truth).

    ``crop`` is (top, left, height, width) of the region used, in the input image's pixels.
    """

    key: str
    mode: str
    lr: np.ndarray
    bicubic: np.ndarray
    hr: np.ndarray | None
    crop: tuple[int, int, int, int]
    input_shape: tuple[int, int]


def sr_case(item: InputImage, mode: str, crop: int = 0) -> SRCase:
    """The LR input for ``mode`` "upscale" (the image itself) or "simulate" (the image
    bicubically shrunk by 2, the original kept as ground truth), after an optional central
    crop of side ``crop``; AppError if it is too large or too small."""
    from vesselflow.sr.upscale import MAX_LR_PIXELS

    if mode not in ("upscale", "simulate"):
        raise ValueError(f"unknown mode {mode!r}")
    h, w = item.image.shape[:2]
    ch, cw = (min(crop, h), min(crop, w)) if crop else (h, w)
    top, left = (h - ch) // 2, (w - cw) // 2
    lr_h, lr_w = (ch, cw) if mode == "upscale" else (ch // SR_SCALE, cw // SR_SCALE)
    if lr_h * lr_w > MAX_LR_PIXELS:
        side = int(MAX_LR_PIXELS**0.5)
        what = "The image" if mode == "upscale" else "The half-size image"
        raise AppError(f"{what} is too large to enlarge here: {lr_w}×{lr_h} px is "
                       f"{lr_w * lr_h / 1e6:.1f} megapixels, above the limit of "
                       f"{MAX_LR_PIXELS / 1e6:.1f} (about {side}×{side} px). Choose a central "
                       "crop under *Advanced* in the sidebar, or crop or shrink the image "
                       "before uploading it.")
    if min(lr_h, lr_w) < SR_MIN_LR_SIDE:
        raise AppError(f"The image is too small to enlarge: the model input would be "
                       f"{lr_w}×{lr_h} px; at least {SR_MIN_LR_SIDE} px on each side is needed"
                       + (" (simulating halves the image first)." if mode == "simulate"
                          else "."))
    key = f"{item.key}:{mode}:{crop}"
    return _sr_case_cached(key, mode, (top, left, ch, cw), item.image)


@st.cache_data(max_entries=8, show_spinner="Preparing the image…")
def _sr_case_cached(key: str, mode: str, box: tuple[int, int, int, int],
                    _image: np.ndarray) -> SRCase:
    from vesselflow.sr.resize import bicubic_degrade, bicubic_upscale
    from vesselflow.vessel.visualize import to_uint8

    top, left, ch, cw = box
    image = to_uint8(_image[top : top + ch, left : left + cw])
    hr = None
    if mode == "simulate":
        hr, lr = bicubic_degrade(image, SR_SCALE)
        box = (top, left, hr.shape[0], hr.shape[1])  # cropped to a multiple of the scale
    else:
        lr = np.ascontiguousarray(image)
    return SRCase(key, mode, lr, bicubic_upscale(lr, SR_SCALE), hr, box,
                  (int(_image.shape[0]), int(_image.shape[1])))


@dataclass
class SRResult:
    """One run: the point estimate, the samples, their mean and their spread.

    ``y_std`` is the per-pixel standard deviation of the samples' luma Y (BT.601, grey levels
    0..255), None with a single sample.
    """

    point: np.ndarray
    samples: np.ndarray
    mean: np.ndarray
    y_std: np.ndarray | None
    batch_size: int
    seconds: dict[str, float]

    @property
    def mean_uint8(self) -> np.ndarray:
        return np.clip(np.round(self.mean), 0, 255).astype(np.uint8)

    @property
    def mean_y_std(self) -> float | None:
        return None if self.y_std is None else float(self.y_std.mean())


class _Progress:
    """A progress bar updated from inside a cached function (see :class:`LiveProgress`)."""

    def __init__(self, slot: Any, text: str) -> None:
        self._context = contextvars.copy_context()
        self._bar = slot.progress(0.0, text=text)

    def __call__(self, fraction: float, text: str) -> None:
        self._context.run(self._bar.progress, min(max(fraction, 0.0), 1.0), text)


@st.cache_data(max_entries=8, show_spinner=False)
def _sr_point_cached(model_key: str, case_key: str, _model: Any, _lr: np.ndarray,
                     _device: str, _progress: Callable | None) -> tuple[np.ndarray, float]:
    from vesselflow.sr.inference import point_estimate

    t0 = time.perf_counter()
    point = point_estimate(_model, _lr, _device)
    if _progress is not None:
        _progress(1.0, "Point estimate (temperature 0): 100 %")
    return point, time.perf_counter() - t0


@st.cache_data(max_entries=6, show_spinner=False)
def _sr_samples_cached(model_key: str, case_key: str, temperature: float, n: int, seed: int,
                       _model: Any, _lr: np.ndarray, _device: str, _progress: Callable | None
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, float]:
    import torch

    from vesselflow.sr.inference import draw_samples, luma_std

    t0 = time.perf_counter()
    report = None if _progress is None else (
        lambda done: _progress(done / n, f"Sampling: {done} of {n} drawn"))
    # One generator seeded with ``seed``: same image, settings and seed give the same samples.
    gen = torch.Generator(device=_device).manual_seed(seed)
    samples = draw_samples(_model, _lr, n, temperature, gen, _device, callback=report)
    mean = samples.astype(np.float32).mean(0)
    y_std = luma_std(samples).astype(np.float32) if n > 1 else None
    return samples, mean, y_std, time.perf_counter() - t0


def sr_run(loaded: Any, case: SRCase, params: SRParams, bar_slot: Any = None) -> SRResult:
    """Point estimate and samples for ``case``, cached (changing the temperature, count or
    seed redraws only the samples), with a progress bar in ``bar_slot``."""
    device = str(next(loaded.model.parameters()).device)
    model_key = f"{loaded.sha256}:{device}"
    bar_slot = bar_slot if bar_slot is not None else st.empty()
    try:
        progress = _Progress(bar_slot, "Point estimate (temperature 0)…")
        point, t_point = _sr_point_cached(model_key, case.key, loaded.model, case.lr, device,
                                          progress)
        if params.temperature == 0:  # every sample would be the point estimate
            samples = np.repeat(point[None], params.n, axis=0)
            mean = point.astype(np.float32)
            y_std = np.zeros(point.shape[:2], np.float32) if params.n > 1 else None
            t_samples = 0.0
        else:
            progress = _Progress(bar_slot, f"Sampling: 0 of {params.n} drawn…")
            samples, mean, y_std, t_samples = _sr_samples_cached(
                model_key, case.key, params.temperature, params.n, params.seed, loaded.model,
                case.lr, device, progress)
    finally:
        bar_slot.empty()
    from vesselflow.sr.inference import batch_size_for

    return SRResult(point, samples, mean, y_std, batch_size_for(case.lr.shape, params.n),
                    {"point_estimate": round(t_point, 3), "samples": round(t_samples, 3)})


def sr_metrics(case: SRCase, result: SRResult) -> list[dict[str, Any]]:
    """Y-channel PSNR/SSIM against the ground truth (simulate mode), one row per output."""
    from vesselflow.sr.metrics import psnr_y, ssim_y

    if case.hr is None:
        return []
    b = SR_SCALE
    scores = [(psnr_y(s, case.hr, b), ssim_y(s, case.hr, b)) for s in result.samples]
    n = len(result.samples)
    rows = [("Bicubic (MATLAB imresize)", case.bicubic), ("Model, temperature 0",
                                                          result.point),
            (f"Mean of the {n} samples", result.mean)]
    out = [{"output": name, "PSNR-Y (dB)": psnr_y(img, case.hr, b),
            "SSIM-Y": ssim_y(img, case.hr, b)} for name, img in rows]
    out.append({"output": f"Single samples (average of {n})",
                "PSNR-Y (dB)": float(np.mean([s[0] for s in scores])),
                "SSIM-Y": float(np.mean([s[1] for s in scores]))})
    return out


@st.cache_data(max_entries=8, show_spinner="Measuring against the original…")
def _sr_metrics_cached(key: str, _case: SRCase, _result: SRResult) -> list[dict[str, Any]]:
    return sr_metrics(_case, _result)


def sr_metrics_cached(loaded: Any, case: SRCase, params: SRParams, result: SRResult
                      ) -> list[dict[str, Any]]:
    """:func:`sr_metrics`, computed once per model, case and settings."""
    if case.hr is None:
        return []
    return _sr_metrics_cached(f"{loaded.sha256}:{case.key}:{params}", case, result)


def sr_run_record(loaded: Any, item: InputImage, case: SRCase, params: SRParams,
                  result: SRResult, metrics: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything needed to reproduce or audit a super-resolution result (``run.json``)."""
    from vesselflow.runtime import environment

    lh, lw = case.lr.shape[:2]
    oh, ow = result.point.shape[:2]
    top, left, ch, cw = case.crop
    return {
        "tool": f"vesselflow {__version__} web app, super-resolution",
        "created_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "notice": "Research use only. Samples are plausible detail, not measured detail.",
        "image": {"name": item.name, "sha256": item.key, "height": case.input_shape[0],
                  "width": case.input_shape[1]},
        "mode": case.mode,
        "mode_description": (
            "the image (or its crop) was enlarged 2x" if case.mode == "upscale" else
            "the image (or its crop) was shrunk 2x with MATLAB-compatible bicubic imresize, "
            "enlarged 2x by the model and compared with the original"),
        "region": {"top": top, "left": left, "height": ch, "width": cw,
                   "central_crop": params.crop or None},
        "sizes": {"model_input": [lw, lh], "output": [ow, oh]},
        "model": {"name": loaded.name, "kind": loaded.config.kind, "sha256": loaded.sha256,
                  "scale": loaded.config.scale},
        "parameters": {"temperature": params.temperature, "samples": params.n,
                       "seed": params.seed, "batch_size": result.batch_size,
                       "point_estimate": "temperature 0 (model.predict): the flow's zero "
                                         "latent, or the factored model's mixture mean"},
        "metrics": {"protocol": "Y channel (BT.601), 2-pixel border cropped, vs the original",
                    "rows": metrics} if metrics else None,
        "summary": {"mean_y_std_of_samples": result.mean_y_std, "seconds": result.seconds},
        "files": {
            "<name>_t0_x2.png": "model output at temperature 0 (point estimate)",
            "<name>_x2.png": "the first sample at the chosen temperature",
            "<name>_x2_mean.png": "mean of the samples (with more than one)",
            "<name>_x2_std.png": "per-pixel std of the samples' luma Y, x8 (value / 8 = std "
                                 "in grey levels)",
            "<name>_x2_sNN.png": "each sample",
            "<name>_bicubic_x2.png": "bicubic enlargement (MATLAB imresize), for comparison",
            "<name>_model_input.png": "the image the model enlarged",
            "<name>_original.png": "simulate mode: the original (ground truth)",
            "note": "the sample and point-estimate files are written by "
                    "vesselflow.sr.upscale.write_upscaled, as vesselflow sr upscale does",
        },
        "environment": environment(),
    }


def sr_files(loaded: Any, item: InputImage, case: SRCase, params: SRParams,
             result: SRResult, metrics: list[dict[str, Any]]) -> dict[str, bytes]:
    """Every output of one run, for the zip: the files ``vesselflow sr upscale`` writes
    (:func:`vesselflow.sr.upscale.write_upscaled`) for the samples and for the point
    estimate, plus the bicubic enlargement, the model input and the original."""
    import tempfile
    from pathlib import Path

    from vesselflow.app.inputs import stem
    from vesselflow.io.encoders import write_png
    from vesselflow.sr.upscale import write_upscaled

    name = stem(item.name)
    with tempfile.TemporaryDirectory(prefix="vesselflow-app-") as tmp:
        out = Path(tmp)
        write_upscaled(out, f"{name}_t0", [result.point])
        write_upscaled(out, name, list(result.samples))
        write_png(out / f"{name}_bicubic_x2.png", case.bicubic)
        write_png(out / f"{name}_model_input.png", case.lr)
        if case.hr is not None:
            write_png(out / f"{name}_original.png", case.hr)
        files = {f.name: f.read_bytes() for f in sorted(out.iterdir())}
    files["run.json"] = sr_run_json(loaded, item, case, params, result, metrics)
    return files


def point_png(result: SRResult) -> bytes:
    """The point estimate as ``vesselflow sr upscale --temperature 0`` writes it."""
    import tempfile
    from pathlib import Path

    from vesselflow.sr.upscale import write_upscaled

    with tempfile.TemporaryDirectory(prefix="vesselflow-app-") as tmp:
        [name] = write_upscaled(Path(tmp), "image", [result.point])
        return (Path(tmp) / name).read_bytes()


def sr_run_json(loaded: Any, item: InputImage, case: SRCase, params: SRParams,
                result: SRResult, metrics: list[dict[str, Any]]) -> bytes:
    record = sr_run_record(loaded, item, case, params, result, metrics)
    return (json.dumps(record, indent=2, default=str) + "\n").encode()


def sr_zip(loaded: Any, item: InputImage, case: SRCase, params: SRParams, result: SRResult,
           metrics: list[dict[str, Any]]) -> bytes:
    return zip_bytes(sr_files(loaded, item, case, params, result, metrics))
