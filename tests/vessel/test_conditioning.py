"""Both conditioning networks (the paper's VGG-like one and the compact U-Net) in the models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VESSEL

from vesselflow.vessel.models import VesselConfig, build_model, load_model, save_model
from vesselflow.vessel.models.conditioning import CONDITIONINGS, build_conditioning


@pytest.mark.parametrize("kind", CONDITIONINGS)
@pytest.mark.parametrize("norm", ["batch", "group"])
def test_feature_shapes_on_sizes_divisible_by_4(kind: str, norm: str) -> None:
    net = build_conditioning(kind, 16, norm).eval()
    a, b = net(torch.rand(2, 3, 36, 44))
    assert a.shape == (2, net.channels[0], 18, 22) and b.shape == (2, net.channels[1], 9, 11)


def test_unet_is_compact_and_sees_further() -> None:
    """A pixel 40 px away changes the U-Net's features at the centre, not the VGG net's."""
    torch.manual_seed(0)
    unet, vgg = build_conditioning("unet", 32, "batch"), build_conditioning("vgg", 32, "batch")
    assert sum(p.numel() for p in unet.parameters()) < 500_000
    x = torch.rand(1, 3, 128, 128)
    y = x.clone()
    y[..., 62:67, 102:107] += 0.5  # a 5x5 block 40 px right of the centre
    for net, far in ((unet, True), (vgg, False)):
        net.eval()
        with torch.no_grad():
            change = (net(x)[1] - net(y)[1])[..., 16, 16].abs().max().item()
        assert (change > 1e-6 if far else change == 0.0), (type(net).__name__, change)


@pytest.mark.parametrize("kind", ["cnf", "factored"])
def test_unet_models_train_and_round_trip(kind: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    cfg = VesselConfig(kind=kind, conditioning="unet", input_norm="fov-standardise",
                       **TINY_VESSEL)
    model = build_model(cfg)
    batch = {"image": torch.rand(2, 3, 32, 32), "label": (torch.rand(2, 1, 32, 32) > 0.8).float()}
    loss, _ = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    assert all(p.grad is not None for p in model.cond.parameters())
    save_model(model.eval(), tmp_path / "m", {"threshold": 0.5})
    loaded = load_model(tmp_path / "m")
    assert loaded.config.conditioning == "unet" and loaded.config.input_norm == "fov-standardise"
    with torch.no_grad():
        f0 = model.features(batch["image"])
        f1 = loaded.model.features(batch["image"])
    for u, v in zip(f0, f1, strict=True):
        torch.testing.assert_close(u, v)


def test_old_configs_load_with_the_paper_network() -> None:
    cfg = VesselConfig.from_dict({"kind": "cnf", "width": 8})
    assert cfg.conditioning == "vgg" and cfg.input_norm == "none"
    with pytest.raises(ValueError, match="input_norm"):
        build_model(VesselConfig(input_norm="zscore", **TINY_VESSEL))
    with pytest.raises(ValueError, match="conditioning"):
        build_model(VesselConfig(conditioning="resnet", **TINY_VESSEL))


def test_segment_applies_the_models_input_norm(monkeypatch) -> None:
    """A model trained with fov-standardise gets it at inference without being asked."""
    from vesselflow.vessel.analysis import pipeline, sampler

    seen = {}

    def fake_stats(model, x, **kw):
        seen["x"] = np.asarray(x)
        h, w = x.shape[:2]
        z = np.zeros((h, w), np.float32)
        return sampler.SampleStats(z, z, None, 1)

    monkeypatch.setattr(pipeline, "sample_stats", fake_stats)
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:176, :176]
    fov = (yy - 88) ** 2 + (xx - 88) ** 2 < 82**2
    image = (0.9 * rng.random((176, 176, 3)) * fov[..., None]).astype(np.float32)
    for norm, changed in (("none", False), ("fov-standardise", True)):
        model = build_model(VesselConfig(input_norm=norm, **TINY_VESSEL)).eval()
        pipeline.segment_image(model, image, n=1, fov=fov, rescale=False)
        assert (np.abs(seen["x"] - image).max() > 0.05) == changed, norm
