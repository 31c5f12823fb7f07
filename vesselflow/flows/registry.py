"""Registry of every invertible layer, so the shared test harness can prove it covers them all."""

from __future__ import annotations

from typing import TypeVar

LAYER_REGISTRY: dict[str, type] = {}

T = TypeVar("T", bound=type)


def register_layer(cls: T) -> T:
    """Class decorator: add an invertible layer to :data:`LAYER_REGISTRY` under its name."""
    name = cls.__name__
    if name in LAYER_REGISTRY and LAYER_REGISTRY[name] is not cls:
        raise ValueError(f"two invertible layers are named {name!r}")
    LAYER_REGISTRY[name] = cls
    return cls
