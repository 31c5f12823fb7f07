"""Training a vessel model (``vesselflow train``): DRIVE patches, the vessel models and
validation on the fixed DRIVE split, run by the generic loop :func:`vesselflow.training.loop.fit`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vesselflow.io.weights import save_model
from vesselflow.training.loop import LoopOptions, fit
from vesselflow.vessel.models import VesselConfig, build_model
from vesselflow.vessel.models.vessel import TRAIN_PRESETS
from vesselflow.vessel.train.validation import THRESHOLD_SAMPLES, choose_thresholds, validate


@dataclass
class TrainOptions(LoopOptions):
    """Options of a vessel training run: the common ones plus the DRIVE folder."""

    drive: Path = field(kw_only=True)
    val_samples: int = 4
    # Augmentation (the camera-robust recipe): "none" = the paper's geometry only; "camera" adds the
    # photometric augmentation of vesselflow.vessel.data.photometric. ``scale`` is the range
    # of the affine's isotropic scale (paper: 0.8-1.2).
    photometric: str = "none"
    scale: tuple[float, float] = (0.8, 1.2)


class VesselTask:
    """DRIVE patches, :mod:`vesselflow.vessel.models` and validation on the fixed DRIVE split."""

    # The augmentation class; benchmarks/bench_train.py swaps in the whole-image
    # implementation to measure "before".
    augment_class: type | None = None

    def __init__(self, opts: TrainOptions) -> None:
        self.opts = opts
        self.model_config: VesselConfig | None = None

    def config(self, saved: dict[str, Any] | None) -> VesselConfig:
        if saved is not None:
            self.model_config = VesselConfig.from_dict(saved)
            return self.model_config
        if self.opts.model not in TRAIN_PRESETS:
            raise ValueError(f"unknown model {self.opts.model!r}: one of "
                             f"{', '.join(TRAIN_PRESETS)}")
        preset = TRAIN_PRESETS[self.opts.model]
        self.model_config = VesselConfig.from_dict(
            {**VesselConfig().to_dict(), **self.opts.model_overrides, **preset,
             "scale_range": tuple(float(v) for v in self.opts.scale)})
        return self.model_config

    def build(self, config: VesselConfig) -> torch.nn.Module:
        return build_model(config)

    def batches(self, rank: int, start_step: int) -> Iterator[dict[str, torch.Tensor]]:
        """Endless stream of augmented training batches (dict of (B, C, P, P) tensors)."""
        from vesselflow.vessel.data.augment import TrainAugment
        from vesselflow.vessel.data.drive import DriveDataset
        from vesselflow.vessel.data.photometric import PHOTOMETRIC, PhotometricAugment

        opts = self.opts
        data = DriveDataset(opts.drive, "train")
        items = [data[i] for i in range(len(data))]
        # Different seed per rank and per resume point: no rank or restart repeats a stream.
        seed = opts.seed * 1000003 + rank * 7919 + start_step
        if opts.photometric not in PHOTOMETRIC:
            raise ValueError(f"photometric must be one of {PHOTOMETRIC}, got "
                             f"{opts.photometric!r}")
        extra: dict[str, Any] = {}
        if opts.photometric == "camera":
            extra["photometric"] = PhotometricAugment()
        norm = self.model_config.input_norm if self.model_config is not None else "none"
        if norm != "none":
            extra["input_norm"] = norm
        aug = (self.augment_class or TrainAugment)(patch_size=opts.patch_size, seed=seed,
                                                   scale=tuple(opts.scale), **extra)
        rng = np.random.default_rng(seed)
        while True:
            picks = rng.integers(0, len(items), size=opts.batch_size)
            samples = [aug({k: items[i][k] for k in ("image", "label", "fov")}) for i in picks]
            yield {k: torch.stack([torch.as_tensor(s[k]) for s in samples])
                   for k in samples[0]}

    def validate(self, core: torch.nn.Module, device: str) -> dict[str, float]:
        return validate(core, self.opts.drive, device, n_samples=self.opts.val_samples,
                        seed=self.opts.seed)

    def save_best(self, core: torch.nn.Module, folder: Path, meta: dict[str, Any]) -> None:
        save_model(core, folder, {**meta, "kind": self.opts.model})

    def finalise(self, run: Path, device: str, say: Callable[..., None]) -> dict[str, Any]:
        return _finalise_best(run, self.opts, device, say)


def train(opts: TrainOptions) -> dict[str, Any]:
    """Train a vessel model; returns a summary. Writes everything under ``opts.out``."""
    return fit(opts, VesselTask(opts))


def _finalise_best(run: Path, opts: TrainOptions, device: str, say) -> dict[str, Any]:
    """Choose the a-priori thresholds on the validation split, one per sample count
    (:func:`choose_thresholds`; the one at THRESHOLD_SAMPLES, the evaluation's count, is the
    model's ``threshold``) and store them with the model."""
    import json

    from vesselflow.vessel.models import load_model

    loaded = load_model(run / "best", device=device)
    say("choosing the a-priori thresholds on the validation split ...", flush=True)
    table = choose_thresholds(loaded.model, opts.drive, device, seed=opts.seed)
    thr = table[str(THRESHOLD_SAMPLES)]
    cfg = json.loads((run / "best" / "config.json").read_text())
    meta = {**cfg["meta"], "threshold": thr["threshold"], "val_f1_at_threshold": thr["f1"],
            "threshold_samples": THRESHOLD_SAMPLES, "thresholds": table}
    save_model(loaded.model, run / "best", meta)
    return {"threshold": thr["threshold"], "val_f1": thr["f1"]}
