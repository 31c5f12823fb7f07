"""The conditional normalizing-flow core shared by vessel segmentation and super-resolution.

Every invertible layer follows one contract (see :mod:`vesselflow.flows.base`)::

    z, ladj = layer(x, context)          # forward, ladj shape (N,)
    x, ladj_inv = layer.inverse(z, context)   # ladj_inv == -ladj
"""

from .actnorm import ActNorm
from .base import FlowLayer, FlowSequence, add_context, cached_context, sum_except_batch
from .conv1x1 import InvertibleConv1x1
from .coupling import ConditionalAdditiveCoupling, ConditionalAffineCoupling
from .dequantizer import build_dequantizer
from .multiscale import FlowConfig, FlowStep, MultiScaleFlow, bits_per_dim
from .nets import ConditionalConvNet
from .priors import ConditionalGaussianPrior, ConditionalSplitPrior, gaussian_log_prob
from .registry import LAYER_REGISTRY, register_layer
from .squeeze import Squeeze

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
