"""Vessel models (CNF and factored baseline), their conditioning network and weight I/O."""

from vesselflow.io.weights import LoadedModel, save_model
from vesselflow.vessel.models.conditioning import ConditioningNet
from vesselflow.vessel.models.vessel import (
    MULTIPLE,
    VesselCNF,
    VesselConfig,
    VesselFactored,
    VesselModel,
    build_model,
)
from vesselflow.vessel.models.weights import FAMILY, SHIPPED, load_model, threshold_for

__all__ = [
    "FAMILY",
    "MULTIPLE",
    "SHIPPED",
    "ConditioningNet",
    "LoadedModel",
    "VesselCNF",
    "VesselConfig",
    "VesselFactored",
    "VesselModel",
    "build_model",
    "load_model",
    "save_model",
    "threshold_for",
]
