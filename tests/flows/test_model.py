"""Model-level behaviour of MultiScaleFlow: log_prob, sampling, temperature, conditioning."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from vesselflow.flows import FlowConfig, MultiScaleFlow, bits_per_dim, cached_context


def _flow(channels: int = 1, seed: int = 0) -> MultiScaleFlow:
    torch.manual_seed(seed)
    flow = MultiScaleFlow(FlowConfig(channels=channels, levels=2, steps=2, hidden=8,
                                     context_channels=(3, 5)))
    with torch.no_grad():  # leave the zero-initialised (identity) start so context matters
        for p in flow.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return flow.eval()


def _ctx(b: int, h: int = 8, w: int = 8, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(b, 3, h // 2, w // 2, generator=g),
            torch.randn(b, 5, h // 4, w // 4, generator=g)]


@pytest.mark.parametrize("channels", [1, 3])
def test_log_det_matches_the_brute_force_jacobian(channels: int) -> None:
    # Independent of the layers' own log-det bookkeeping: log|det dz/dx| by autograd.
    flow = _flow(channels).double()
    x = torch.randn(1, channels, 4, 4, dtype=torch.float64)
    c = [t.double() for t in _ctx(1, 4, 4)]
    _, ladj = flow(x, c)
    jac = torch.autograd.functional.jacobian(lambda v: flow(v, c)[0].reshape(-1), x)
    _, logabsdet = torch.linalg.slogdet(jac.reshape(x.numel(), x.numel()))
    torch.testing.assert_close(ladj[0], logabsdet, atol=1e-6, rtol=1e-6)
    lp = flow.log_prob(x, c)
    assert lp.shape == (1,) and torch.isfinite(lp).all()


def test_bits_per_dim_of_a_known_likelihood() -> None:
    # 16 dims at probability 1/2 each: -16 ln 2 nats = 1 bit per dimension
    assert bits_per_dim(torch.tensor([-16 * math.log(2.0)]), 16).item() == pytest.approx(1.0)
    assert bits_per_dim(-8 * math.log(2.0), 4) == pytest.approx(2.0)


def test_sample_shapes_and_contexts_broadcast() -> None:
    flow = _flow(3)
    c = _ctx(2, 8, 12)
    s = flow.sample(c, n=5, temperature=0.7)
    assert s.shape == (2, 5, 3, 8, 12)
    # Sample i * n + j uses context i: sampling each context alone gives the same mode.
    both = flow.sample(c, n=2, temperature=0.0)
    first = flow.sample([t[:1] for t in c], n=2, temperature=0.0)
    torch.testing.assert_close(both[0], first[0])


def test_temperature_zero_is_deterministic_and_temperature_spreads() -> None:
    flow = _flow()
    c = _ctx(1)
    a = flow.sample(c, n=3, temperature=0.0, generator=torch.Generator().manual_seed(1))
    b = flow.sample(c, n=3, temperature=0.0, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[0, 0], a[0, 2])
    spread = [flow.sample(c, n=64, temperature=t).std(dim=1).mean() for t in (0.3, 1.0)]
    assert spread[0] < spread[1]


def test_a_different_context_gives_different_samples() -> None:
    flow = _flow()
    g = lambda: torch.Generator().manual_seed(7)  # noqa: E731 - same noise both times
    s1 = flow.sample(_ctx(1, seed=0), n=2, generator=g())
    s2 = flow.sample(_ctx(1, seed=1), n=2, generator=g())
    assert (s1 - s2).abs().mean() > 1e-3


def test_samples_invert_to_their_latents_and_have_matching_density() -> None:
    """log_prob(sample) equals prior density of its latents + forward log-det."""
    flow = _flow()
    c = _ctx(1)
    x = flow.sample(c, n=4)[0]
    z, ladj = flow(x, c)
    x_back, ladj_inv = flow.inverse(z, c)
    torch.testing.assert_close(x_back, x, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-4, rtol=1e-5)


def test_rsample_log_prob_matches_log_prob_and_is_differentiable() -> None:
    flow = _flow()
    c = [t.requires_grad_() for t in _ctx(2)]
    x, lp = flow.rsample_with_log_prob(c, n=3)
    assert x.shape == (2, 3, 1, 8, 8) and lp.shape == (2, 3)
    ref = flow.log_prob(x.reshape(6, 1, 8, 8).detach(), [t.detach() for t in c])
    torch.testing.assert_close(lp.reshape(6).detach(), ref, atol=1e-4, rtol=1e-5)
    (x.sum() + lp.sum()).backward()
    assert all(t.grad is not None and t.grad.abs().sum() > 0 for t in c)


def test_cached_context_changes_nothing_but_speed() -> None:
    flow = _flow()
    c = _ctx(1)
    with torch.no_grad():
        ref = flow.log_prob(torch.ones(2, 1, 8, 8), c)
        with cached_context():
            for _ in range(2):
                torch.testing.assert_close(flow.log_prob(torch.ones(2, 1, 8, 8), c), ref)


def test_unconditional_flow_needs_a_size() -> None:
    flow = MultiScaleFlow(FlowConfig(channels=1, levels=1, steps=1, hidden=4))
    assert flow.sample(None, n=2, size=(4, 6)).shape == (1, 2, 1, 4, 6)
    with pytest.raises(ValueError, match="size"):
        flow.sample(None, n=2)


def _toy(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """y = 2 x + u + e on 4x4 images: u ~ N(0,1) shared by all pixels, e ~ N(0, 0.1^2).

    Given x, each pixel is N(2 x_i, 1.01): that is the best any factorized Gaussian can do.
    The joint has one strongly correlated direction a flow can learn.
    """
    x = torch.randn(n, 1, 4, 4, generator=g)
    u = torch.randn(n, 1, 1, 1, generator=g)
    return x, 2 * x + u + 0.1 * torch.randn(n, 1, 4, 4, generator=g)


def test_tiny_conditional_flow_beats_the_best_factorized_gaussian() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    flow = MultiScaleFlow(FlowConfig(channels=1, levels=2, steps=2, hidden=16,
                                     context_channels=(4, 16)))

    def contexts(x: torch.Tensor) -> list[torch.Tensor]:
        return [F.pixel_unshuffle(x, 2), F.pixel_unshuffle(x, 4)]

    opt = torch.optim.Adam(flow.parameters(), lr=3e-3)
    flow.train()
    for _ in range(300):
        x, y = _toy(128, g)
        loss = -flow.log_prob(y, contexts(x)).mean() / 16
        opt.zero_grad()
        loss.backward()
        opt.step()
    flow.eval()
    x, y = _toy(4096, torch.Generator().manual_seed(99))
    with torch.no_grad():
        flow_nll = -flow.log_prob(y, contexts(x)).mean().item() / 16
    # Closed form: held-out NLL per dimension of the optimal factorized model N(2x, 1.01).
    factorized_nll = 0.5 * math.log(2 * math.pi * math.e * 1.01)
    assert flow_nll < factorized_nll - 0.3, (flow_nll, factorized_nll)
