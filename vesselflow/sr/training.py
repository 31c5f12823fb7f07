"""``vesselflow sr train``: the shared training loop (:func:`vesselflow.training.loop.fit`)
on random aligned HR/LR patches of T91 + BSD200.

Eight BSD200 images (every 25th, :func:`~vesselflow.sr.data.validation_files`) are held out;
validation measures bpd and temperature-0 Y-PSNR on their central 128x128 crops and picks the
best checkpoint by bpd. The benchmark sets (Set5, Set14, BSD100) are never looked at.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vesselflow.io.weights import save_model
from vesselflow.sr.data import (
    SRPatchDataset,
    center_crop_pair,
    read_rgb,
    to_image,
    validation_files,
)
from vesselflow.sr.metrics import psnr_y
from vesselflow.sr.models import SRConfig, SRModel, build_sr_model
from vesselflow.sr.resize import bicubic_degrade
from vesselflow.training.loop import LoopOptions, fit

VAL_CROP = 128


@dataclass
class SRTrainOptions(LoopOptions):
    """Options of an SR training run: the common ones plus the data root and sets."""

    data: Path = field(kw_only=True)
    train_sets: tuple[str, ...] = ("T91", "BSD200")
    patch_size: int = 64
    batch_size: int = 16
    lr: float = 5e-4
    grad_clip: float = 100.0


@functools.cache
def _val_crops(root: Path, scale: int) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
    crops = []
    for f in validation_files(root):
        hr, lr = bicubic_degrade(read_rgb(f), scale)
        crops.append(center_crop_pair(hr, lr, VAL_CROP, scale))
    return tuple(crops)


@torch.no_grad()
def validate_sr(model: SRModel, root: Path, device: str, seed: int = 0) -> dict[str, float]:
    """Mean bpd and temperature-0 Y-PSNR over the held-out validation crops."""
    crops = _val_crops(Path(root).resolve(), model.config.scale)
    hr = torch.stack([c[0] for c in crops]).to(device)
    lr = torch.stack([c[1] for c in crops]).to(device)
    # Same dequantization noise at every validation, without touching the training stream.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        bpd = float(model.bpd(hr, lr).mean())
    sr = model.predict(lr, temperature=0.0)
    psnr = float(np.mean([psnr_y(to_image(s), to_image(h), model.config.scale)
                          for s, h in zip(sr, hr, strict=True)]))
    return {"bpd": bpd, "psnr_y_t0": psnr}


class SRTask:
    """Patches from T91 + BSD200 (minus validation), SR models, held-out validation."""

    def __init__(self, opts: SRTrainOptions) -> None:
        self.opts = opts

    def config(self, saved: dict[str, Any] | None) -> SRConfig:
        if saved is not None:
            return SRConfig.from_dict(saved)
        return SRConfig.from_dict({**SRConfig().to_dict(), **self.opts.model_overrides,
                                   "kind": self.opts.model})

    def build(self, config: SRConfig) -> torch.nn.Module:
        return build_sr_model(config)

    def batches(self, rank: int, start_step: int) -> Iterator[dict[str, torch.Tensor]]:
        opts = self.opts
        root = Path(opts.data)
        scale = int(opts.model_overrides.get("scale", 2))
        data = SRPatchDataset([root / name for name in opts.train_sets], opts.patch_size,
                              scale, exclude=validation_files(root))
        # Patch positions and flips come from torch's global RNG: reseed per rank and resume.
        torch.manual_seed(opts.seed * 1000003 + rank * 7919 + start_step)
        while True:
            picks = torch.randint(0, len(data), (opts.batch_size,)).tolist()
            pairs = [data[i] for i in picks]
            yield {"hr": torch.stack([p[0] for p in pairs]),
                   "lr": torch.stack([p[1] for p in pairs])}

    def validate(self, core: torch.nn.Module, device: str) -> dict[str, float]:
        return validate_sr(core, self.opts.data, device, self.opts.seed)

    def save_best(self, core: torch.nn.Module, folder: Path, meta: dict[str, Any]) -> None:
        save_model(core, folder, {**meta, "kind": self.opts.model, "family": "sr"})

    def finalise(self, run: Path, device: str, say: Callable[..., None]) -> dict[str, Any]:
        return {}


def train_sr(opts: SRTrainOptions) -> dict[str, Any]:
    """Train an SR model; returns the summary. Writes everything under ``opts.out``."""
    for name in opts.train_sets:
        if not (Path(opts.data) / name).is_dir():
            raise FileNotFoundError(f"training set {name!r} not found under {opts.data}")
    return fit(opts, SRTask(opts))
