"""Validation during training and the a-priori threshold, on DRIVE's fixed validation split."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vesselflow.flows import bits_per_dim
from vesselflow.vessel.analysis.sampler import log_likelihood, sample_stats
from vesselflow.vessel.evaluation.metrics import binary_scores, in_fov, max_f1
from vesselflow.vessel.preprocess.normalise import apply_input_norm


@functools.cache
def _val_items(drive: Path) -> tuple[dict[str, Any], ...]:
    """The validation images, decoded once per process (validation runs many times)."""
    from vesselflow.vessel.data.drive import DriveDataset

    data = DriveDataset(drive, "val")
    return tuple(data[i] for i in range(len(data)))


def _val_inputs(model, drive) -> Iterator[tuple[torch.Tensor, torch.Tensor, np.ndarray]]:
    """(image (3, H, W) as the model sees it, label (H, W), FOV (H, W) bool) per validation
    image: the model's input normalisation applied as segment_image does, with DRIVE's
    official FOV."""
    norm = getattr(model.config, "input_norm", "none")
    for item in _val_items(Path(drive).resolve()):
        image, label = item["image"], item["label"][0]
        fov = item["fov"][0].bool().numpy()
        if norm != "none":
            hwc = apply_input_norm(image.permute(1, 2, 0).numpy(), fov, norm)
            image = torch.from_numpy(np.ascontiguousarray(hwc.transpose(2, 0, 1)))
        yield image, label, fov


def _maps(model, drive, device, n_samples, seed):
    probs, truths, lls, pixels = [], [], [], 0
    for image, label, fov in _val_inputs(model, drive):
        stats = sample_stats(model, image, n=n_samples, seed=seed, device=device)
        probs.append(in_fov(stats.mean, fov))
        truths.append(in_fov(label.numpy(), fov))
        lls.append(log_likelihood(model, image, label, device=device))
        pixels += label.numel()
    return np.concatenate(probs), np.concatenate(truths) > 0.5, float(np.sum(lls)), pixels


@torch.no_grad()
def validate(model, drive: Path, device: str, n_samples: int = 4, seed: int = 0
             ) -> dict[str, float]:
    """bpd (over whole images) and max F1 of the mean of ``n_samples`` (inside the FOV)."""
    was_training = model.training
    model.eval()
    try:
        prob, truth, ll, pixels = _maps(model, drive, device, n_samples, seed)
    finally:
        model.train(was_training)
    f1, thr = max_f1(prob, truth)
    return {"bpd": bits_per_dim(ll, pixels), "max_f1": f1, "threshold": thr}


THRESHOLD_SAMPLES = 100
"""Samples per image the a-priori threshold is chosen at: the count ``vesselflow evaluate``
uses (the paper's 100). A CNF's mean of N binary samples lives on a 1/N grid, so a threshold
chosen at another N would be applied to a map on a different grid. (The factored models'
map is their exact, continuous q; N does not change it.)"""


@torch.no_grad()
def choose_threshold(model, drive: Path, device: str, n_samples: int = THRESHOLD_SAMPLES,
                     seed: int = 0) -> dict[str, float]:
    """The threshold maximising pooled F1 on the validation split (never the test set), on
    the mean of ``n_samples`` samples per image."""
    model.eval()
    prob, truth, _, _ = _maps(model, drive, device, n_samples, seed)
    f1, thr = max_f1(prob, truth)
    return {"threshold": thr, "f1": binary_scores(prob >= thr, truth)["f1"], "max_f1": f1}


THRESHOLD_COUNTS = (1, 2, 4, 8, 16, 32, 64, 100, 128)
"""Sample counts a threshold is chosen at (the app's choices, segment's 16, evaluate's 100)."""


@torch.no_grad()
def choose_thresholds(model, drive: Path, device: str,
                      counts: tuple[int, ...] = THRESHOLD_COUNTS, seed: int = 0
                      ) -> dict[str, dict[str, float]]:
    """The F1-maximising threshold on the validation split at each sample count.

    A CNF's mean of n binary samples lives on a 1/n grid, so a threshold chosen on the mean of
    100 acts as another one on the mean of 16 (0.44 is 0.5 there). Each validation image gets
    ``max(counts)`` samples once; the map at count n is the mean of its first n. The factored
    models' map is their exact q whatever the count: one threshold serves every count.

    Returns:
        ``{str(n): {"threshold", "f1", "max_f1"}}`` for every n in ``counts``.
    """
    from vesselflow.vessel.models import VesselFactored

    model.eval()
    if isinstance(model, VesselFactored):
        one = choose_threshold(model, drive, device, n_samples=1, seed=seed)
        return {str(n): dict(one) for n in counts}
    top = max(counts)
    kept, truths = [], []
    for image, label, fov in _val_inputs(model, drive):
        stats = sample_stats(model, image, n=top, seed=seed, device=device, keep=top)
        kept.append(np.cumsum(stats.samples[:, fov], axis=0, dtype=np.uint8))  # (top, N) counts
        truths.append(in_fov(label.numpy(), fov) > 0.5)
    truth = np.concatenate(truths)
    out = {}
    for n in counts:
        prob = np.concatenate([c[n - 1] / n for c in kept])
        f1, thr = max_f1(prob, truth)
        out[str(n)] = {"threshold": thr, "f1": binary_scores(prob >= thr, truth)["f1"],
                       "max_f1": f1}
    return out
