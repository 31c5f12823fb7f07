"""Per-image inference shared by the CLI, evaluation and the app.

The conditioning features are computed once per image and shared by every sample (and the
flow's context projections are cached across sample batches); samples are drawn in
memory-bounded batches and folded into a running mean and variance, so memory does not grow
with the number of samples.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from vesselflow.flows import cached_context
from vesselflow.vessel.models import MULTIPLE, VesselFactored, VesselModel
from vesselflow.vessel.preprocess.padding import crop_padding, pad_to_multiple, padded_size

_MALLOC_TUNED = False


def tune_malloc() -> bool:
    """Keep freed sample buffers in glibc's heap instead of returning them to the OS.

    Each sample batch allocates and frees the same large activations (tens of MB). glibc
    serves blocks above its mmap threshold with fresh ``mmap`` calls and trims the heap top
    after ``free``, so every batch page-faults its buffers in again: on the 2-core CPU that
    was ~1.3 s of system time per 16 DRIVE-sized samples (of ~4 s). Raising the mmap and trim
    thresholds makes the pages reusable; peak memory is unchanged (the same buffers are
    reused). Process-wide, idempotent, Linux/glibc only; ``VESSELFLOW_NO_MALLOPT=1`` skips it.
    Returns whether the settings are in effect.
    """
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    if not sys.platform.startswith("linux") or os.environ.get("VESSELFLOW_NO_MALLOPT"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # <malloc.h>
        ok = (libc.mallopt(m_mmap_threshold, 1 << 30) == 1
              and libc.mallopt(m_trim_threshold, (1 << 31) - 1) == 1
              and libc.mallopt(m_top_pad, 64 << 20) == 1)
    except (OSError, AttributeError):  # not glibc (musl, macOS): nothing to tune
        return False
    _MALLOC_TUNED = bool(ok)
    return _MALLOC_TUNED


def binary_std(mean: np.ndarray) -> np.ndarray:
    """The std across binary samples whose mean is ``mean``: sqrt(mean (1 - mean)), exactly,
    float32 in [0, 0.5] (the convention of every uncertainty map)."""
    return np.sqrt(np.clip(mean * (1 - mean), 0, None)).astype(np.float32)


def vessel_mask(prob: np.ndarray, fov: np.ndarray, threshold: float) -> np.ndarray:
    """The binary vessel map: ``prob >= threshold`` inside the FOV (never vessel outside)."""
    return (prob >= threshold) & fov


@dataclass
class SampleStats:
    """Per-pixel statistics over n samples of one image, at the image's size (H, W).

    Attributes:
        mean: mean of the binary samples = vessel probability estimate, float32 in [0, 1].
        std: per-pixel standard deviation across samples (the uncertainty map).
        samples: the first ``keep`` samples, bool (k, H, W), or None.
        n: number of samples the statistics are over (for the factored model, the exact
            distribution is used: n = inf is reported as the requested n).
    """

    mean: np.ndarray
    std: np.ndarray
    samples: np.ndarray | None
    n: int


def to_tensor_image(image: np.ndarray | Tensor) -> Tensor:
    """(H, W, 3) array or (3, H, W) tensor in [0, 1] -> (1, 3, H, W) float32 tensor."""
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) RGB image, got shape {image.shape}")
        image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)
    if image.ndim == 3:
        image = image[None]
    return image.float()


def prepare(image: np.ndarray | Tensor, device: str = "cpu") -> tuple[Tensor, tuple]:
    """Pad to the models' multiple (black, like the outside of the FOV); returns (x, pad)."""
    x, pad = pad_to_multiple(to_tensor_image(image), MULTIPLE, mode="constant")
    x = x.to(device)
    if device == "cpu":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, pad


