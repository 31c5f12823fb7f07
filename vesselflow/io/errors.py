"""Errors raised by the data package.

Every bad input (a missing, empty, corrupt, oversized or blank file, a wrong-size mask, an
incomplete dataset folder) raises :class:`ImageReadError` or a subclass, so callers such as the
web app can catch one type and show ``str(err)``, which always names the file.
"""

from __future__ import annotations

from pathlib import Path


class ImageReadError(ValueError):
    """A file (or uploaded buffer) could not be used as an image, mask or dataset.

    Attributes:
        path: The file name or path the problem is about (a string, as given by the caller).
        problem: A short human-readable description of what is wrong.
    """

    def __init__(self, path: str | Path, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")

    def __reduce__(self) -> tuple[type, tuple[str, str]]:
        # Keeps the error picklable, so it crosses DataLoader worker processes intact.
        return (type(self), (self.path, self.problem))


class DatasetLayoutError(ImageReadError):
    """A dataset folder or archive is incomplete or not laid out as expected."""
