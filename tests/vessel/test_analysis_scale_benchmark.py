"""benchmarks/analysis_scale.py on one image per set: outputs exist, each row's F1 is the one a
direct analysis at that scale gives, and half-size scores are the 2x2 block means."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("analysis_scale",
                                                  REPO / "benchmarks" / "analysis_scale.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_half_size_is_the_block_mean() -> None:
    from vesselflow.vessel.evaluation.labelled import _half

    a = np.arange(20, dtype=np.float32).reshape(4, 5)
    assert _half(a).tolist() == [[3.0, 5.0], [13.0, 15.0]]  # the odd last column is dropped


def test_benchmark_rows_match_a_direct_analysis(shared_data_dir: Path, tmp_path: Path) -> None:
    from vesselflow.vessel.evaluation.labelled import analyse
    from vesselflow.vessel.models import load_model

    bench = _bench()
    out = tmp_path / "bench"
    assert bench.main(["--models", "factored-drive", "--sets", "drive-val", "drive-val-narrow",
                       "--scales", "1", "1.5", "--samples", "1", "--limit", "1",
                       "--data", str(shared_data_dir), "--out", str(out)]) == 0
    result = json.loads((out / "analysis_scale.json").read_text())
    model = result["models"]["factored-drive"]
    assert model["sha256"] == load_model("factored-drive").sha256
    assert set(model["rows"]) == {"drive-val@1.0", "drive-val@1.5", "drive-val-narrow@1.0",
                                  "drive-val-narrow@1.5"}
    # DRIVE's own photos have no pixels to spare: a fixed 1.5 is clamped back to 1
    assert model["rows"]["drive-val@1.5"]["scales_used"] == [1.0]
    # the narrow view's FOV is two thirds of DRIVE's: it is enlarged to scale 1 like any
    # small photo, and its row is what a direct analysis of the view gives
    loaded = load_model("factored-drive")
    [item] = bench.items("drive-val-narrow", shared_data_dir)[:1]
    image, label, fov = bench.load_case(item, narrow=True)
    assert image.shape[0] < 0.75 * 584
    rec, _ = analyse(loaded, image, label, fov, samples=1, seed=0, name=item.id)
    row = model["rows"]["drive-val-narrow@1.0"]
    assert row["full"]["f1"] == pytest.approx(rec["f1"], abs=1e-9)
    assert "analysis_scale.md" in {p.name for p in out.iterdir()}
    # a second run is served from the cache
    assert bench.main(["--models", "factored-drive", "--sets", "drive-val", "--scales", "1",
                       "--samples", "1", "--limit", "1", "--data", str(shared_data_dir),
                       "--out", str(out)]) == 0
