"""``vesselflow segment`` writes biomarkers.csv: one row per image, kept across --continue."""

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

from vesselflow.cli.segment import add_parser
from vesselflow.vessel.biomarkers import NAMES
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.models import VesselConfig, build_model, save_model


def run(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["segment", *map(str, argv)])
    return args.func(args)


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Path]]:
    root = tmp_path_factory.mktemp("bio")
    torch.manual_seed(0)
    models = {}
    for kind in ("cnf", "factored"):
        save_model(build_model(VesselConfig(kind=kind, **TINY)), root / kind, {"threshold": 0.4})
        models[kind] = root / kind
    for i, name in enumerate(("a", "b")):
        img = synthetic_fundus((176, 176), seed=i)["image"]
        (root / "in").mkdir(exist_ok=True)
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(root / "in" / f"{name}.png")
    return root, models


def rows(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "biomarkers.csv", newline="") as f:
        return {r["id"]: r for r in csv.DictReader(f)}


def test_biomarkers_csv_one_row_per_image_listed_in_run_json(setup, tmp_path: Path) -> None:
    root, models = setup
    out = tmp_path / "out"
    assert run("-i", root / "in", "-o", out, "--model", models["cnf"], "--samples", "3",
               "--no-progress") == 0
    table = rows(out)
    assert set(table) == {"a", "b"}
    for r in table.values():
        assert int(r["n_samples"]) == 3 and r["pixel_size_source"].startswith("estimated")
        for name in NAMES:
            assert {name, f"{name}_pi90_lo", f"{name}_pi90_hi", f"{name}_model",
                    *(f"{name}_model_uncertainty_{s}" for s in ("mean", "sd", "lo", "hi"))
                    } <= set(r)
        assert 0 <= float(r["vessel_density"]) <= 1
        assert float(r["vessel_density_model_uncertainty_lo"]) <= float(
            r["vessel_density_model_uncertainty_hi"])
        # A model trained here has no calibration: the value is the model's, and says so.
        assert r["vessel_density"] == r["vessel_density_model"]
        assert r["calibration"].startswith("uncalibrated") and r["um_values"].startswith("est")
        # 176 px inputs are enlarged ~3.3x for analysis: calibre px is in INPUT pixels.
        assert float(r["scale_factor"]) > 3
    record = json.loads((out / "run.json").read_text())
    assert record["biomarkers"]["file"] == "biomarkers.csv"
    assert record["biomarkers"]["images"] == 2 and record["parameters"]["biomarkers"]
    # --continue skips finished images and keeps their rows.
    before = rows(out)
    assert run("-i", root / "in", "-o", out, "--model", models["cnf"], "--samples", "3",
               "--no-progress", "--continue") == 0
    assert rows(out) == before


def test_pixel_size_sets_micrometres_and_factored_note(setup, tmp_path: Path) -> None:
    root, models = setup
    out = tmp_path / "px"
    assert run("-i", root / "in" / "a.png", "-o", out, "--model", models["factored"],
               "--samples", "2", "--no-progress", "--pixel-size", "10") == 0
    [r] = rows(out).values()
    assert r["pixel_size_source"] == "given" and float(r["um_per_input_px"]) == 10.0
    if r["calibre_median_px"] not in ("", "nan"):
        assert float(r["calibre_median_um"]) == pytest.approx(
            10.0 * float(r["calibre_median_px"]), rel=1e-3)
    assert "not vessel maps" in r["note"]
    assert "not vessel maps" in json.loads((out / "run.json").read_text())["biomarkers"]["note"]
    assert run("-i", root / "in" / "a.png", "-o", tmp_path / "bad", "--model",
               models["cnf"], "--pixel-size", "-3", "--no-progress") == 2


def test_a_run_from_before_the_calibrated_columns_is_not_continued(setup, tmp_path: Path,
                                                                    capsys) -> None:
    """Its rows hold the samples' intervals as the columns: one CSV must not mix the two."""
    root, models = setup
    out = tmp_path / "old"
    args = ("-i", root / "in" / "a.png", "-o", out, "--model", models["cnf"], "--samples",
            "2", "--no-progress")
    assert run(*args) == 0
    path = out / ".vesselflow" / "settings.json"
    settings = json.loads(path.read_text())
    settings.pop("biomarker_columns")  # as written before the calibrated columns
    path.write_text(json.dumps(settings))
    assert run(*args, "--continue") == 2
    assert "biomarker_columns was 'samples', now 'calibrated'" in capsys.readouterr().err
