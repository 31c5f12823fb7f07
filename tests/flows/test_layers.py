"""One harness over every registered invertible layer (float64, tiny inputs).

For each layer: exact inverse both ways, log-det against the autograd Jacobian per sample in
both directions, gradients reach every parameter (and the context), a state-dict round trip
(torch and safetensors) reproduces outputs, and the same weights work at two spatial sizes.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from vesselflow import flows
from vesselflow.flows import LAYER_REGISTRY


@pytest.fixture(autouse=True)
def _float64():
    """float64 for this module only: a module-level switch would leak into every other test
    (pytest imports all test modules before running any)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@dataclass
class Case:
    make: Callable[[], flows.FlowLayer]
    channels: int
    # Context channels per level (None: unconditional); a tuple means a multi-level context.
    context: int | tuple[int, ...] | None = None
    sizes: tuple[tuple[int, int], ...] = ((4, 4), (8, 4))


CASES: dict[str, Case] = {
    "ActNorm": Case(lambda: flows.ActNorm(3), 3),
    "InvertibleConv1x1": Case(lambda: flows.InvertibleConv1x1(4), 4),
    "ConditionalAffineCoupling": Case(
        lambda: flows.ConditionalAffineCoupling(4, context_channels=3, hidden=8), 4, 3),
    "ConditionalAdditiveCoupling": Case(
        lambda: flows.ConditionalAdditiveCoupling(5, context_channels=2, hidden=8), 5, 2),
    "Squeeze": Case(lambda: flows.Squeeze(), 2),
    "FlowStep": Case(lambda: flows.FlowStep(4, context_channels=3, hidden=8), 4, 3),
    "FlowSequence": Case(lambda: flows.FlowSequence(
        [flows.FlowStep(4, 2, 8, coupling="additive"), flows.FlowStep(4, 2, 8)]), 4, 2),
    "MultiScaleFlow": Case(lambda: flows.MultiScaleFlow(flows.FlowConfig(
        channels=1, levels=2, steps=2, hidden=8, context_channels=(3, 2))), 1, (3, 2)),
}


