"""Shared test configuration, defined once: where the real datasets live and the tiny model
configurations every test family builds its models from.

Datasets are never copied into the repository. They are read from ``../shared/data`` next to the
repository root, or from the folder named by the ``VESSELFLOW_DATA`` environment variable; tests
that need them skip with a clear reason when they are absent. Test modules import the
constants below with ``from conftest import ...`` (``tests/`` is on pytest's pythonpath).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA_DIR = REPO.parent / "shared" / "data"

TINY_VESSEL = {"width": 4, "steps": 1, "hidden": (4, 4), "deq_steps": 1, "deq_hidden": 4,
               "deq_width": 4}
"""``VesselConfig`` overrides of a tiny, fast vessel model (CNF or factored)."""

TINY_SR = {"features": 8, "blocks": 1, "growth": 8, "steps": 2, "hidden": 16, "n_mix": 3}
"""``SRConfig`` overrides of a tiny SR model (flow or factored)."""


def data_dir() -> Path:
    """The shared data folder (``VESSELFLOW_DATA`` overrides the default ``../shared/data``)."""
    return Path(os.environ.get("VESSELFLOW_DATA", DEFAULT_DATA_DIR)).expanduser().resolve()


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The shared data folder; skips the test when it does not exist."""
    path = data_dir()
    if not path.is_dir():
        pytest.skip(f"shared data folder not found at {path} (set VESSELFLOW_DATA)")
    return path


@pytest.fixture(scope="session")
def drive_dir(shared_data_dir: Path) -> Path:
    """The extracted DRIVE folder (``training/`` and ``test/``); skips when absent."""
    path = shared_data_dir / "DRIVE"
    if not (path / "training").is_dir() or not (path / "test").is_dir():
        pytest.skip(f"DRIVE not found at {path} (expected training/ and test/ inside)")
    return path


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    """A saved tiny vessel CNF (weights jittered off their init), threshold 0.5: its folder."""
    import torch

    from vesselflow.vessel.models import VesselConfig, build_model, save_model

    torch.manual_seed(0)
    model = build_model(VesselConfig(kind="cnf", **TINY_VESSEL))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    save_model(model.eval(), tmp_path / "model", {"threshold": 0.5})
    return tmp_path / "model"
