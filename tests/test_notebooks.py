"""The research notebooks in notebooks/: committed without outputs, and they run end to end.

Every ``notebooks/*.ipynb`` is picked up automatically. The execution test runs each one with
``VESSELFLOW_NB_SMALL=1`` (tiny sizes) from the notebooks/ folder, as Jupyter and ``make
notebooks`` do, and skips a notebook whose data or weights (``REQUIRES``) are absent.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import data_dir as _data_dir

REPO = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = REPO / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 300  # seconds per cell; a small run takes well under a minute in all

# What each notebook needs: folders under the shared data folder, and paths in the repository.
# A notebook not listed needs nothing beyond the package. flows_explained falls back to a
# synthetic fundus without DRIVE.
REQUIRES: dict[str, dict[str, tuple[str, ...]]] = {
    "drive_results.ipynb": {"data": ("DRIVE",), "repo": ()},
    "superres_results.ipynb": {"data": ("SR",), "repo": ("vesselflow/weights/sr-cnf",)},
}


def _missing(name: str) -> list[str]:
    needs = REQUIRES.get(name, {})
    data = _data_dir()
    missing = [str(data / d) for d in needs.get("data", ()) if not (data / d).is_dir()]
    missing += [str(REPO / p) for p in needs.get("repo", ()) if not (REPO / p).exists()]
    return missing


def _ids(paths: list[Path]) -> list[str]:
    return [p.name for p in paths]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_committed_without_outputs(path: Path) -> None:
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.get("outputs") or cell.get("execution_count") is not None)]
    assert not dirty, (f"{path.name}: code cells {dirty} have outputs or execution counts; "
                       f"clear them before committing (jupyter nbconvert --clear-output "
                       f"--inplace notebooks/{path.name})")
    first_code = next((c for c in nb.cells if c.cell_type == "code"), None)
    assert first_code is not None and "parameters" in first_code.metadata.get("tags", []), \
        f"{path.name}: the first code cell must be the 'parameters' cell (tag it)"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=_ids(NOTEBOOKS))
def test_notebook_executes_small(path: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    missing = _missing(path.name)
    if missing:
        pytest.skip(f"{path.name} needs {', '.join(missing)}")
    # The kernel inherits this environment: tiny sizes, the same data folder as the tests,
    # generated files in a temporary folder instead of reports/.
    monkeypatch.setenv("VESSELFLOW_NB_SMALL", "1")
    monkeypatch.setenv("VESSELFLOW_DATA", str(_data_dir()))
    monkeypatch.setenv("VESSELFLOW_NB_OUT", str(tmp_path))
    nb = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(nb, timeout=CELL_TIMEOUT, kernel_name="python3",
                                     resources={"metadata": {"path": str(NOTEBOOK_DIR)}})
    client.execute()  # raises CellExecutionError, naming the cell, on the first error

    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert images, f"{path.name} produced no figure"
