"""Discretized logistic mixture: normalisation, edge bins, stability, sampling."""

from __future__ import annotations

import math

import pytest
import torch

from vesselflow.sr.logistic import (
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_mean,
    discretized_logistic_mixture_mode,
    sample_discretized_logistic_mixture,
)

K = 3


def _params(n: int = 2, h: int = 3, w: int = 2, spread: float = 1.0, seed: int = 0,
            dtype: torch.dtype = torch.float64) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n, 3, 3, K, h, w, generator=g, dtype=dtype)
    p[:, :, 1] *= spread                 # means, [-1, 1] space
    p[:, :, 2] = p[:, :, 2] * 2 - 2.5    # log-scales from very narrow to broad
    return p.reshape(n, 9 * K, h, w)


def _all_values_log_prob(params: torch.Tensor) -> torch.Tensor:
    """log P(v) for every v, per channel and pixel: (256, N, 3, H, W).

    Every (value, image, channel, pixel) becomes its own single-channel 1x1 batch element, so
    the library's per-image sum reduces to exactly one term.
    """
    n, _, h, w = params.shape
    per = params.view(n, 3, 3 * K, h, w).permute(0, 1, 3, 4, 2).reshape(-1, 3 * K, 1, 1)
    m = per.shape[0]
    values = torch.arange(256, dtype=params.dtype).repeat_interleave(m).view(-1, 1, 1, 1)
    lp = discretized_logistic_mixture_log_prob(values, per.repeat(256, 1, 1, 1), K)
    return lp.view(256, n, 3, h, w)


@pytest.mark.parametrize("spread", [0.5, 5.0])
def test_probabilities_sum_to_one(spread: float) -> None:
    # spread 5 puts most components far beyond the [-1, 1] edges: only the edge bins see them.
    for dtype in (torch.float64, torch.float32):
        lp = _all_values_log_prob(_params(spread=spread, dtype=dtype))
        total = lp.exp().sum(dim=0)
        torch.testing.assert_close(total, torch.ones_like(total), atol=1e-5, rtol=0)


def test_edge_bins_absorb_tails() -> None:
    p = torch.zeros(1, 3, 3, 1, 1, 1, dtype=torch.float64)
    p[:, :, 1] = torch.tensor([-4.0, 4.0, 0.0]).view(1, 3, 1, 1, 1)
    p[:, :, 2] = math.log(0.05)
    p = p.view(1, 9, 1, 1)
    x = torch.tensor([0.0, 255.0, 128.0], dtype=torch.float64).view(1, 3, 1, 1)
    lp = discretized_logistic_mixture_log_prob(x, p, 1)
    # mean far below 0 -> v = 0 has probability ~1; far above 255 -> v = 255 ~1.
    # v = 128 under mean 0 is the bin [0, 2/255] in [-1, 1] space: sigmoid(2/255/s) - 1/2.
    expected_mid = math.log(1 / (1 + math.exp(-(2 / 255) / 0.05)) - 0.5)
    assert lp.item() == pytest.approx(expected_mid, abs=1e-9)
    # ... and a mean beyond the far edge leaves the opposite edge bin almost nothing.
    x_far = torch.tensor([255.0, 0.0, 128.0], dtype=torch.float64).view(1, 3, 1, 1)
    assert discretized_logistic_mixture_log_prob(x_far, p, 1).item() < -100


def test_matches_manual_cdf_difference() -> None:
    p = _params(n=1, h=1, w=1, spread=0.7)
    x = torch.tensor([37.0, 0.0, 255.0], dtype=torch.float64).view(1, 3, 1, 1)
    view = p.view(3, 3, K)
    manual = 0.0
    for c in range(3):
        w = torch.softmax(view[c, 0], 0)
        mu, s = view[c, 1], torch.exp(view[c, 2].clamp(min=-7))
        y = x[0, c, 0, 0] / 127.5 - 1

        def cdf(t: torch.Tensor, mu=mu, s=s, w=w) -> torch.Tensor:
            return (w * torch.sigmoid((t - mu) / s)).sum()

        lo = cdf(y - 1 / 255) if x[0, c] > 0 else torch.tensor(0.0, dtype=torch.float64)
        hi = cdf(y + 1 / 255) if x[0, c] < 255 else torch.tensor(1.0, dtype=torch.float64)
        manual += torch.log(hi - lo).item()
    lp = discretized_logistic_mixture_log_prob(x, p, K)
    assert lp.item() == pytest.approx(manual, abs=1e-9)
    # uint8 input and already-scaled input agree
    lp_u8 = discretized_logistic_mixture_log_prob(x.to(torch.uint8), p, K)
    lp_sc = discretized_logistic_mixture_log_prob(x / 127.5 - 1, p, K, scaled=True)
    assert lp_u8.item() == pytest.approx(manual, abs=1e-9)
    assert lp_sc.item() == pytest.approx(manual, abs=1e-9)


