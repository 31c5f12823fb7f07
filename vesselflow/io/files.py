"""Files that are never half-written: atomic writes, JSON and CSV, sha256 of a file."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator, Mapping, Sequence
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


def csv_bytes(rows: Sequence[Mapping[str, Any]], fields: Sequence[str] | None = None) -> bytes:
    """Dict rows as CSV bytes (``\\n`` line ends): the one CSV convention of every table.

    ``fields``: the columns in order (keys outside them are left out, missing ones empty);
    default every key, in order of first appearance. Floats are written as Python prints them
    (NaN as ``nan``), so a value read back with ``float()`` is the value written.
    """
    import csv
    import io

    keys = list(fields) if fields is not None else list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue().encode()


def write_csv(path: str | Path, rows: Sequence[Mapping[str, Any]],
              fields: Sequence[str] | None = None) -> None:
    """Write :func:`csv_bytes` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(csv_bytes(rows, fields))


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
