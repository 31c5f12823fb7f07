"""``vesselflow segment``: input kinds, outputs, never losing work, reproducibility, sharding.

Everything runs on tiny untrained models saved to a temp folder (the shipped weights are not
needed) and small synthetic fundus images, so the whole file takes well under a minute on the
2-core CPU. 176 px images (FOV ~162 px, above the 150 px minimum) are brought to DRIVE's FOV
scale (~580 px) before sampling, as any small photograph would be.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import tifffile
import torch
from conftest import TINY_VESSEL as TINY
from PIL import Image

from vesselflow.batch.inputs import BatchError, collect_inputs, image_seed
from vesselflow.cli.segment import add_parser
from vesselflow.runtime import sigterm_as_interrupt
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.models import VesselConfig, build_model, save_model
from vesselflow.vessel.outputs import OUTPUT_SUFFIXES, output_names
from vesselflow.vessel.segment import STATE_DIR

SIZES = {"a": (176, 176), "b": (168, 184), "sub/a": (176, 176)}  # input -> (H, W)
REPO = Path(__file__).resolve().parents[2]


def _save_png(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.round(image * 255).astype(np.uint8)).save(path)


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Tiny CNF and factored models saved like trained ones (threshold in the metadata)."""
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    out = {}
    for kind in ("cnf", "factored"):
        save_model(build_model(VesselConfig(kind=kind, **TINY)), root / kind,
                   {"threshold": 0.4})
        out[kind] = root / kind
    return out


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder: a.png, b.png, sub/a.png (same stem as a.png), plus files to be ignored."""
    root = tmp_path_factory.mktemp("images")
    for i, (name, size) in enumerate(SIZES.items()):
        _save_png(root / f"{name}.png", synthetic_fundus(size, seed=i)["image"])
    (root / "notes.txt").write_text("not an image")
    (root / ".hidden.png").write_bytes(b"ignored: hidden")
    return root


def run(*argv: str | Path) -> int:
    """``vesselflow segment ARGV`` through the subcommand's own parser."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["segment", *map(str, argv)])
    return args.func(args)


def seg(inp: Path | str, out: Path, model: Path, *extra: str | Path) -> int:
    # Biomarkers are tested in test_segment_biomarkers.py; here they would only add time.
    return run("-i", inp, "-o", out, "--model", model, "--samples", "2", "--no-progress",
               "--no-biomarkers", *extra)


def metrics(out: Path) -> dict[str, dict[str, str]]:
    with open(out / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r["id"] for r in rows]
    assert len(ids) == len(set(ids)), f"duplicate rows in metrics.csv: {ids}"
    return {r["id"]: r for r in rows}


def temp_files(out: Path) -> list[Path]:
    return [p for p in out.rglob("*") if p.name.endswith(".tmp")]


# ------------------------------------------------------------------------------ input kinds
def test_collect_inputs_every_kind(images: Path, tmp_path: Path) -> None:
    # A folder: recursive, image types only, hidden files skipped, same stems disambiguated.
    items = collect_inputs(images)
    assert {i.id: i.path.relative_to(images).as_posix() for i in items} == {
        "a": "a.png", "b": "b.png", "sub__a": "sub/a.png"}
    # One file.
    assert [(i.id, i.path) for i in collect_inputs(images / "b.png")] == [
        ("b", images / "b.png")]
    # A glob (recursive **).
    assert sorted(i.id for i in collect_inputs(f"{images}/**/a.png")) == ["a", "sub__a"]
    # A CSV with a header: paths relative to the CSV, optional ids.
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,id\n{images}/a.png,left_eye\n{images}/sub/a.png,\n")
    assert [i.id for i in collect_inputs(listing)] == ["left_eye", "a"]
    # ... and without a header.
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "plain.csv").write_text("x.png\n")
    assert [(i.id, i.path) for i in collect_inputs(tmp_path / "plain.csv")] == [
        ("x", tmp_path / "x.png")]
    # The output folder inside the input folder is never read back.
    out = images / "results"
    try:
        _save_png(out / "a_prob.png", np.zeros((16, 16, 3)))
        assert len(collect_inputs(images, exclude=out)) == 3
    finally:
        for p in sorted(out.rglob("*"), reverse=True):
            p.unlink()
        out.rmdir()


def test_collect_inputs_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(BatchError, match="input not found"):
        collect_inputs(tmp_path / "missing.png")
    with pytest.raises(BatchError, match="no image files"):
        collect_inputs(tmp_path)
    with pytest.raises(BatchError, match="no files match"):
        collect_inputs(f"{tmp_path}/*.jpg")
    dup = tmp_path / "dup.csv"
    dup.write_text("a.png,same\nb.png,same\n")
    with pytest.raises(BatchError, match=r"'same'.*dup\.csv line 1.*line 2"):
        collect_inputs(dup)


