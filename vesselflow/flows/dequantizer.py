"""The variational dequantizer q(eps | context) both tasks use: a one-level conditional affine
flow that only ever runs ``inverse`` (sampling eps with its log-density)."""

from __future__ import annotations

from vesselflow.flows.actnorm import ActNorm
from vesselflow.flows.multiscale import FlowConfig, MultiScaleFlow


def build_dequantizer(channels: int, steps: int, hidden: int, context_channels: int,
                      clamp: float = 2.0) -> MultiScaleFlow:
    """A one-level affine :class:`MultiScaleFlow` for q, its actnorms declared initialised.

    The dequantizer only ever runs ``inverse``, so actnorm's data-dependent init (a forward
    pass in training mode) would never fire - or fire late and overwrite trained values if
    someone evaluated q with ``log_prob``. Declared initialised, they start as the identity.
    """
    flow = MultiScaleFlow(FlowConfig(channels=channels, levels=1, steps=steps, hidden=hidden,
                                     context_channels=context_channels, coupling="affine",
                                     clamp=clamp))
    for m in flow.modules():
        if isinstance(m, ActNorm):
            m.initialized.fill_(True)
    return flow
