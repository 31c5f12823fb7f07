"""Review verdicts in segment's metrics.csv / run.json / summary, evaluate's
per_image.csv and the app: the same verdict, reasons and predicted F1 for the same image."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VESSEL as TINY
from PIL import Image

from vesselflow.cli import main
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.models import VesselConfig, build_model, load_model, save_model
from vesselflow.vessel.review.predictor import F1Model
from vesselflow.vessel.review.verdict import CALIBRATION_FILE, ReviewCalibration


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("photos")
    for i, gain in enumerate((1.0, 1.0, 2.5)):  # the third is over-exposed
        d = synthetic_fundus((176, 176), seed=i)
        img = np.clip(d["image"] * gain, 0, 1)
        Image.fromarray(np.round(img * 255).astype(np.uint8)).save(root / f"p{i}.png")
        Image.fromarray(d["label"].astype(np.uint8) * 255).save(root / f"p{i}_label.png")
    (root / "pairs.csv").write_text(
        "image,label\n" + "".join(f"p{i}.png,p{i}_label.png\n" for i in range(3)))
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model whose calibration predicts F1 0.8 - 2 sqrt(clipped fraction): only a photo
    with much of its FOV clipped is sent for review."""
    root = tmp_path_factory.mktemp("model")
    torch.manual_seed(0)
    save_model(build_model(VesselConfig(kind="factored", **TINY)), root / "m",
               {"threshold": 0.05})  # low: maps that are not empty
    fm = F1Model(["clipped"], [0.0], [1.0], [0.0], [1.0], [-2.0], 0.8, -0.05, 0.05)
    cal = ReviewCalibration(fm, fm, 0.6, {"model_sha256": load_model(root / "m").sha256})
    (root / "m" / CALIBRATION_FILE).write_text(json.dumps(cal.to_dict()))
    return root / "m"


def test_segment_evaluate_and_app_agree(photos: Path, model: Path, tmp_path: Path,
                                        capsys) -> None:
    out = tmp_path / "seg"
    assert main(["segment", "-i", str(photos / "p*[0-9].png"), "-o", str(out), "--model",
                 str(model), "--samples", "2", "--no-progress", "--no-biomarkers"]) == 0
    text = capsys.readouterr().out
    assert "1 of 3 image(s) flagged for review: p2 (predicted_f1_low)" in text
    assert "parts of the photo are clipped to black or white" in text
    with open(out / "metrics.csv", newline="") as f:
        seg_rows = {r["id"]: r for r in csv.DictReader(f)}
    assert {k: (r["review"], r["reasons"]) for k, r in seg_rows.items()} == {
        "p0": ("ok", ""), "p1": ("ok", ""), "p2": ("review", "predicted_f1_low")}
    for r in seg_rows.values():  # the predicted F1 and its interval, beside the verdict
        lo, f1, hi = (float(r[k]) for k in ("predicted_f1_low", "predicted_f1",
                                            "predicted_f1_high"))
        assert lo <= f1 <= hi and (f1 < 0.6) == (r["review"] == "review")
    run = json.loads((out / "run.json").read_text())
    assert run["review"]["flagged"] == 1 and run["review"]["images"][0]["id"] == "p2"
    assert run["review"]["images"][0]["reasons"] == ["predicted_f1_low"]
    assert run["review_calibration"]["usable"] and run["review_calibration"]["threshold"] == 0.6

    ev = tmp_path / "ev"
    assert main(["evaluate", "--model", str(model), "--pairs", str(photos / "pairs.csv"),
                 "--samples", "2", "--no-biomarkers", "--bootstrap", "0", "--out", str(ev),
                 "--device", "cpu"]) == 0
    with open(ev / "per_image.csv", newline="") as f:
        ev_rows = list(csv.DictReader(f))
    assert [(r["review"], r["reasons"], r["predicted_f1"]) for r in ev_rows] == [
        (seg_rows[f"p{i}"]["review"], seg_rows[f"p{i}"]["reasons"],
         seg_rows[f"p{i}"]["predicted_f1"]) for i in range(3)]

    from vesselflow.app import segmenting
    from vesselflow.io.images import read_image

    loaded = load_model(model)
    for i in range(3):
        image = read_image(photos / f"p{i}.png")
        res = segmenting.segment_image(loaded.model, image, segmenting.SamplingParams(n=2),
                                       name=f"p{i}")
        v = segmenting.summary(loaded, res, loaded.threshold).verdict
        assert (v.status, v.codes) == (seg_rows[f"p{i}"]["review"],
                                       seg_rows[f"p{i}"]["reasons"]), i


def test_a_model_without_calibration_says_not_assessed(photos: Path, model: Path,
                                                   tmp_path: Path, capsys) -> None:
    bare = tmp_path / "bare"
    shutil.copytree(model, bare)
    (bare / CALIBRATION_FILE).unlink()
    out = tmp_path / "seg"
    assert main(["segment", "-i", str(photos / "p0.png"), "-o", str(out), "--model",
                 str(bare), "--samples", "1", "--no-progress", "--no-biomarkers"]) == 0
    text = capsys.readouterr().out
    assert "no review calibration" in text and "vesselflow calibrate-review" in text
    with open(out / "metrics.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert (row["status"], row["review"], row["reasons"]) == ("ok", "not assessed", "")


def test_a_tiny_fov_is_refused_not_flagged(model: Path, tmp_path: Path) -> None:
    d = synthetic_fundus((120, 120), seed=0)  # FOV ~110 px: under the 150 px minimum
    Image.fromarray(np.round(d["image"] * 255).astype(np.uint8)).save(tmp_path / "small.png")
    out = tmp_path / "seg"
    assert main(["segment", "-i", str(tmp_path / "small.png"), "-o", str(out), "--model",
                 str(model), "--samples", "1", "--no-progress", "--no-biomarkers"]) == 1
    with open(out / "metrics.csv", newline="") as f:
        row = next(csv.DictReader(f))
    assert row["status"] == "failed" and row["review"] not in ("ok", "review", "not assessed")
    assert "150 px" in row["error"] and "small.png" in row["error"]
