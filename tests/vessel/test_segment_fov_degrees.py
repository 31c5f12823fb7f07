"""``vesselflow segment --fov-degrees``: folded into the rescale, recorded, part of --continue."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VESSEL as TINY
from PIL import Image

from vesselflow.batch.inputs import BatchError as SegmentError
from vesselflow.cli.segment import add_parser
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.models import VesselConfig, build_model, save_model
from vesselflow.vessel.segment import segment_inputs


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("fovdeg")
    torch.manual_seed(0)
    save_model(build_model(VesselConfig(kind="factored", **TINY)), root / "m",
               {"threshold": 0.4})
    img = synthetic_fundus((200, 200), seed=4)["image"]
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(root / "eye.png")
    return root / "m", root / "eye.png"


def _run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["segment", *map(str, argv)])
    return args.func(args)


def _factor(out: Path) -> float:
    with open(out / "metrics.csv", newline="") as f:
        return float(next(csv.DictReader(f))["scale_factor"])


def test_fov_degrees_scales_the_rescale_and_is_recorded(setup, tmp_path: Path) -> None:
    model, eye = setup
    common = ("-i", eye, "--model", model, "--samples", "1", "--no-progress")
    assert _run(*common, "-o", tmp_path / "d45") == 0
    assert _run(*common, "-o", tmp_path / "d30", "--fov-degrees", "30") == 0
    assert _factor(tmp_path / "d30") == pytest.approx(_factor(tmp_path / "d45") * 30 / 45,
                                                      rel=2e-3)
    run = json.loads((tmp_path / "d30" / "run.json").read_text())
    assert run["parameters"]["fov_degrees"] == 30
    assert json.loads((tmp_path / "d45" / "run.json").read_text())["parameters"][
        "fov_degrees"] == 45
    # Another field of view changes every output: --continue must refuse to mix them.
    with pytest.raises(SegmentError, match="fov_degrees"):
        segment_inputs(eye, tmp_path / "d30", model=str(model), samples=1, resume=True,
                       progress=False, fov_degrees=50)
    with pytest.raises(SegmentError, match="fov-degrees"):
        segment_inputs(eye, tmp_path / "bad", model=str(model), fov_degrees=0)
