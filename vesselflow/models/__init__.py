"""Vessel models (CNF and factored baseline), their conditioning network and weight I/O."""

from .conditioning import ConditioningNet
from .io import LoadedModel, load_model, resolve_model, save_model
from .vessel import MULTIPLE, VesselCNF, VesselConfig, VesselFactored, VesselModel, build_model

__all__ = [
    "MULTIPLE",
    "ConditioningNet",
    "LoadedModel",
    "VesselCNF",
    "VesselConfig",
    "VesselFactored",
    "VesselModel",
    "build_model",
    "load_model",
    "resolve_model",
    "save_model",
]
