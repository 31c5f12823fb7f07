"""The command line: ``vesselflow --help`` loads no heavy library, and the commands whose work
is a library call (``bench``, ``drive-stats``, ``calibrate-review``, segment's ``--threshold``)
pass their options through, write where they say and answer bad input with exit status 2."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vesselflow.cli import build_parser, main

REPO = Path(__file__).resolve().parents[2]


def test_help_imports_no_heavy_library() -> None:
    # Every parser is built for --help: none may import torch (seconds) to describe itself.
    code = ("import sys; from vesselflow.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('torch', 'numpy', 'PIL', 'monai', 'streamlit') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_bench_writes_where_told_and_the_library_nowhere_by_default(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import vesselflow.vessel.bench as bench

    assert inspect.signature(bench.run_bench).parameters["out"].default is None
    calls: list[dict[str, Any]] = []

    def fake(models: list[str], samples: list[int], **kw: Any) -> dict[str, Any]:
        calls.append({"models": models, "samples": samples, **kw})
        return {"results": [{"model": m} for m in models]}

    monkeypatch.setattr(bench, "run_bench", fake)
    assert main(["bench", "--model", "arch:cnf", "--samples", "2", "--no-biomarkers"]) == 0
    assert calls[-1]["out"] == Path("results/bench_segment.json")  # relative: the caller's folder
    assert calls[-1]["models"] == ["arch:cnf"] and calls[-1]["samples"] == [2]
    assert calls[-1]["biomarkers"] is False
    assert main(["bench", "--model", "x", "--out", "elsewhere.json"]) == 0
    assert calls[-1]["out"] == Path("elsewhere.json")
    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: {"results": [{"error": "boom"}]})
    assert main(["bench", "--model", "x"]) == 1


def test_drive_stats_writes_the_statistics_to_out(drive_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    from vesselflow.vessel.preprocess.normalise import STATS_PATH, load_drive_stats

    before = STATS_PATH.read_bytes()
    out = tmp_path / "stats.json"
    assert main(["drive-stats", "--drive", str(drive_dir), "--out", str(out)]) == 0
    fresh, stored = json.loads(out.read_text()), load_drive_stats()
    assert fresh["n_images"] == 20
    assert fresh["mean"] == pytest.approx(stored["mean"], abs=1e-6)
    assert fresh["std"] == pytest.approx(stored["std"], abs=1e-6)
    assert STATS_PATH.read_bytes() == before  # --out given: the packaged file is untouched
    assert str(out) in capsys.readouterr().out
    assert main(["drive-stats", "--drive", str(tmp_path / "nowhere")]) == 2
    assert "vesselflow drive-stats: error" in capsys.readouterr().err


def test_calibrate_review_stores_the_calibration_with_its_command(
        tiny_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import vesselflow.vessel.evaluation.review_calibration as calibration
    from vesselflow.vessel.models import load_model
    from vesselflow.vessel.review.predictor import F1Model
    from vesselflow.vessel.review.verdict import CALIBRATION_FILE, ReviewCalibration

    seen: dict[str, Any] = {}
    sha = load_model(tiny_model).sha256
    fm = F1Model(["clipped"], [0.0], [1.0], [0.0], [1.0], [-1.0], 0.8, -0.05, 0.05)

    def fake(loaded: Any, drive: Path, **kw: Any) -> tuple[ReviewCalibration, list[dict]]:
        seen.update(drive=drive, **kw)
        summary = {"n_maps": 12, "n_good": 9, "n_bad": 3, "lofo_mae": 0.04}
        return (ReviewCalibration(fm, fm, 0.62, {"model_sha256": loaded.sha256,
                                                 "calibration": summary}), [{}] * 12)

    monkeypatch.setattr(calibration, "calibrate", fake)
    argv = ["calibrate-review", "--model", str(tiny_model), "--drive", str(tmp_path),
            "--seed", "3", "--cache", str(tmp_path / "records.jsonl")]
    assert main(argv) == 0
    assert seen == {"drive": tmp_path, "samples": 16, "seed": 3,
                    "cache": tmp_path / "records.jsonl"}
    back = ReviewCalibration.load(tiny_model, sha)
    assert back is not None and not back.stale and back.threshold == 0.62
    assert back.full == fm
    stored = json.loads((tiny_model / CALIBRATION_FILE).read_text())
    assert stored["command"].startswith("vesselflow calibrate-review --model ")
    assert "--samples 16 --seed 3" in stored["command"]
    assert main([*argv, "--samples", "1"]) == 2


def test_calibrate_review_answers_a_missing_dataset(tiny_model: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    from vesselflow.vessel.review.verdict import CALIBRATION_FILE

    argv = ["calibrate-review", "--model", str(tiny_model), "--drive", str(tmp_path / "none")]
    assert main(argv) == 2
    assert "vesselflow calibrate-review: error" in capsys.readouterr().err
    assert not (tiny_model / CALIBRATION_FILE).exists()


def test_segment_threshold_is_checked_by_the_library(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    from vesselflow.batch.inputs import BatchError
    from vesselflow.vessel.segment import parse_threshold

    assert parse_threshold("AUTO") == "auto" and parse_threshold("0.4") == 0.4
    for bad in ("1.5", "0", "nan", "high"):
        with pytest.raises(BatchError, match="threshold"):
            parse_threshold(bad)
    a = build_parser().parse_args(["segment", "-i", "x", "-o", "y", "--threshold", "0.3"])
    assert a.threshold == 0.3
    with pytest.raises(SystemExit) as e:
        build_parser().parse_args(["segment", "-i", "x", "-o", "y", "--threshold", "2"])
    assert e.value.code == 2
    assert "threshold must be in (0, 1], got 2.0" in capsys.readouterr().err