def test_seed_per_image_is_stable_and_distinct() -> None:
    assert image_seed(0, "a") == image_seed(0, "a")
    assert len({image_seed(0, "a"), image_seed(0, "b"), image_seed(1, "a")}) == 3


# ------------------------------------------------------------------------------- outputs
def test_every_output_readable_at_input_size(images: Path, models: dict[str, Path],
                                             tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert seg(images, out, models["cnf"], "--save-samples") == 0
    for item_id, rel in (("a", "a"), ("b", "b"), ("sub__a", "sub/a")):
        h, w = SIZES[rel]
        prob = tifffile.imread(out / f"{item_id}_prob.tif")
        assert prob.dtype == np.float32 and prob.shape == (h, w)
        assert prob.min() >= 0 and prob.max() <= 1
        pngs = {s: np.asarray(Image.open(out / f"{item_id}{s}")) for s in OUTPUT_SUFFIXES
                if s.endswith(".png")}
        for suffix, arr in pngs.items():
            assert arr.shape[:2] == (h, w), suffix
            assert arr.dtype == np.uint8, suffix
        np.testing.assert_array_equal(pngs["_prob.png"], np.round(prob * 255))
        fov = pngs["_fov.png"] > 0
        assert set(np.unique(pngs["_fov.png"])) <= {0, 255} and 0.5 < fov.mean() < 0.9
        assert set(np.unique(pngs["_mask.png"])) <= {0, 255}
        np.testing.assert_array_equal(pngs["_mask.png"] > 0, (prob >= 0.4) & fov)
        assert pngs["_overlay.png"].shape == (h, w, 3)
        # Uncertainty (std / 510) is 0 where every sample agrees, and present elsewhere.
        unc = pngs["_uncertainty.png"]
        assert unc.max() > 0 and (unc[(prob == 0) | (prob == 1)] == 0).all()
        nii = nib.load(out / f"{item_id}_samples.nii.gz")
        stack = np.asarray(nii.dataobj)
        assert stack.shape == (h, w, 2) and stack.dtype == np.uint8
        assert set(np.unique(stack)) <= {0, 1}
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["counts"] == {"total": 3, "ok": 3, "failed": 0, "skipped": 0,
                                  "not_run": 0}
    assert run_json["model"]["sha256"] and run_json["model"]["threshold"] == 0.4
    assert run_json["parameters"]["samples"] == 2 and run_json["seed"] == 0
    assert run_json["device"] == "cpu" and "torch" in run_json["environment"]
    assert run_json["started"] <= run_json["finished"]
    rows = metrics(out)
    assert set(rows) == {"a", "b", "sub__a"}
    for r in rows.values():
        assert r["status"] == "ok" and not r["error"]
        assert 0 <= float(r["vessel_density"]) <= 1
        assert 0 <= float(r["mean_uncertainty"]) <= 0.5 and float(r["seconds"]) > 0
    assert not temp_files(out)


def test_factored_model_csv_and_glob_inputs(images: Path, models: dict[str, Path],
                                            tmp_path: Path) -> None:
    listing = tmp_path / "list.csv"
    listing.write_text(f"path,id\n{images}/b.png,right_eye\n")
    assert seg(listing, tmp_path / "csv", models["factored"]) == 0
    assert (tmp_path / "csv" / "right_eye_mask.png").is_file()
    assert set(metrics(tmp_path / "csv")) == {"right_eye"}
    assert seg(f"{images}/*.png", tmp_path / "glob", models["factored"]) == 0
    assert set(metrics(tmp_path / "glob")) == {"a", "b"}


def test_large_image_is_rescaled_and_mapped_back(models: dict[str, Path],
                                                 tmp_path: Path) -> None:
    big = synthetic_fundus((1200, 1800), seed=3)["image"]  # FOV ~1100 px: twice DRIVE's
    _save_png(tmp_path / "big.png", big)
    out = tmp_path / "out"
    assert seg(tmp_path / "big.png", out, models["cnf"]) == 0
    assert tifffile.imread(out / "big_prob.tif").shape == (1200, 1800)
    for suffix in OUTPUT_SUFFIXES[1:]:
        assert Image.open(out / f"big{suffix}").size == (1800, 1200), suffix
    row = metrics(out)["big"]
    # auto: the tiny model records no trained range (the paper's 0.8-1.2), so the photo's
    # spare pixels are used up to 1.2x DRIVE's scale; metrics.csv records the scale
    scale = float(row["analysis_scale"])
    assert 1.0 <= scale <= 1.2 + 1e-6
    assert 0.45 * scale < float(row["scale_factor"]) < 0.52 * scale
    # a fixed scale 1 is DRIVE's scale, as before the analysis scale existed
    out1 = tmp_path / "out1"
    assert seg(tmp_path / "big.png", out1, models["cnf"], "--analysis-scale", "1") == 0
    row1 = metrics(out1)["big"]
    assert float(row1["analysis_scale"]) == 1.0 and 0.45 < float(row1["scale_factor"]) < 0.52
    # a fixed 2 is clamped by the trained range
    out2 = tmp_path / "out2"
    assert seg(tmp_path / "big.png", out2, models["cnf"], "--analysis-scale", "2") == 0
    assert float(metrics(out2)["big"]["analysis_scale"]) == pytest.approx(1.2)
    with pytest.raises(SystemExit):  # argparse: a clear error, exit status 2
        run("-i", tmp_path / "big.png", "-o", tmp_path / "bad", "--model", models["cnf"],
            "--analysis-scale", "huge")


# -------------------------------------------------------------------------- never lose work
def test_bad_file_is_reported_and_the_batch_goes_on(images: Path, models: dict[str, Path],
                                                    tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    batch = tmp_path / "batch"
    batch.mkdir()
    for name in ("a", "b"):
        (batch / f"{name}.png").write_bytes((images / f"{name}.png").read_bytes())
    good = (images / "a.png").read_bytes()
    (batch / "broken.png").write_bytes(good[: len(good) // 3])  # truncated PNG
    out = tmp_path / "out"
    assert seg(batch, out, models["cnf"]) == 1
    err = capsys.readouterr().err
    assert "broken.png" in err and "FAILED" in err
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["counts"]["ok"] == 2 and run_json["counts"]["failed"] == 1
    [failure] = run_json["failures"]
    assert failure["id"] == "broken" and "broken.png" in failure["error"]
    rows = metrics(out)
    assert rows["broken"]["status"] == "failed" and "broken.png" in rows["broken"]["error"]
    assert math.isnan(float(rows["broken"]["vessel_density"]))
    assert rows["a"]["status"] == rows["b"]["status"] == "ok"
    assert not any(out.glob("broken_*"))


def test_refuses_to_overwrite_without_flag(images: Path, models: dict[str, Path],
                                           tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "out"
    assert seg(images / "a.png", out, models["cnf"]) == 0
    before = (out / "a_prob.tif").read_bytes()
    assert seg(images / "b.png", out, models["cnf"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert not (out / "b_prob.tif").exists()
    # --continue with other settings is refused too: outputs would mix two runs.
    assert seg(images / "a.png", out, models["cnf"], "--continue", "--seed", "5") == 2
    assert "seed was 0, now 5" in capsys.readouterr().err
    assert (out / "a_prob.tif").read_bytes() == before
    assert seg(images / "a.png", out, models["cnf"], "--overwrite", "--seed", "5") == 0
    assert (out / "a_prob.tif").read_bytes() != before
    # Unrelated files in a folder do not block it.
    other = tmp_path / "other"
    other.mkdir()
    (other / "README.txt").write_text("notes")
    assert seg(images / "a.png", other, models["cnf"]) == 0


def test_continue_after_kill_redoes_only_the_unfinished_image(
        images: Path, models: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert seg(images, out, models["cnf"]) == 0
    # What `kill -9` while writing b's outputs leaves: some outputs, a temp file, no marker.
    (out / STATE_DIR / "done" / "b.json").unlink()
    (out / "b_overlay.png").unlink()
    (out / ".b_overlay.png.x1y2z3.tmp").write_bytes(b"half a PNG")
    (out / STATE_DIR / "done" / ".b.json.abc.tmp").write_text("{")
    kept = {p.name: p.stat().st_mtime_ns for p in out.glob("a_*")}
    assert seg(images, out, models["cnf"], "--continue") == 0
    rows = metrics(out)
    assert {k: r["status"] for k, r in rows.items()} == {
        "a": "skipped", "b": "ok", "sub__a": "skipped"}
    assert float(rows["a"]["vessel_density"]) >= 0  # skipped rows keep their metrics
    assert (out / "b_overlay.png").is_file() and not temp_files(out)
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("a_*")} == kept
    counts = json.loads((out / "run.json").read_text())["counts"]
    assert counts["ok"] == 1 and counts["skipped"] == 2


def test_interrupt_leaves_no_half_written_file(images: Path, models: dict[str, Path],
                                               tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (or SIGTERM, turned into KeyboardInterrupt) in the middle of a write."""
    real = tifffile.imwrite
    calls = []

    def interrupted_write(path, *args, **kwargs):  # type: ignore[no-untyped-def]
        calls.append(path)
        real(path, *args, **kwargs)  # the temp file exists, half-way through the image
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(tifffile, "imwrite", interrupted_write)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        seg(images, out, models["cnf"])
    assert not temp_files(out)
    assert not (out / "b_prob.tif").exists()  # never renamed into place
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["interrupted"] and run_json["counts"]["ok"] == 1
    assert run_json["counts"]["not_run"] == 2
    monkeypatch.setattr(tifffile, "imwrite", real)
    assert seg(images, out, models["cnf"], "--continue") == 0
    statuses = {k: r["status"] for k, r in metrics(out).items()}
    assert statuses == {"a": "skipped", "b": "ok", "sub__a": "ok"}


def test_sigterm_becomes_keyboard_interrupt() -> None:
    """``kill`` runs the same clean-up as Ctrl-C; the previous handler comes back after."""
    previous = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt), sigterm_as_interrupt():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(5)  # the handler interrupts this at once
    assert signal.getsignal(signal.SIGTERM) == previous


# ------------------------------------------------------------------- seeds and sharding
def test_same_seed_same_outputs(images: Path, models: dict[str, Path],
                                tmp_path: Path) -> None:
    maps = {}
    for name, seed in (("s0", "7"), ("s0_again", "7"), ("s1", "8")):
        assert seg(images / "a.png", tmp_path / name, models["cnf"], "--seed", seed) == 0
        maps[name] = tifffile.imread(tmp_path / name / "a_prob.tif")
    np.testing.assert_array_equal(maps["s0"], maps["s0_again"])
    assert not np.array_equal(maps["s0"], maps["s1"])


def _cli_has_segment() -> bool:
    """Whether ``python -m vesselflow`` already knows ``segment`` (the CLI wiring)."""
    from vesselflow import cli

    try:
        cli.build_parser().parse_args(["segment", "-i", "x", "-o", "y"])
    except SystemExit:
        return False
    return True


def test_torchrun_two_processes_each_output_once(images: Path, models: dict[str, Path],
                                                 tmp_path: Path) -> None:
    out = tmp_path / "sharded"
    module = ["-m", "vesselflow", "segment"] if _cli_has_segment() else [
        "-m", "vesselflow.vessel.segment"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node=2", *module, "-i", str(images), "-o", str(out), "--model",
           str(models["cnf"]), "--samples", "2", "--no-progress"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = metrics(out)
    assert set(rows) == {"a", "b", "sub__a"}
    assert all(r["status"] == "ok" for r in rows.values())
    run_json = json.loads((out / "run.json").read_text())
    assert run_json["world_size"] == 2 and run_json["counts"]["ok"] == 3
    for item_id in rows:
        for name in output_names(item_id, save_samples=False):
            assert (out / name).is_file(), name
    per_image = [p for p in out.iterdir() if p.is_file() and p.name not in
                 ("run.json", "metrics.csv", "biomarkers.csv")]
    # The ranks' biomarker rows are merged like metrics.csv: one row per image.
    with open(out / "biomarkers.csv", newline="") as f:
        assert sorted(r["id"] for r in csv.DictReader(f)) == ["a", "b", "sub__a"]
    assert len(per_image) == 3 * len(OUTPUT_SUFFIXES)  # each output exactly once
    assert not temp_files(out)
    # Per-image seeds: a single process gives the same maps as the two shards.
    single = tmp_path / "single"
    assert seg(images, single, models["cnf"]) == 0
    for item_id in rows:
        a = tifffile.imread(out / f"{item_id}_prob.tif")
        b = tifffile.imread(single / f"{item_id}_prob.tif")
        assert np.mean(a != b) < 1e-3, item_id


def test_segment_module_imports_no_heavy_library() -> None:
    code = ("import sys, vesselflow.vessel.segment; "
            "print(sorted(m for m in ('torch', 'numpy', 'PIL') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


def test_bench_reports_speed_and_memory(models: dict[str, Path], tmp_path: Path) -> None:
    from vesselflow.vessel.bench import run_bench

    out = tmp_path / "bench.json"
    record = run_bench([str(models["cnf"])], [2], out=out, say=lambda s: None)
    assert json.loads(out.read_text()) == json.loads(json.dumps(record))
    [res] = record["results"]
    [r] = res["runs"]
    assert r["samples"] == 2 and r["image"] == [584, 565]
    assert r["seconds"] >= r["sampling_seconds"] > 0 and r["samples_per_s"] > 0
    assert 50 < r["peak_rss_mb"] < 4096
    q = res["quality"]  # the review assessment is timed too (this model has no calibration)
    assert q["seconds"] > 0 and q["verdict"] == "not assessed" and q["reasons"] == ""
    assert record["cli_help_seconds"] is None or record["cli_help_seconds"] > 0
