"""``vesselflow sr train | evaluate | upscale`` end to end with a tiny model on real SR data."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vesselflow.cli import main
from vesselflow.cli.sr import parse_temperatures
from vesselflow.sr.data import list_images, validation_files
from vesselflow.sr.weights import load_sr_model

TINY = ["--features", "8", "--blocks", "1", "--growth", "8", "--flow-steps", "2",
        "--hidden", "16", "--patch-size", "32", "--batch-size", "2"]


@pytest.fixture(scope="module")
def sr_dir(shared_data_dir: Path) -> Path:
    path = shared_data_dir / "SR"
    if not (path / "T91").is_dir() or not (path / "BSD200").is_dir():
        pytest.skip(f"SR data not found at {path}")
    return path


@pytest.fixture(scope="module")
def tiny_run(sr_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("sr") / "run"
    assert main(["sr", "train", "--model", "cnf", "--data", str(sr_dir), "--out", str(run),
                 "--steps", "3", "--val-every", "3", "--ckpt-every", "2", "--log-every", "1",
                 *TINY]) == 0
    return run


def test_train_writes_checkpoints_and_resumes(tiny_run: Path, sr_dir: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert (tiny_run / "best" / "model.safetensors").exists()
    state = json.loads((tiny_run / "last" / "state.json").read_text())
    assert state["step"] == 3
    val = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()
           if "val_bpd" in line]
    assert val and np.isfinite(val[-1]["val_bpd"]) and val[-1]["val_psnr_y_t0"] > 20
    # A second run into the same folder without --resume is refused...
    again = ["sr", "train", "--model", "cnf", "--data", str(sr_dir), "--out", str(tiny_run),
             *TINY]
    assert main([*again, "--steps", "5"]) == 2
    assert "--resume" in capsys.readouterr().err
    # ... and with --resume it continues from step 3 (config taken from the run).
    assert main([*again, "--steps", "5", "--resume", "--val-every", "100"]) == 0
    assert json.loads((tiny_run / "last" / "state.json").read_text())["step"] == 5
    loaded = load_sr_model(tiny_run)
    assert loaded.config.kind == "cnf" and loaded.name == tiny_run.name


def test_validation_images_are_held_out(sr_dir: Path) -> None:
    from vesselflow.sr.data import SRPatchDataset

    held = validation_files(sr_dir)
    assert len(held) == 8
    data = SRPatchDataset([sr_dir / "T91", sr_dir / "BSD200"], 32, exclude=held)
    assert not {f.resolve() for f in held} & {f.resolve() for f in data.files}
    assert len(data.files) == len(list_images(sr_dir / "T91")) + 200 - 8


def test_evaluate_writes_metrics_per_set_and_temperature(tiny_run: Path, sr_dir: Path,
                                                         tmp_path: Path) -> None:
    out = tmp_path / "eval"
    assert main(["sr", "evaluate", "--model", str(tiny_run), "--data", str(sr_dir),
                 "--out", str(out), "--sets", "Set5", "--limit", "2",
                 "--temperatures", "0,0.8"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    s5 = m["sets"]["Set5"]
    assert s5["n_images"] == 2 and set(s5["temperatures"]) == {"0", "0.8"}
    for v in s5["temperatures"].values():
        assert {"psnr_y", "ssim_y", "bpd"} <= set(v) and 15 < v["psnr_y"] < 60
    # Bicubic on baby + bird, Y channel, 2-px border (published: 37.07 / 36.81 dB).
    assert s5["bicubic"]["psnr_y"] == pytest.approx((37.07 + 36.81) / 2, abs=0.05)
    assert (out / "figures" / "samples_Set5.png").stat().st_size > 1000
    assert len((out / "per_image.csv").read_text().splitlines()) == 3


def test_evaluate_rejects_bad_arguments(tiny_run: Path, sr_dir: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="temperatures"):
        parse_temperatures("0,hot")
    with pytest.raises(ValueError):
        parse_temperatures("-1")
    assert main(["sr", "evaluate", "--model", str(tiny_run), "--data", str(sr_dir),
                 "--out", str(tmp_path), "--sets", "Set6"]) == 2
    assert "Set6" in capsys.readouterr().err
    assert main(["sr", "evaluate", "--model", "sr-nope", "--data", str(sr_dir),
                 "--out", str(tmp_path)]) == 2


def test_upscale_keeps_going_past_bad_files_and_continues(
        tiny_run: Path, sr_dir: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    inp = tmp_path / "in"
    inp.mkdir()
    shutil.copy(sr_dir / "Set5" / "bird.png", inp / "bird.png")
    Image.open(sr_dir / "Set14" / "bridge.png").crop((0, 0, 40, 30)).save(inp / "grey.png")
    (inp / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    out = tmp_path / "out"
    args = ["sr", "upscale", "-i", str(inp), "-o", str(out), "--model", str(tiny_run),
            "--samples", "2", "--temperature", "0.8"]
    assert main(args) == 1  # one bad file: reported, the others done
    err = capsys.readouterr().err
    assert "broken.png" in err
    run = json.loads((out / "run.json").read_text())
    assert run["counts"] == {"total": 3, "ok": 2, "failed": 1, "skipped": 0, "not_run": 0}
    grey = np.asarray(Image.open(out / "grey_x2.png"))
    assert grey.shape == (60, 80, 3)
    assert np.asarray(Image.open(out / "bird_x2_std.png")).max() > 0  # samples differ
    assert not list(out.glob(".*.tmp"))
    assert main(args) == 2  # refuses to mix runs
    assert "--continue" in capsys.readouterr().err
    assert main([*args, "--continue"]) == 1
    assert json.loads((out / "run.json").read_text())["counts"]["skipped"] == 2
    assert main([*args[:-1], "0.5", "--continue"]) == 2  # different settings
    assert main(["sr", "upscale", "-i", str(tmp_path / "nothing"), "-o", str(out)]) == 2


def test_evaluate_update_reevaluates_only_the_named_sets(tiny_run: Path, sr_dir: Path,
                                                         tmp_path: Path) -> None:
    """--update re-runs the named sets and keeps the others; seeds depend on image names
    only, so the merged result equals a full run. Set14's grey bridge is flagged."""
    out = tmp_path / "eval"
    base = ["sr", "evaluate", "--model", str(tiny_run), "--data", str(sr_dir), "--out",
            str(out), "--limit", "3", "--temperatures", "0"]
    assert main([*base, "--sets", "Set5,Set14"]) == 0
    full = json.loads((out / "metrics.json").read_text())
    rows = (out / "per_image.csv").read_text()
    assert main([*base, "--sets", "Set14", "--update"]) == 0
    merged = json.loads((out / "metrics.json").read_text())
    assert list(merged["sets"]) == ["Set5", "Set14"] and merged["updated_sets"] == ["Set14"]
    assert merged["sets"] == full["sets"]
    assert (out / "per_image.csv").read_text() == rows
    grey = {r["image"]: r["grey"] for r in csv.DictReader(rows.splitlines())}
    assert grey["bridge"] == "True" and grey["baboon"] == "False"
    assert main([*base, "--sets", "Set14", "--update", "--seed", "1"]) == 2  # other seed
    assert main([*base, "--out", str(tmp_path / "none"), "--update"]) == 2
