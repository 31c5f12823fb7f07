"""The built wheel: what ships inside it, and that an installed copy finds its own weights.

Builds from a copy of the sources (no network: ``--no-build-isolation`` uses this venv's
setuptools), so nothing is left in the worktree.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# app/ (the checkout's Streamlit entry file) is copied too: the wheel must leave it out.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "WEIGHTS_AND_DATA.md", "vesselflow", "app")
SHIPPED = sorted(p.name for p in (REPO / "vesselflow" / "weights").iterdir() if p.is_dir())

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name,
                            ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, src / name)
    dist = tmp_path_factory.mktemp("dist")
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps",
                        "--no-build-isolation", "--disable-pip-version-check", "-q", "-w",
                        str(dist), str(src)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    (whl,) = dist.glob("vesselflow-*.whl")
    return whl


def test_wheel_carries_weights_typing_license_and_entry_point(wheel: Path) -> None:
    assert {"cnf-drive", "factored-drive", "sr-cnf", "sr-factored"} <= set(SHIPPED)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        (info,) = {n.split("/")[0] for n in names if n.split("/")[0].endswith(".dist-info")}
        metadata = z.read(f"{info}/METADATA").decode()
        entry_points = z.read(f"{info}/entry_points.txt").decode()
        for m in SHIPPED:
            for f in ("model.safetensors", "config.json"):
                path = f"vesselflow/weights/{m}/{f}"
                assert path in names, path
                assert z.read(path) == (REPO / path).read_bytes(), path
        assert "vesselflow/py.typed" in names
        # The web app ships inside the package, with its pages and Streamlit settings.
        for f in ("main.py", "streamlit.toml", "views/segment.py", "views/superres.py",
                  "views/evaluate.py", "views/about.py"):
            assert f"vesselflow/app/{f}" in names, f
        assert f"{info}/licenses/LICENSE" in names
        assert f"{info}/licenses/WEIGHTS_AND_DATA.md" in names
    assert "License-Expression: MIT" in metadata
    assert "[console_scripts]\nvesselflow = vesselflow.cli:main" in entry_points
    # Core users get neither the web app's nor DICOM's dependencies, nor the test tools.
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    for pkg, extra in (("streamlit", "app"), ("pydicom", "dicom"), ("playwright", "dev"),
                       ("pytest", "dev")):
        lines = [r for r in requires if r.split()[1].startswith(pkg)]
        assert lines and all(f'extra == "{extra}"' in r for r in lines), lines
    assert any(r.startswith("Requires-Dist: opencv-python-headless") for r in requires)
    assert not [n for n in names if n.startswith(("tests/", "app/", "results/"))
                or n.endswith((".tif", ".gif", ".pyc"))]


def test_installed_wheel_finds_its_shipped_weights(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    r = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                        "--disable-pip-version-check", "-q", "--target", str(target),
                        str(wheel)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    code = (
        "import vesselflow, pathlib\n"
        "from vesselflow.io.weights import resolve_model\n"
        "from vesselflow.vessel.models import SHIPPED, load_model\n"
        "from vesselflow.sr.weights import load_sr_model\n"
        "print(pathlib.Path(vesselflow.__file__).resolve())\n"
        "m = load_model('cnf-drive')\n"
        "print(resolve_model('cnf-drive', SHIPPED).resolve(), m.sha256, m.threshold)\n"
        "print(load_sr_model('sr-cnf').path.resolve())\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(PYTHONPATH=str(target), OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    pkg, (weights, sha, thr), sr = (r.stdout.splitlines()[0],
                                    r.stdout.splitlines()[1].split(),
                                    r.stdout.splitlines()[2])
    site = str(target.resolve())
    assert pkg.startswith(site), pkg  # the installed copy, not the worktree
    assert weights == f"{site}/vesselflow/weights/cnf-drive"
    assert sr == f"{site}/vesselflow/weights/sr-cnf"
    assert len(sha) == 64 and 0 < float(thr) < 1
