"""The machine a command runs on: device choice, package versions for run records,
the torchrun environment and signal handling."""

from __future__ import annotations

import contextlib
import os
import platform
import signal
import sys
from collections.abc import Iterator
from datetime import datetime
from typing import Any


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
    from vesselflow import __version__

    return {"vesselflow": __version__, "python": platform.python_version(),
            **{name: package_version(*dists) for name, dists in ENV_PACKAGES.items()},
            "machine": platform.machine(), "processor": platform.processor() or "",
            "cpus": str(os.cpu_count())}


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def launch_env() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    return (int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")))


class Dist:
    """Rank/world from torchrun's environment; a gloo group for barriers when world > 1."""

    def __init__(self) -> None:
        self.rank, self.world, self.local_rank = launch_env()
        self.group = False
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise RuntimeError(f"bad RANK={self.rank} / WORLD_SIZE={self.world} environment")
        if self.world > 1:
            if "MASTER_ADDR" not in os.environ:
                raise RuntimeError("WORLD_SIZE > 1 but no MASTER_ADDR: launch sharded runs "
                                   "with torchrun --nproc_per_node=N -m vesselflow ...")
            import datetime as dt

            import torch.distributed as tdist

            if not tdist.is_initialized():
                # Ranks wait for each other only at the start and at the end; a shard of a
                # big batch can take hours, hence the long timeout (torchrun stops all ranks
                # if one dies, so nothing waits forever).
                tdist.init_process_group("gloo", timeout=dt.timedelta(days=7))
                self.group = True

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as tdist

            tdist.barrier()

    def all_equal(self, value: str) -> bool:
        """Whether every rank holds the same ``value`` (e.g. the hash of its input list)."""
        if self.world == 1:
            return True
        import torch.distributed as tdist

        values: list[Any] = [None] * self.world
        tdist.all_gather_object(values, value)
        return all(v == values[0] for v in values)

    def total(self, value: int) -> int:
        """Sum of an integer over ranks."""
        if self.world == 1:
            return value
        import torch
        import torch.distributed as tdist

        t = torch.tensor([value], dtype=torch.int64)
        tdist.all_reduce(t)
        return int(t.item())

    def close(self) -> None:
        if self.group:
            import torch.distributed as tdist

            with contextlib.suppress(Exception):
                tdist.destroy_process_group()
            self.group = False


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (``kill``, torchrun stopping workers) into KeyboardInterrupt, so the
    ``finally`` of every atomic write removes its temp file, as on Ctrl-C."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
