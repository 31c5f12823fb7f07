"""The conditional normalizing-flow core shared by vessel segmentation and super-resolution.

Every invertible layer follows one contract (see :mod:`vesselflow.flows.base`)::

    z, ladj = layer(x, context)          # forward, ladj shape (N,)
    x, ladj_inv = layer.inverse(z, context)   # ladj_inv == -ladj
"""

from vesselflow.flows.actnorm import ActNorm
from vesselflow.flows.base import (
    FlowLayer,
    FlowSequence,
    add_context,
    cached_context,
    sum_except_batch,
)
from vesselflow.flows.conv1x1 import InvertibleConv1x1
from vesselflow.flows.coupling import ConditionalAdditiveCoupling, ConditionalAffineCoupling
from vesselflow.flows.dequantizer import build_dequantizer
from vesselflow.flows.multiscale import FlowConfig, FlowStep, MultiScaleFlow, bits_per_dim
from vesselflow.flows.nets import ConditionalConvNet
from vesselflow.flows.priors import (
    ConditionalGaussianPrior,
    ConditionalSplitPrior,
    gaussian_log_prob,
)
from vesselflow.flows.registry import LAYER_REGISTRY, register_layer
from vesselflow.flows.squeeze import Squeeze

__all__ = [
    "LAYER_REGISTRY",
    "ActNorm",
    "ConditionalAdditiveCoupling",
    "ConditionalAffineCoupling",
    "ConditionalConvNet",
    "ConditionalGaussianPrior",
    "ConditionalSplitPrior",
    "FlowConfig",
    "FlowLayer",
    "FlowSequence",
    "FlowStep",
    "InvertibleConv1x1",
    "MultiScaleFlow",
    "Squeeze",
    "add_context",
    "bits_per_dim",
    "build_dequantizer",
    "cached_context",
    "gaussian_log_prob",
    "register_layer",
    "sum_except_batch",
]
