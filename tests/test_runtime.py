"""``--device mps`` (and its CPU fallback) and the package versions recorded in run manifests."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_VESSEL as TINY
from PIL import Image

from vesselflow import runtime as utils
from vesselflow.cli.segment import add_parser
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.models import VesselConfig, build_model, save_model

REPO = Path(__file__).resolve().parents[1]


def test_pick_device_mps_falls_back_to_cpu_with_a_message(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert utils.pick_device("mps") == "cpu"
    err = capsys.readouterr().err
    assert "--device mps" in err and "using the CPU" in err
    assert utils.pick_device("cpu") == "cpu" and utils.pick_device("auto") in {"cpu", "cuda"}
    with pytest.raises(ValueError, match="auto, cpu, cuda or mps"):
        utils.pick_device("tpu")


def test_pick_device_uses_mps_where_torch_offers_it(monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert utils.pick_device("mps") == "mps"
    assert capsys.readouterr().err == ""
    if not torch.cuda.is_available():
        assert utils.pick_device("auto") == "cpu"  # MPS only when asked for


def test_segment_device_mps_runs_on_the_cpu_here(tmp_path: Path, capsys) -> None:
    if utils.mps_available():
        pytest.skip("this machine has MPS: the fallback path is not taken")
    torch.manual_seed(0)
    save_model(build_model(VesselConfig(kind="factored", **TINY)), tmp_path / "m",
               {"threshold": 0.4})
    img = synthetic_fundus((176, 176), seed=0)["image"]
    Image.fromarray(np.round(img * 255).astype(np.uint8)).save(tmp_path / "a.png")
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["segment", "-i", str(tmp_path / "a.png"), "-o",
                              str(tmp_path / "out"), "--model", str(tmp_path / "m"),
                              "--samples", "2", "--no-progress", "--device", "mps"])
    assert args.func(args) == 0
    assert "using the CPU" in capsys.readouterr().err
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert run["device"] == "cpu" and run["parameters"]["device"] == "mps"
    assert (tmp_path / "out" / "a_mask.png").is_file()


def test_environment_lists_every_data_path_package() -> None:
    env = utils.environment()
    for name in ("vesselflow", "python", "torch", "numpy", "Pillow", "scikit-image", "scipy",
                 "MONAI", "albumentations", "opencv", "pydicom", "nibabel"):
        assert env.get(name), name
    assert env["torch"] == metadata.version("torch")
    assert env["Pillow"] == metadata.version("pillow")
    assert env["MONAI"] == metadata.version("monai")
    assert env["opencv"] != utils.ABSENT  # albumentations needs it: always installed


def test_environment_records_a_missing_optional_package_as_absent(monkeypatch) -> None:
    monkeypatch.setitem(utils.ENV_PACKAGES, "pydicom", ("no-such-dist-vesselflow",))
    assert utils.environment()["pydicom"] == utils.ABSENT
    assert utils.package_version("no-such-dist-vesselflow", "numpy") == metadata.version("numpy")


def test_environment_imports_no_heavy_module() -> None:
    code = ("import sys; from vesselflow.runtime import environment; environment(); "
            "heavy = {'torch', 'numpy', 'monai', 'cv2', 'pydicom', 'skimage'} & set(sys.modules);"
            " print(sorted(heavy)); sys.exit(1 if heavy else 0)")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"}, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