def _perturb(module: nn.Module, std: float = 0.2) -> None:
    """Zero-initialised output convs make couplings the identity: perturb so tests can fail."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(std * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _context(case: Case, batch: int, size: tuple[int, int], seed: int = 2):
    g = torch.Generator().manual_seed(seed)
    if case.context is None:
        return None
    if isinstance(case.context, int):
        return torch.randn(batch, case.context, *size, generator=g)
    return [torch.randn(batch, c, size[0] // 2 ** (i + 1), size[1] // 2 ** (i + 1), generator=g)
            for i, c in enumerate(case.context)]


def _select(context, i: int):
    if context is None:
        return None
    if isinstance(context, Tensor):
        return context[i : i + 1]
    return [c[i : i + 1] for c in context]


def _build(name: str, size: tuple[int, int] = (4, 4), batch: int = 2):
    """A perturbed layer with actnorm initialised (on data in training) and set to eval mode."""
    case = CASES[name]
    torch.manual_seed(0)
    layer = case.make()
    _perturb(layer)
    x = torch.randn(batch, case.channels, *size) * 1.5 + 0.3
    c = _context(case, batch, size)
    layer.train()
    layer(x, c)  # data-dependent initialisation, where the layer has any
    layer.eval()
    return layer, x, c


def test_every_registered_layer_has_a_case() -> None:
    assert set(LAYER_REGISTRY) == set(CASES), "add a harness case for every invertible layer"


@pytest.mark.parametrize("name", sorted(CASES))
def test_inverse_is_exact_both_ways(name: str) -> None:
    layer, x, c = _build(name)
    z, _ = layer(x, c)
    x2, _ = layer.inverse(z, c)
    torch.testing.assert_close(x2, x, atol=1e-10, rtol=0)
    z_other = z + 0.1 * torch.randn_like(z)  # a latent that is not the image of x
    z2, _ = layer(layer.inverse(z_other, c)[0], c)
    torch.testing.assert_close(z2, z_other, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("direction", ["forward", "inverse"])
def test_logdet_matches_autograd_jacobian(name: str, direction: str) -> None:
    layer, x, c = _build(name)
    fn = layer if direction == "forward" else layer.inverse
    if direction == "inverse":
        z = layer(x, c)[0]
        x = z + 0.1 * torch.randn_like(z)  # a point in the latent space
    _, ladj = fn(x, c)
    assert ladj.shape == (x.shape[0],)
    for i in range(x.shape[0]):
        ci = _select(c, i)

        def f(xi: Tensor, ci=ci) -> Tensor:
            return fn(xi.view(1, *x.shape[1:]), ci)[0].reshape(-1)

        jac = torch.autograd.functional.jacobian(f, x[i].reshape(-1))
        sign, logabsdet = torch.linalg.slogdet(jac)
        assert sign != 0
        torch.testing.assert_close(ladj[i], logabsdet, atol=1e-8, rtol=1e-8)


@pytest.mark.parametrize("name", sorted(CASES))
def test_inverse_logdet_is_negative_of_forward(name: str) -> None:
    layer, x, c = _build(name)
    z, ladj = layer(x, c)
    _, ladj_inv = layer.inverse(z, c)
    torch.testing.assert_close(ladj_inv, -ladj, atol=1e-10, rtol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradients_reach_every_parameter_and_context(name: str) -> None:
    layer, x, c = _build(name)
    layer.train()
    x.requires_grad_()
    if c is not None:
        c = [t.requires_grad_() for t in c] if isinstance(c, list) else c.requires_grad_()
    z, ladj = layer(x, c)
    loss = z.pow(3).sum() + ladj.sum()
    if isinstance(layer, flows.MultiScaleFlow):
        loss = loss + layer.log_prob(x, c).sum()  # priors live outside the bijection
    loss.backward()
    for pname, p in layer.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, f"no gradient reaches {pname}"
    for t in [] if c is None else (c if isinstance(c, list) else [c]):
        assert t.grad is not None and t.grad.abs().sum() > 0, "no gradient reaches the context"
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("fmt", ["torch", "safetensors"])
def test_state_dict_round_trip(name: str, fmt: str, tmp_path) -> None:
    layer, x, c = _build(name)
    z, ladj = layer(x, c)
    torch.manual_seed(123)  # a fresh, differently initialised copy
    fresh = CASES[name].make()
    if fmt == "torch":
        buf = io.BytesIO()
        torch.save(layer.state_dict(), buf)
        buf.seek(0)
        fresh.load_state_dict(torch.load(buf))
    else:
        save_file({k: v.contiguous() for k, v in layer.state_dict().items()},
                  tmp_path / "w.safetensors")
        fresh.load_state_dict(load_file(tmp_path / "w.safetensors"))
    # Training mode on purpose: a loaded actnorm must not re-initialise from this batch.
    fresh.train()
    fresh(x * 3.0, c)
    fresh.eval()
    z3, ladj3 = fresh(x, c)
    torch.testing.assert_close(z3, z, atol=1e-12, rtol=0)
    torch.testing.assert_close(ladj3, ladj, atol=1e-12, rtol=0)


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_weights_work_at_two_sizes(name: str) -> None:
    layer, _, _ = _build(name, size=CASES[name].sizes[0])
    for size in CASES[name].sizes:
        x = torch.randn(2, CASES[name].channels, *size)
        c = _context(CASES[name], 2, size)
        z, ladj = layer(x, c)
        assert z.numel() == x.numel() and ladj.shape == (2,)
        torch.testing.assert_close(layer.inverse(z, c)[0], x, atol=1e-10, rtol=0)


def test_context_is_shared_across_samples_of_one_image() -> None:
    """N = B * r samples with B contexts: sample i * r + j sees context i."""
    layer, _, _ = _build("ConditionalAffineCoupling")
    x = torch.randn(6, 4, 4, 4)
    c = torch.randn(2, 3, 4, 4)
    z, ladj = layer(x, c)
    z_ref, ladj_ref = layer(x, c.repeat_interleave(3, dim=0))
    torch.testing.assert_close(z, z_ref)
    torch.testing.assert_close(ladj, ladj_ref)
    with pytest.raises(ValueError, match="multiple"):
        layer(torch.randn(5, 4, 4, 4), c)


def test_clear_errors_for_wrong_inputs() -> None:
    with pytest.raises(ValueError, match="even"):
        flows.Squeeze()(torch.randn(1, 1, 5, 4))
    flow = flows.MultiScaleFlow(flows.FlowConfig(levels=2, steps=1, hidden=4,
                                                 context_channels=(2, 2)))
    with pytest.raises(ValueError, match="divisible by 2\\^L = 4"):
        flow.log_prob(torch.randn(1, 1, 6, 8), [torch.randn(1, 2, 3, 4), torch.randn(1, 2, 1, 2)])
    with pytest.raises(ValueError, match="context"):
        flow.log_prob(torch.randn(1, 1, 8, 8), None)
    with pytest.raises(ValueError, match="scale"):
        flow.log_prob(torch.randn(1, 1, 8, 8), [torch.randn(1, 2, 2, 2), torch.randn(1, 2, 2, 2)])
