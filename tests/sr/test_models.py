"""SR models (flow and factored), their dequantization bounds, and the data feeding them."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import data_dir
from PIL import Image

from vesselflow.flows import MultiScaleFlow
from vesselflow.sr import (
    RRDBNet,
    SRBenchmark,
    SRConfig,
    SRFactored,
    SRFlow,
    SRPatchDataset,
    bicubic_degrade,
    imresize,
    read_rgb,
    sigmoid_ladj,
)

DATA = data_dir()
TINY = SRConfig(features=8, blocks=1, growth=8, steps=2, hidden=16, deq_steps=2,
                deq_hidden=8, n_mix=3)


def _smooth_pair(n: int = 2, size: int = 16, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """A natural-looking (smooth) HR batch and its MATLAB-bicubic LR, uint8 (N, 3, H, W)."""
    rng = np.random.default_rng(seed)
    hrs, lrs = [], []
    for _ in range(n):
        coarse = rng.uniform(0, 255, (size // 4, size // 4, 3))
        hr = np.clip(np.round(imresize(coarse, 4.0)), 0, 255).astype(np.uint8)
        hr_c, lr = bicubic_degrade(hr, 2)
        hrs.append(torch.from_numpy(hr_c).permute(2, 0, 1))
        lrs.append(torch.from_numpy(lr).permute(2, 0, 1))
    return torch.stack(hrs), torch.stack(lrs)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


# -- conditioning -------------------------------------------------------------------------
def test_rrdb_context_shapes() -> None:
    net = RRDBNet(features=8, blocks=2, growth=4, out_scales=(2, 1, 0.5))
    outs = net(torch.rand(2, 3, 12, 8))
    assert [tuple(o.shape) for o in outs] == [(2, 11, 24, 16), (2, 11, 12, 8), (2, 11, 6, 4)]
    assert net.context_channels == (11, 11, 11)
    with pytest.raises(ValueError):
        net(torch.rand(1, 3, 7, 8))  # LR / 2 would not be an integer size


# -- structure ----------------------------------------------------------------------------
@pytest.mark.parametrize("deq", ["uniform", "variational"])
def test_flow_core_is_reused_unchanged(deq: str) -> None:
    model = SRFlow(SRConfig(**{**TINY.__dict__, "dequantization": deq}))
    assert type(model.flow) is MultiScaleFlow
    flows = [model.flow] + ([model.deq_flow] if model.deq_flow is not None else [])
    for flow in flows:
        for m in flow.modules():
            # Only the core's own layers (and torch building blocks) inside the flows.
            assert m.__class__.__module__.startswith(("vesselflow.flows", "torch.nn")), m
    assert model.flow.config.context_channels == model.rrdb.context_channels


def test_config_round_trip_and_unknown_keys() -> None:
    assert SRConfig.from_dict(TINY.to_dict()) == TINY
    with pytest.raises(ValueError, match="unknown"):
        SRConfig.from_dict({**TINY.to_dict(), "feature": 3})
    with pytest.raises(ValueError):
        SRConfig(dequantization="gaussian")


# -- likelihoods --------------------------------------------------------------------------
@pytest.mark.parametrize("cls,deq", [(SRFlow, "uniform"), (SRFlow, "variational"),
                                     (SRFactored, "uniform")])
def test_log_prob_shapes_and_untrained_bpd(cls: type, deq: str) -> None:
    model = cls(SRConfig(**{**TINY.__dict__, "dequantization": deq}))
    hr, lr = _smooth_pair()
    lp = model.log_prob(hr, lr)
    assert lp.shape == (2,) and torch.isfinite(lp).all()
    loss, metrics = model.loss(hr, lr)
    assert loss.dim() == 0 and metrics["bpd"] == pytest.approx(loss.item())
    # 8 bits/dim is what a uniform model of 8-bit pixels pays; untrained models sit near it.
    assert 1.0 < metrics["bpd"] < 12.0
    with pytest.raises(ValueError):
        model.log_prob(hr, lr[..., :-1])


def test_uniform_bound_equals_hand_computation_for_known_density(
        monkeypatch: pytest.MonkeyPatch) -> None:
    # Untrained, in eval mode, the flow is a Gaussian: actnorm (not yet data-initialised) and
    # couplings are identities, 1x1 convs are rotations, priors N(0, 1) (zero-initialised
    # heads). So log p_flow(t) = sum log N(t; 0, 1) with t = (y + u) / 256 - 1/2 (the
    # constant shift; the bicubic residual is checked in test_residual_shift_keeps_likelihood).
    model = SRFlow(SRConfig(**{**TINY.__dict__, "residual": False})).double().eval()
    hr, lr = _smooth_pair()
    d = hr[0].numel()
    monkeypatch.setattr(model, "dequantize",
                        lambda y, c: (torch.full(y.shape, 0.5, dtype=torch.float64),
                                      torch.zeros(y.shape[0], dtype=torch.float64)))
    t = (hr.double() + 0.5) / 256 - 0.5
    by_hand = (-0.5 * t**2 - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1) - d * math.log(256)
    torch.testing.assert_close(model.log_prob(hr, lr), by_hand, atol=1e-4, rtol=0)
    monkeypatch.undo()

    # Expected uniform bound in closed form, E[t^2] over a bin [a, b] = (a^2 + ab + b^2) / 3,
    # against the exact discrete log-likelihood sum log(Phi(b) - Phi(a)): Jensen says <=.
    a, b = hr.double() / 256 - 0.5, (hr.double() + 1) / 256 - 0.5
    bound = (-(a * a + a * b + b * b) / 6 - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1)
    std = torch.distributions.Normal(0.0, 1.0)
    exact = torch.log(std.cdf(b) - std.cdf(a)).flatten(1).sum(1)
    assert (bound - d * math.log(256) <= exact).all()
    draws = torch.stack([model.log_prob(hr, lr) for _ in range(32)]).mean(0)
    # MC std of the mean is ~0.003 nats here; a mis-centred u (e.g. u - 1/2) would be off ~0.4.
    torch.testing.assert_close(draws, bound - d * math.log(256), atol=0.02, rtol=0)

    # Variational dequantization, untrained (q = logit-normal), is a valid bound as well.
    var = SRFlow(SRConfig(**{**TINY.__dict__, "dequantization": "variational"})).double()
    var.load_state_dict(model.state_dict(), strict=False)
    var.eval()
    v_draws = torch.stack([var.log_prob(hr, lr) for _ in range(16)]).mean(0)
    assert (v_draws <= exact).all()


def test_sigmoid_log_det_matches_autograd() -> None:
    eps = torch.randn(1, 3, 2, 2, dtype=torch.float64) * 3
    jac = torch.autograd.functional.jacobian(torch.sigmoid, eps).reshape(12, 12)
    _, logdet = torch.linalg.slogdet(jac)
    torch.testing.assert_close(sigmoid_ladj(eps), logdet.view(1))


def test_variational_q_density_matches_flow_log_prob() -> None:
    # The one-pass sampler's log q(eps | c) must equal the flow's own log_prob at the sample,
    # with every zero-initialised weight perturbed so nothing is trivially the identity.
    model = SRFlow(SRConfig(**{**TINY.__dict__, "dequantization": "variational"})).double()
    assert model.deq_flow is not None
    with torch.no_grad():
        for p in model.deq_flow.parameters():
            p.add_(0.05 * torch.randn_like(p))
    model.eval()
    c = torch.randn(2, TINY.deq_hidden, 4, 4, dtype=torch.float64)
    eps, log_q = model._sample_deq(c, None)
    assert eps.shape == (2, 3, 8, 8)
    torch.testing.assert_close(log_q, model.deq_flow.log_prob(eps, [c]))
    # u = sigmoid(eps) has density q(eps) / prod sigmoid'(eps): its log-density is finite.
    hr, lr = _smooth_pair(size=8)
    u, log_qu = model.dequantize(hr, model.contexts(lr))
    assert ((u > 0) & (u < 1)).all() and torch.isfinite(log_qu).all()


# -- sampling -----------------------------------------------------------------------------
def test_sample_shapes_and_temperature_zero_is_deterministic() -> None:
    hr, lr = _smooth_pair()
    for model in (SRFlow(TINY).eval(), SRFactored(TINY).eval()):
        s = model.sample(lr, n=3, temperature=0.8)
        assert s.shape == (2, 3, 3, 16, 16) and s.dtype == torch.uint8
        s0 = model.sample(lr, n=2, temperature=0.0)
        assert torch.equal(s0[:, 0], s0[:, 1])
        assert torch.equal(s0, model.sample(lr, n=2, temperature=0.0))
    factored = SRFactored(TINY).eval()
    assert factored.mode(lr).shape == (2, 3, 16, 16)
    assert factored.mean(lr).shape == (2, 3, 16, 16)
    # Untrained means sit on the bicubic estimate, so the mean is already close to HR.
    assert (factored.mean(lr) - hr.double()).abs().mean() < 20


def test_flow_samples_any_lr_size() -> None:
    model = SRFlow(TINY).eval()
    lr = torch.randint(0, 256, (1, 3, 7, 5), dtype=torch.uint8)  # HR 14x10: not divisible by 4
    assert model.sample(lr, n=1, temperature=0.5).shape == (1, 1, 3, 14, 10)


# -- training -----------------------------------------------------------------------------
@pytest.mark.parametrize("cls,deq", [(SRFlow, "uniform"), (SRFlow, "variational"),
                                     (SRFactored, "uniform")])
def test_a_few_training_steps_reduce_the_loss(cls: type, deq: str) -> None:
    model = cls(SRConfig(**{**TINY.__dict__, "dequantization": deq}))
    hr, lr = _smooth_pair(n=4)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)

    def evaluate() -> float:
        torch.manual_seed(123)  # same dequantization noise before and after
        with torch.no_grad():
            return model.loss(hr, lr)[0].item()

    model.loss(hr, lr)  # actnorm's data-dependent initialisation happens here
    before = evaluate()
    for _ in range(15):
        loss, _ = model.loss(hr, lr)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert evaluate() < before - 0.05


# -- data ---------------------------------------------------------------------------------
def test_patch_dataset_alignment_and_errors(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    folder = tmp_path / "imgs"
    folder.mkdir()
    smooth = imresize(rng.uniform(0, 255, (12, 10, 3)), 4.0)
    Image.fromarray(np.clip(smooth, 0, 255).astype(np.uint8)).save(folder / "a.png")
    Image.fromarray(np.clip(smooth[..., 0], 0, 255).astype(np.uint8)).save(folder / "gray.png")
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(folder / "tiny.png")
    ds = SRPatchDataset(folder, patch_size=24, scale=2, augment=False, patches_per_image=3)
    assert len(ds) == 6 and [p.name for p in ds.skipped] == ["tiny.png"]
    assert read_rgb(folder / "gray.png").shape == (48, 40, 3)
    for i in range(len(ds)):
        hr, lr = ds[i]
        assert hr.shape == (3, 24, 24) and lr.shape == (3, 12, 12) and hr.dtype == torch.uint8
        # The LR patch is cut from the whole degraded image: its interior equals the patch's
        # own downscale, which only differs where the kernel reaches over the patch border.
        own = imresize(hr.permute(1, 2, 0).numpy(), 0.5)
        np.testing.assert_array_equal(lr.permute(1, 2, 0).numpy()[3:-3, 3:-3], own[3:-3, 3:-3])
    aug = SRPatchDataset(folder, patch_size=24, scale=2, augment=True)
    for i in range(8):
        hr, lr = aug[i % 2]
        own = imresize(hr.permute(1, 2, 0).numpy(), 0.5).astype(int)
        assert np.abs(lr.permute(1, 2, 0).numpy()[3:-3, 3:-3] - own[3:-3, 3:-3]).max() <= 1
    batch = next(iter(torch.utils.data.DataLoader(ds, batch_size=4)))
    assert batch[0].shape == (4, 3, 24, 24) and batch[1].shape == (4, 3, 12, 12)

    (folder / "broken.png").write_bytes(b"not a png")
    with pytest.raises(OSError, match=r"broken\.png"):
        SRPatchDataset(folder, patch_size=24)
    with pytest.raises(FileNotFoundError, match="missing"):
        SRPatchDataset(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="missing"):
        SRBenchmark(tmp_path, "missing")


def test_benchmark_pairs() -> None:
    root = DATA / "SR"
    if not (root / "Set14").is_dir():
        pytest.skip(f"Set14 not found under {root}")
    bench = SRBenchmark(root, "Set14")
    assert len(bench) == 14
    names = [bench.files[i].stem for i in range(len(bench))]
    name, hr, lr = bench[names.index("bridge")]  # stored as grey (mode L)
    assert name == "bridge" and hr.shape[2] == 3 and hr.dtype == np.uint8
    assert hr.shape[0] == 2 * lr.shape[0] and hr.shape[1] == 2 * lr.shape[1]
    np.testing.assert_array_equal(hr[..., 0], hr[..., 2])


def test_residual_shift_keeps_likelihood_and_starts_at_bicubic() -> None:
    """The bicubic residual is a condition-only shift: log-density of the shifted variable,
    no Jacobian term, and the untrained flow's temperature-0 sample is the bicubic image."""
    model = SRFlow(TINY).double().eval()
    hr, lr = _smooth_pair()
    d = hr[0].numel()

    def fixed(y: torch.Tensor, c: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.full(y.shape, 0.5, dtype=torch.float64),
                torch.zeros(y.shape[0], dtype=torch.float64))

    model.dequantize = fixed  # type: ignore[method-assign]
    base = torch.nn.functional.interpolate(lr.double() / 255, size=hr.shape[-2:],
                                           mode="bicubic", align_corners=False)
    t = (hr.double() + 0.5) / 256 - base
    by_hand = (-0.5 * t**2 - 0.5 * math.log(2 * math.pi)).flatten(1).sum(1) - d * math.log(256)
    torch.testing.assert_close(model.log_prob(hr, lr), by_hand, atol=1e-4, rtol=0)
    sample = model.predict(lr, temperature=0.0)
    assert sample.shape == hr.shape and sample.dtype == torch.uint8
    torch.testing.assert_close(sample.double(), (base * 256).floor().clamp(0, 255), atol=0,
                               rtol=0)


@pytest.mark.parametrize("cls", [SRFlow, SRFactored])
def test_predict_many_equals_predict_per_temperature(cls: type) -> None:
    model = cls(TINY).eval()
    _, lr = _smooth_pair()
    temps = [0.0, 0.5, 1.0]
    many = model.predict_many(lr, temps, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    one = [model.predict(lr, t, g) for t in temps]
    for a, b in zip(many, one, strict=True):
        assert a.dtype == torch.uint8 and torch.equal(a, b)