@torch.inference_mode()
def sample_stats(model: VesselModel, image: np.ndarray | Tensor, n: int = 16,
                 temperature: float = 1.0, batch_size: int = 8, seed: int | None = 0,
                 keep: int = 0, device: str = "cpu",
                 callback: Callable[[int, np.ndarray], None] | None = None) -> SampleStats:
    """Draw ``n`` binary vessel maps for one image and summarise them.

    ``callback(done, running_mean)`` is called after each batch (progress bars, live maps).
    The factored model's mean and std are its exact Bernoulli q and sqrt(q(1 - q)); samples
    are drawn only when ``keep`` > 0.
    """
    if n < 1:
        raise ValueError(f"number of samples must be >= 1, got {n}")
    if device == "cpu":
        tune_malloc()
    x, pad = prepare(image, device)
    gen = torch.Generator(device=device)
    if seed is not None:
        gen.manual_seed(seed)
    feats = model.features(x)
    kept: list[Tensor] = []
    if isinstance(model, VesselFactored):
        q = crop_padding(model.prob_map(feats)[0, 0], pad)
        mean = q.float().cpu().numpy()
        if keep:
            kept.append(crop_padding(model.sample_labels(feats, keep, temperature, gen)[:, 0],
                                     pad))
        if callback:
            callback(n, mean)
        std = binary_std(mean)
        samples = torch.cat(kept).bool().cpu().numpy() if kept else None
        return SampleStats(mean, std.astype(np.float32), samples, n)

    # Counts of {0, 1} samples; MPS has no float64, and float32 counts are exact below 2^24.
    acc = torch.float32 if str(device).startswith("mps") else torch.float64
    total = torch.zeros(x.shape[-2:], dtype=acc, device=device)
    done = 0
    with cached_context():
        while done < n:
            b = min(batch_size, n - done)
            s = model.sample_labels(feats, b, temperature, gen)[:, 0]  # (b, H', W') {0, 1}
            total += s.sum(0, dtype=acc)
            if len(kept) * batch_size < keep:
                kept.append(s[: keep - sum(k.shape[0] for k in kept)])
            done += b
            if callback:
                callback(done, crop_padding(total / done, pad).float().cpu().numpy())
    mean = crop_padding(total / n, pad).float().cpu().numpy()
    # Binary samples: the variance across samples is mean * (1 - mean), exactly, so a running
    # sum is all the state needed (Welford's update reduces to this for {0, 1} data).
    std = binary_std(mean)
    samples = None
    if kept:
        samples = crop_padding(torch.cat(kept)[:keep], pad).bool().cpu().numpy()
    return SampleStats(mean, std, samples, n)


@torch.inference_mode()
def log_likelihood(model: VesselModel, image: np.ndarray | Tensor, label: np.ndarray | Tensor,
                   device: str = "cpu", n_bound_samples: int = 1,
                   canvas: int | None = None, seed: int | None = None) -> float:
    """log P(label | image) in nats (a lower bound for the CNF, averaged over samples).

    Image and label are padded (black image, background label); the padded pixels are then
    nearly free, and bits per dimension are reported over the ORIGINAL pixel count, so the
    padding can only make bpd look worse, never better.

    With ``canvas`` = N both are instead padded to N x N (bottom/right), and the result is the
    likelihood of the whole canvas: the paper trains on DRIVE padded to 1024 x 1024, and bpd
    over that canvas (N * N dimensions) would be the paper's convention if it divided by
    its canvas, which it does not state (see ``evaluate``).

    The CNF's bound draws its dequantization noise; with ``seed`` the draw is seeded (the
    global torch RNG is left untouched), so the same seed gives the same bpd.
    """
    x = to_tensor_image(image)
    y = label if isinstance(label, Tensor) else torch.from_numpy(np.asarray(label))
    y = y.float().reshape(1, 1, *y.shape[-2:])
    h, w = y.shape[-2:]
    if canvas is None:
        size = (padded_size(h, MULTIPLE), padded_size(w, MULTIPLE))
    elif canvas % MULTIPLE or h > canvas or w > canvas:
        raise ValueError(f"canvas {canvas} must be a multiple of {MULTIPLE} and at least "
                         f"the image size {h}x{w}")
    else:
        size = (canvas, canvas)
    pad = (0, size[1] - w, 0, size[0] - h)  # zeros at the bottom/right, for image and label
    x, _ = prepare(F.pad(x, pad), device)
    y = F.pad(y, pad).to(device)
    feats = model.features(x)
    if seed is None:
        lls = [model.log_likelihood(x, y, feats).item() for _ in range(n_bound_samples)]
        return float(np.mean(lls))
    cuda = [torch.device(device).index or 0] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        lls = [model.log_likelihood(x, y, feats).item() for _ in range(n_bound_samples)]
    return float(np.mean(lls))


