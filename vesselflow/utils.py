"""Small shared helpers: atomic writes, hashing, device choice, run metadata."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path``; rename it over ``path`` only if the block succeeds.

    Readers never see a half-written file, and an interrupted write leaves the old one intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    # mkstemp creates 0600 files; give the result the permissions a plain open() would.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_json(path: str | Path, obj: Any) -> None:
    """Write JSON atomically (indent 2, keys in insertion order)."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def write_csv(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write dict rows as CSV atomically; columns in order of first appearance."""
    import csv
    import io

    keys = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys)
    w.writeheader()
    w.writerows(rows)
    with atomic_path(path) as tmp:
        tmp.write_text(buf.getvalue())


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def mps_available() -> bool:
    """Whether torch offers Apple's Metal (MPS) backend on this machine."""
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def pick_device(name: str = "auto") -> str:
    """'auto' -> 'cuda' when a GPU is visible, else 'cpu'; explicit names are checked.

    'mps' (Apple silicon) is used when torch offers it; elsewhere a message on stderr says so
    and the CPU is used instead. 'auto' never picks MPS: it has to be asked for.
    """
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA GPU is available")
    if name == "mps":
        if mps_available():
            return "mps"
        print("vesselflow: --device mps: this torch offers no MPS (Apple silicon GPU) here "
              "(torch.backends.mps.is_available() is False); using the CPU instead",
              file=sys.stderr, flush=True)
        return "cpu"
    if name not in {"cpu"} and not name.startswith("cuda"):
        raise ValueError(f"unknown device {name!r}: use auto, cpu, cuda or mps")
    return name


# Every package on the data path (decoding, resizing, augmentation, metrics, the model), by
# distribution name. opencv ships under several names; the first one installed is recorded.
ENV_PACKAGES: dict[str, tuple[str, ...]] = {
    "torch": ("torch",), "numpy": ("numpy",), "Pillow": ("pillow",),
    "scikit-image": ("scikit-image",), "scipy": ("scipy",), "scikit-learn": ("scikit-learn",),
    "MONAI": ("monai",), "albumentations": ("albumentations",),
    "opencv": ("opencv-python-headless", "opencv-python", "opencv-contrib-python-headless",
               "opencv-contrib-python"),
    "pydicom": ("pydicom",), "nibabel": ("nibabel",), "tifffile": ("tifffile",),
    "safetensors": ("safetensors",),
}
ABSENT = "absent"


def package_version(*dists: str) -> str:
    """Installed version of the first of ``dists`` found, else ``"absent"`` (no import)."""
    from importlib import metadata

    for d in dists:
        try:
            return metadata.version(d)
        except metadata.PackageNotFoundError:
            continue
    return ABSENT


def environment() -> dict[str, str]:
    """Versions of the packages that decide results, for run manifests.

    Read from the installed distributions' metadata (importlib.metadata), so nothing heavy is
    imported; an optional package that is not installed (pydicom without ``[dicom]``) reads
    ``"absent"``.
    """
    from . import __version__

    return {"vesselflow": __version__, "python": platform.python_version(),
            **{name: package_version(*dists) for name, dists in ENV_PACKAGES.items()},
            "machine": platform.machine(), "processor": platform.processor() or "",
            "cpus": str(os.cpu_count())}
