"""Super-resolving one image: the point estimate, samples in memory-bounded batches, and the
spread of the samples; used by ``vesselflow sr upscale`` and the app."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from vesselflow.sr.data import to_image, to_tensor
from vesselflow.sr.metrics import rgb_to_y

SAMPLE_BUDGET = 4 * 256 * 256  # LR pixels per model call (samples in a batch x pixels)


def batch_size_for(lr_shape: tuple[int, ...], n: int) -> int:
    """Samples drawn per model call: as many as fit :data:`SAMPLE_BUDGET` LR pixels."""
    return max(1, min(n, SAMPLE_BUDGET // max(1, lr_shape[0] * lr_shape[1])))


def point_estimate(model: Any, lr: np.ndarray, device: str = "cpu") -> np.ndarray:
    """The model's temperature-0 output, ``model.predict(lr, 0.0)``: (2h, 2w, 3) uint8 (the
    CNF's latent mode; the factored model's mixture mean)."""
    with torch.no_grad():
        out = model.predict(to_tensor(lr)[None].to(device), 0.0)
    return to_image(out[0])


def draw_samples(model: Any, lr: np.ndarray, n: int, temperature: float,
                 generator: torch.Generator, device: str = "cpu", batch: int | None = None,
                 callback: Callable[[int], None] | None = None) -> np.ndarray:
    """n samples at ``temperature``: (n, 2h, 2w, 3) uint8, drawn ``batch`` at a time
    (default :func:`batch_size_for`) from ``generator``; ``callback(done)`` after each."""
    lr_t = to_tensor(lr)[None].to(device)
    batch = batch or batch_size_for(lr.shape, n)
    out: list[np.ndarray] = []
    with torch.no_grad():
        while len(out) < n:
            draws = model.sample(lr_t, min(batch, n - len(out)), temperature, generator)[0]
            out.extend(to_image(d) for d in draws)
            if callback is not None:
                callback(len(out))
    return np.stack(out)


def luma_std(samples: np.ndarray) -> np.ndarray:
    """Per-pixel standard deviation of the samples' luma Y (BT.601, grey levels 0..255):
    (n, H, W, 3) uint8 -> (H, W) float64."""
    return np.std(np.stack([rgb_to_y(s) for s in samples]), axis=0)
