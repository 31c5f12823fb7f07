"""Vessel models: likelihoods, the factored normaliser, sampling, save/load."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from conftest import TINY_VESSEL as TINY

from vesselflow.flows import bits_per_dim
from vesselflow.vessel.analysis.sampler import log_likelihood, sample_stats
from vesselflow.vessel.models import VesselConfig, build_model, load_model, save_model


def _perturbed(kind: str, seed: int = 0):
    torch.manual_seed(seed)
    m = build_model(VesselConfig(kind=kind, **TINY))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return m.eval()


def _batch(b: int = 2, h: int = 16, w: int = 20):
    g = torch.Generator().manual_seed(0)
    return {"image": torch.rand(b, 3, h, w, generator=g),
            "label": (torch.rand(b, 1, h, w, generator=g) > 0.8).float(),
            "fov": torch.ones(b, 1, h, w)}


def test_factored_likelihood_is_normalised_and_matches_by_hand() -> None:
    m = _perturbed("factored")
    b = _batch()
    feats = m.features(b["image"])
    log_q1, log_q0 = m._log_q(m.logits(feats))
    torch.testing.assert_close(log_q1.exp() + log_q0.exp(), torch.ones_like(log_q1))
    p = torch.sigmoid(m.logits(feats))
    w1, w0 = 0.9, 0.1
    q1 = p**w1 / (p**w1 + (1 - p) ** w0)
    torch.testing.assert_close(m.prob_map(feats), q1, atol=1e-6, rtol=1e-5)
    y = b["label"]
    ll = (y * q1.log() + (1 - y) * (1 - q1).log()).flatten(1).sum(1)
    torch.testing.assert_close(m.log_likelihood(b["image"], y), ll, atol=1e-4, rtol=1e-5)


def test_factored_bce_is_the_plain_bernoulli_likelihood() -> None:
    """factored-bce: q(y=1) = sigmoid(l), normalised, and its loss is torch's / sklearn's BCE."""
    from sklearn.metrics import log_loss

    from vesselflow.vessel.train.task import TrainOptions, VesselTask

    cfg = VesselTask(TrainOptions(model="factored-bce", out="unused", drive="unused")).config(None)
    assert (cfg.kind, cfg.likelihood) == ("factored", "bernoulli")
    torch.manual_seed(0)
    m = build_model(VesselConfig.from_dict({**cfg.to_dict(), **TINY}))
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.3 * torch.randn_like(p))
    m.eval()
    b = _batch()
    feats = m.features(b["image"])
    logits = m.logits(feats)
    log_q1, log_q0 = m._log_q(logits)
    torch.testing.assert_close(log_q1.exp() + log_q0.exp(), torch.ones_like(log_q1))
    torch.testing.assert_close(m.prob_map(feats), torch.sigmoid(logits))
    y = b["label"]
    loss, metrics = m.loss(b)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, y)
    torch.testing.assert_close(loss, bce)
    p = torch.sigmoid(logits).detach().double().flatten().numpy()
    assert loss.item() == pytest.approx(log_loss(y.flatten().numpy(), p, labels=[0, 1]), rel=1e-5)
    # normalised, so the reported bpd is the training loss in bits
    assert metrics["bpd"] == pytest.approx(loss.item() / math.log(2), rel=1e-5)
    ll = m.log_likelihood(b["image"], y)
    per_pixel = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, reduction="none")
    torch.testing.assert_close(ll, -per_pixel.flatten(1).sum(1))
    with pytest.raises(ValueError, match="likelihood"):
        build_model(VesselConfig(kind="factored", likelihood="focal", **TINY))


def test_cnf_bound_is_finite_negative_and_trains() -> None:
    m = _perturbed("cnf").train()
    b = _batch(4, 16, 16)
    ll = m.log_likelihood(b["image"], b["label"])
    assert ll.shape == (4,) and torch.isfinite(ll).all() and (ll < 0).all()
    opt = torch.optim.Adam(m.parameters(), 3e-3)
    first = None
    for _ in range(30):
        loss, metrics = m(b)
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert metrics["bpd"] < first


@pytest.mark.parametrize("kind", ["cnf", "factored"])
def test_sample_stats_shapes_keep_and_seed(kind: str) -> None:
    m = _perturbed(kind)
    img = np.random.default_rng(0).random((18, 22, 3), dtype=np.float32)
    seen = []
    s = sample_stats(m, img, n=5, batch_size=2, keep=3, seed=1,
                     callback=lambda done, mean: seen.append((done, mean.shape)))
    assert s.mean.shape == s.std.shape == (18, 22) and s.samples.shape == (3, 18, 22)
    assert 0 <= s.mean.min() and s.mean.max() <= 1 and s.samples.dtype == bool
    assert seen[-1] == (5, (18, 22))
    np.testing.assert_allclose(s.std, np.sqrt(s.mean * (1 - s.mean)), atol=1e-6)
    again = sample_stats(m, img, n=5, batch_size=2, keep=3, seed=1)
    np.testing.assert_array_equal(again.samples, s.samples)
    if kind == "cnf":
        assert set(np.unique(s.mean * 5).round(6)) <= set(range(6))  # mean of 5 binary maps
        other = sample_stats(m, img, n=5, batch_size=2, keep=3, seed=2)
        assert (other.samples != s.samples).any()


def test_log_likelihood_pads_bottom_right_with_black_image_and_background_label() -> None:
    m = _perturbed("factored")
    rng = np.random.default_rng(0)
    img = rng.random((18, 22, 3), dtype=np.float32)
    label = rng.random((18, 22)) < 0.3
    ll = log_likelihood(m, img, label)  # 18 x 22 is padded to 20 x 24 (multiples of 4)

    def embedded(top: int, left: int) -> tuple[np.ndarray, np.ndarray]:
        x, y = np.zeros((20, 24, 3), np.float32), np.zeros((20, 24), bool)
        x[top:top + 18, left:left + 22], y[top:top + 18, left:left + 22] = img, label
        return x, y

    assert ll == pytest.approx(log_likelihood(m, *embedded(0, 0)), rel=1e-5)
    assert ll != pytest.approx(log_likelihood(m, *embedded(2, 2)), rel=1e-5)
    # bpd is reported over the original pixels: padding can only make it look worse
    assert bits_per_dim(ll, 18 * 22) > bits_per_dim(ll, 20 * 24) > 0


def test_log_likelihood_on_a_canvas_is_the_zero_padded_square() -> None:
    m = _perturbed("factored")
    img = np.random.default_rng(1).random((18, 22, 3), dtype=np.float32)
    label = np.random.default_rng(2).random((18, 22)) > 0.8
    big_img = np.zeros((24, 24, 3), np.float32)
    big_img[:18, :22] = img
    big_label = np.zeros((24, 24), bool)
    big_label[:18, :22] = label
    on_canvas = log_likelihood(m, img, label, canvas=24)
    assert on_canvas == pytest.approx(log_likelihood(m, big_img, big_label), rel=1e-6)
    assert on_canvas != pytest.approx(log_likelihood(m, img, label), rel=1e-3)
    for bad in (20, 26):  # smaller than the image; not a multiple of 4
        with pytest.raises(ValueError, match="canvas"):
            log_likelihood(m, img, label, canvas=bad)


def test_save_load_round_trip_and_corruption(tmp_path) -> None:
    m = _perturbed("cnf")
    digest = save_model(m, tmp_path / "m", {"threshold": 0.4})
    loaded = load_model(tmp_path / "m")
    assert loaded.sha256 == digest and loaded.threshold == 0.4
    assert loaded.config == m.config
    for k, v in m.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[k], v)
    raw = (tmp_path / "m" / "model.safetensors").read_bytes()
    (tmp_path / "m" / "model.safetensors").write_bytes(raw[:-8] + b"\0" * 8)
    with pytest.raises(ValueError, match="sha256"):
        load_model(tmp_path / "m")
    with pytest.raises(FileNotFoundError, match="not a shipped model"):
        load_model(tmp_path / "nothing")


def test_config_rejects_unknown_keys(tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown"):
        VesselConfig.from_dict({"kind": "cnf", "wdith": 3})
    save_model(_perturbed("factored"), tmp_path / "f")
    cfg = json.loads((tmp_path / "f" / "config.json").read_text())
    assert cfg["model"]["kind"] == "factored" and len(cfg["meta"]["sha256"]) == 64


def test_segment_image_rescales_and_guards_the_fov() -> None:
    from vesselflow.vessel.analysis.pipeline import AnalysisError, segment_image
    from vesselflow.vessel.data.synthetic import synthetic_fundus

    m = _perturbed("cnf")
    d = synthetic_fundus((176, 208), seed=0)
    r = segment_image(m, d["image"], n=2, batch_size=2, keep=1, name="tiny.png")
    assert r.mean.shape == r.fov.shape == r.image.shape[:2] and r.samples.shape[0] == 1
    back = r.at_original_size(0.5)
    assert back.mean.shape == back.mask.shape == (176, 208) and r.fov_source == "detected"
    assert back.samples.shape == (1, 176, 208) and 0 <= back.std.max() <= 0.5
    small_fov = np.zeros((176, 208), bool)
    small_fov[80:84, 100:104] = True
    with pytest.raises(AnalysisError, match=r"tiny\.png: .* only \d px across .* 150 px"):
        segment_image(m, d["image"], n=1, fov=small_fov, name="tiny.png")
    with pytest.raises(AnalysisError, match="empty"):
        segment_image(m, d["image"], n=1, fov=np.zeros((176, 208), bool), name="tiny.png")
    # A 160 px FOV in a 1200x1600 frame passes the minimum but would be enlarged 3.4x.
    yy, xx = np.mgrid[:1200, :1600]
    disc = (yy - 600) ** 2 + (xx - 800) ** 2 <= 80**2
    with pytest.raises(AnalysisError, match=r"big\.png: .*enlarge"):
        segment_image(m, np.zeros((1200, 1600, 3), np.float32), n=1, fov=disc, name="big.png")


def test_dequantization_bound_is_below_the_exact_likelihood() -> None:
    """At initialisation the vessel flow is exactly N(0, I) (zero-initialised couplings and
    priors, orthogonal 1x1 convolutions), so P(y | x) = prod_i Phi(+-0.5) in closed form. For
    ANY dequantizer q the variational bound must stay below it."""
    torch.manual_seed(0)
    m = build_model(VesselConfig(kind="cnf", **TINY)).eval()
    with torch.no_grad():  # an arbitrary q: perturb only the dequantizer and its context net
        for p in [*m.dequantizer.parameters(), *m.deq_context.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    y = (torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    x = torch.rand(1, 3, 8, 8)
    normal = torch.distributions.Normal(0.0, 1.0)
    # log P(v_i > 0.5) for vessels, log P(v_i < 0.5) for background, v ~ N(0, 1).
    exact = (y * torch.log1p(-normal.cdf(torch.tensor(0.5)))
             + (1 - y) * torch.log(normal.cdf(torch.tensor(0.5)))).sum()
    with torch.no_grad():
        v = torch.randn(5, 1, 8, 8)  # the flow really is the standard normal:
        torch.testing.assert_close(m.flow.log_prob(v, m.features(x)),
                                   normal.log_prob(v).flatten(1).sum(1), atol=1e-4, rtol=1e-5)
        bounds = m.log_likelihood(x.expand(400, -1, -1, -1), y.expand(400, -1, -1, -1))
    mean, sem = bounds.mean(), bounds.std() / 20
    assert mean <= exact + 3 * sem, (float(mean), float(exact))


def test_trained_dequantizer_bound_approaches_the_exact_likelihood_from_below() -> None:
    """The bound test that can fail: with the vessel flow at its exact N(0, I) initialisation
    (P(y | x) = prod_i Phi(+-0.5) in closed form), train only q briefly on a tiny label. Then
    the one-sample bound must stay below log P, and the importance-weighted estimate
    log mean_k exp(bound_k) (K = 100) must rise towards log P from below, closing most of the
    one-sample gap. A wrong log q(v) (e.g. no softplus Jacobian, or a flipped sign) makes
    the trained estimates overshoot log P or stall far below it."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: one thread is faster, and 2 oversubscribe CI
    try:
        _check_trained_dequantizer()
    finally:
        torch.set_num_threads(threads)


