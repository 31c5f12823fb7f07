"""The a-priori threshold at the sample count it is applied to: chosen per count on DRIVE's
validation split, looked up by count, and used by segment when the model has a table."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VESSEL

from vesselflow.io.weights import LoadedModel
from vesselflow.vessel.models import (
    VesselConfig,
    build_model,
    load_model,
    save_model,
    threshold_for,
)


def _loaded(meta: dict) -> LoadedModel:
    return LoadedModel(None, VesselConfig(), "m", Path("-"), "-", meta)


def test_threshold_for_uses_the_largest_count_not_above_n() -> None:
    table = {str(n): {"threshold": t} for n, t in ((1, 1.0), (4, 0.5), (16, 0.4375),
                                                   (100, 0.44))}
    m = _loaded({"threshold": 0.44, "thresholds": table})
    assert threshold_for(m, 16) == 0.4375
    assert threshold_for(m, 20) == 0.4375  # 16 <= 20 < 100
    assert threshold_for(m, 100) == 0.44 and threshold_for(m, 128) == 0.44
    assert threshold_for(m, 2) == 1.0
    # a model without a table has one threshold for every count
    assert threshold_for(_loaded({"threshold": 0.3}), 16) == 0.3


def test_choose_thresholds_lives_on_each_counts_grid(drive_dir: Path) -> None:
    from vesselflow.vessel.train.validation import choose_thresholds

    torch.manual_seed(0)
    model = build_model(VesselConfig(kind="cnf", **TINY_VESSEL)).eval()
    table = choose_thresholds(model, drive_dir, "cpu", counts=(1, 4))
    assert set(table) == {"1", "4"}
    # a mean of n binary samples is k/n: the threshold is one of those values
    assert table["1"]["threshold"] in (0.0, 1.0)
    assert np.isclose(table["4"]["threshold"] * 4, round(table["4"]["threshold"] * 4))
    assert 0 <= table["4"]["f1"] <= table["4"]["max_f1"] + 1e-12


def test_segment_applies_the_threshold_of_its_sample_count(tmp_path: Path) -> None:
    from PIL import Image

    from vesselflow.vessel.data.synthetic import synthetic_fundus
    from vesselflow.vessel.segment import segment_inputs

    torch.manual_seed(0)
    folder = tmp_path / "model"
    save_model(build_model(VesselConfig(kind="factored", **TINY_VESSEL)).eval(), folder,
               {"threshold": 0.4, "thresholds": {"1": {"threshold": 0.9},
                                                 "4": {"threshold": 0.6}}})
    assert threshold_for(load_model(folder), 4) == 0.6
    image = synthetic_fundus((200, 200), seed=0)["image"]
    Image.fromarray((np.clip(image, 0, 1) * 255).astype(np.uint8)).save(tmp_path / "a.png")
    for n, expected in ((1, 0.9), (4, 0.6), (8, 0.6)):
        out = tmp_path / f"out{n}"
        segment_inputs(tmp_path / "a.png", out, model=str(folder), samples=n, progress=False,
                       biomarkers=False, log=lambda _s: None)
        run = json.loads((out / "run.json").read_text())
        assert run["parameters"]["threshold"] == pytest.approx(expected), n