def test_gradients_finite_under_extreme_params() -> None:
    p = _params(n=2, h=4, w=4, spread=20.0, dtype=torch.float32)
    p.view(2, 3, 3, K, 4, 4)[:, :, 2] *= 10  # log-scales from -7 (clamped) to very broad
    p.requires_grad_(True)
    x = torch.randint(0, 256, (2, 3, 4, 4))
    x[0, 0] = 0
    x[1, 0] = 255
    lp = discretized_logistic_mixture_log_prob(x, p, K)
    lp.sum().backward()
    assert torch.isfinite(lp).all()
    assert torch.isfinite(p.grad).all()


def test_sampling_mode_mean() -> None:
    p = _params(n=2, h=5, w=5, spread=0.5)
    s0 = sample_discretized_logistic_mixture(p, K, temperature=0.0)
    assert torch.equal(s0, sample_discretized_logistic_mixture(p, K, temperature=0.0))
    g = torch.Generator().manual_seed(0)
    s1 = sample_discretized_logistic_mixture(p, K, 1.0, generator=g)
    assert s1.shape == (2, 3, 5, 5)
    assert torch.equal(s1, s1.round()) and s1.min() >= 0 and s1.max() <= 255
    lp = _all_values_log_prob(p)                      # (256, N, 3, H, W)
    mode = discretized_logistic_mixture_mode(p, K)
    torch.testing.assert_close(mode, lp.argmax(dim=0).to(mode.dtype))
    v = torch.arange(256, dtype=torch.float64).view(-1, 1, 1, 1, 1)
    torch.testing.assert_close(discretized_logistic_mixture_mean(p, K),
                               (v * lp.exp()).sum(dim=0), atol=0.5, rtol=0)


@pytest.mark.parametrize("log_scale", [-7.0, -5.0, -3.0, -1.0, 0.5])
def test_closed_form_mean_is_within_half_a_grey_level(log_scale: float) -> None:
    """The closed-form mean against the brute-force sum over all 256 bins, from scales far
    below one grey level (error up to 1/2) to wide ones (error < 0.01), edges included."""
    g = torch.Generator().manual_seed(3)
    p = torch.randn(2, 3 * 3 * K, 6, 6, generator=g, dtype=torch.float64).view(2, 3, 3, K, 6, 6)
    p[:, :, 1] = torch.rand(2, 3, K, 6, 6, generator=g, dtype=torch.float64) * 2.4 - 1.2
    p[:, :, 2] = log_scale
    p = p.view(2, -1, 6, 6)
    v = torch.arange(256, dtype=torch.float64).view(-1, 1, 1, 1, 1)
    brute = (v * _all_values_log_prob(p).exp()).sum(dim=0)
    err = (discretized_logistic_mixture_mean(p, K) - brute).abs().max().item()
    assert err <= (0.5 if log_scale < math.log(1 / 127.5) else 0.01)


def test_sampling_frequencies_match_probabilities() -> None:
    # One pixel-channel, many draws: the empirical histogram follows P(v).
    p = torch.zeros(1, 3, 3, 2, 1, 1, dtype=torch.float64)
    p[0, :, 0] = torch.tensor([0.0, 1.0]).view(2, 1, 1)
    p[0, :, 1] = torch.tensor([-0.5, 0.6]).view(2, 1, 1)
    p[0, :, 2] = math.log(0.1)
    p = p.view(1, 18, 1, 1)
    g = torch.Generator().manual_seed(1)
    n = 20000
    draws = sample_discretized_logistic_mixture(p.expand(n, -1, -1, -1), 2, 1.0, g)[:, 0, 0, 0]
    emp_mean = draws.mean().item()
    exact = discretized_logistic_mixture_mean(p, 2)[0, 0, 0, 0].item()
    assert emp_mean == pytest.approx(exact, abs=1.5)