def _check_trained_dequantizer() -> None:
    torch.manual_seed(0)
    m = build_model(VesselConfig(kind="cnf", width=4, steps=1, hidden=(4, 4), deq_steps=2,
                                 deq_hidden=16, deq_width=8)).eval()
    y = (torch.rand(1, 1, 8, 8, generator=torch.Generator().manual_seed(1)) > 0.7).float()
    x = torch.rand(1, 3, 8, 8)
    normal = torch.distributions.Normal(0.0, 1.0)
    half = torch.tensor(0.5)
    exact = float((y * torch.log1p(-normal.cdf(half))
                   + (1 - y) * torch.log(normal.cdf(half))).sum())
    with torch.no_grad():
        feats = m.features(x)

    def bounds(n: int) -> torch.Tensor:
        return m.log_likelihood(x.expand(n, -1, -1, -1), y.expand(n, -1, -1, -1),
                                feats=[f.expand(n, -1, -1, -1) for f in feats])

    q_params = [*m.dequantizer.parameters(), *m.deq_context.parameters()]
    for p in m.parameters():
        p.requires_grad_(False)
    for p in q_params:
        p.requires_grad_(True)
    opt = torch.optim.Adam(q_params, 1e-2)
    for _ in range(80):  # only q learns; the flow stays the exact standard normal
        loss = -bounds(16).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        v = torch.randn(5, 1, 8, 8)
        torch.testing.assert_close(m.flow.log_prob(v, feats),
                                   normal.log_prob(v).flatten(1).sum(1), atol=1e-4, rtol=1e-5)
        b = bounds(2000).view(20, 100).double()
    one, one_sem = float(b.mean()), float(b.std() / math.sqrt(b.numel()))
    iw = torch.logsumexp(b, 1) - math.log(100)  # 20 independent K=100 estimates
    iw_mean, iw_sem = float(iw.mean()), float(iw.std() / math.sqrt(iw.numel()))
    facts = (one, iw_mean, exact)
    assert one <= exact + 3 * one_sem, facts            # the one-sample bound is a bound
    assert iw_mean <= exact + 3 * iw_sem, facts         # so is E[IW_K]
    assert iw_mean > one + 5 * one_sem, facts           # K = 100 tightens it ...
    assert exact - iw_mean < 0.5 * (exact - one), facts  # ... closing most of the gap
    assert exact - one < 3.0, facts                     # and q did learn (gap < 3 nats of 64 px)
