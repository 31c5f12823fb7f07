"""``vesselflow evaluate`` takes segment's analysis path: a rescaled image scores at full size."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vesselflow.cli import main


def _up2(path: Path, out: Path, palette: bool = False) -> None:
    img = Image.open(path)
    img = img.convert("L") if img.mode == "P" and not palette else img
    arr = np.asarray(img)
    if arr.ndim == 2:
        arr = (arr > (0 if palette else 127)).astype(np.uint8) * 255
    Image.fromarray(np.repeat(np.repeat(arr, 2, 0), 2, 1)).save(out)


def test_upscaled_drive_image_is_analysed_at_drive_scale_and_scored_at_full_size(
        drive_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    t = drive_dir / "test"
    _up2(t / "images" / "01_test.tif", tmp_path / "img.png")
    _up2(t / "1st_manual" / "01_manual1.gif", tmp_path / "lab.png")
    _up2(t / "mask" / "01_test_mask.gif", tmp_path / "fov.png")
    _up2(t / "2nd_manual" / "01_manual2.gif", tmp_path / "lab2.png", palette=True)
    (tmp_path / "pairs.csv").write_text("image,label,fov,label2\n"
                                        "img.png,lab.png,fov.png,lab2.png\n")
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(tiny_model), "--pairs", str(tmp_path / "pairs.csv"),
                 "--samples", "2", "--out", str(out), "--device", "cpu",
                 "--analysis-scale", "1"]) == 0  # scale 1: DRIVE's (auto would use the pixels)
    m = json.loads((out / "metrics.json").read_text())
    row = next(csv.DictReader((out / "per_image.csv").open()))
    fov = np.asarray(Image.open(tmp_path / "fov.png")) > 127
    # Analysed at DRIVE's scale (the FOV diameter halved back to ~538 px) ...
    assert float(row["scale_factor"]) == pytest.approx(0.5, abs=0.01)
    assert m["scale_factors"] == {"img": pytest.approx(0.5, abs=0.01)}
    h, w = map(int, row["analysis_shape"].split("x"))
    assert h == pytest.approx(584, rel=0.01) and w == pytest.approx(565, rel=0.01)
    # ... and scored at the full size: every FOV pixel of the 1168 x 1130 tracing counts.
    assert (int(row["height"]), int(row["width"])) == (1168, 1130)
    assert int(row["fov_pixels"]) == int(fov.sum())
    assert 0.7 < m["human"]["f1"] < 0.9  # second observer, at full size too
    # bpd is over the analysis-scale tracing: finite and per pixel.
    assert 0 < m["bpd"] < 2
    bio = m["biomarkers"]["per_biomarker"]
    assert bio["vessel_density"]["n"] == 1 and "observer" in bio["vessel_density"]
    # The tracing at the analysis scale keeps DRIVE's vessel density (~12-13 % for 01).
    rows = list(csv.DictReader((out / "biomarkers_per_image.csv").open()))
    assert 0.10 < float(rows[0]["vessel_density_tracing"]) < 0.16


def test_drive_test_images_are_not_rescaled(drive_dir: Path) -> None:
    """DRIVE's own FOVs are within the rescale's tolerance: its numbers stay as they were."""
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.preprocess.fov import fov_diameter
    from vesselflow.vessel.preprocess.scale import DEFAULT_TOLERANCE, DRIVE_FOV_DIAMETER

    for path in sorted((drive_dir / "test" / "mask").glob("*_test_mask.gif")):
        factor = DRIVE_FOV_DIAMETER / fov_diameter(read_mask(path))
        assert abs(factor - 1) <= DEFAULT_TOLERANCE, path.name
