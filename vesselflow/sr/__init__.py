"""x2 super-resolution: MATLAB bicubic degradation, Y-channel metrics, RRDB conditioning,
the conditional flow (:class:`SRFlow`) and the factored logistic-mixture baseline
(:class:`SRFactored`).
"""

from __future__ import annotations

from vesselflow.sr.data import (
    SR_DATASETS,
    SRBenchmark,
    SRPatchDataset,
    list_images,
    list_sr_datasets,
    read_rgb,
    to_image,
    to_tensor,
)
from vesselflow.sr.logistic import (
    discretized_logistic_mixture_log_prob,
    discretized_logistic_mixture_mean,
    discretized_logistic_mixture_mode,
    sample_discretized_logistic_mixture,
)
from vesselflow.sr.metrics import psnr_y, rgb_to_y, ssim_y
from vesselflow.sr.models import SRConfig, SRFactored, SRFlow, sigmoid_ladj
from vesselflow.sr.resize import bicubic_degrade, bicubic_upscale, imresize
from vesselflow.sr.rrdb import RRDB, ResidualDenseBlock, RRDBNet

__all__ = [
    "RRDB",
    "SR_DATASETS",
    "RRDBNet",
    "ResidualDenseBlock",
    "SRBenchmark",
    "SRConfig",
    "SRFactored",
    "SRFlow",
    "SRPatchDataset",
    "bicubic_degrade",
    "bicubic_upscale",
    "discretized_logistic_mixture_log_prob",
    "discretized_logistic_mixture_mean",
    "discretized_logistic_mixture_mode",
    "imresize",
    "list_images",
    "list_sr_datasets",
    "psnr_y",
    "read_rgb",
    "rgb_to_y",
    "sample_discretized_logistic_mixture",
    "sigmoid_ladj",
    "ssim_y",
    "to_image",
    "to_tensor",
]
