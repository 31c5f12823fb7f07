"""What a batch command reads: ``-i`` resolved into uniquely named images, and their seeds.

Inputs: one image file, a folder (searched recursively, image types only), a glob
(``'data/**/*.png'``), or a CSV file with ``path[,id]`` rows (paths relative to the CSV; an
optional header row ``path,id``). Each image gets an id: its file stem, or, when two inputs
share a stem, its path relative to the input root with ``/`` written as ``__``; a CSV may give
ids explicitly.
"""

from __future__ import annotations

import csv
import glob
import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path


class BatchError(ValueError):
    """A problem with the run as a whole (bad input spec, refused output folder, bad model).

    Problems with a single image never raise this: they are recorded and the batch goes on.
    """


@dataclass(frozen=True)
class InputItem:
    """One image to segment: its output id and its file path."""

    id: str
    path: Path


def _strip_suffix(name: str) -> str:
    low = name.lower()
    for suffix in (".nii.gz", ".tar.gz"):
        if low.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem if "." in name else name


def _is_image_name(name: str) -> bool:
    from vesselflow.io.images import IMAGE_SUFFIXES  # here: --help must not load numpy

    return name.lower().endswith(IMAGE_SUFFIXES)


def _safe_id(text: str) -> str:
    """A file-name-safe id: [A-Za-z0-9._-] only, no leading dot (outputs must not hide)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")
    safe = re.sub(r"^\.+", "_", safe)
    return safe or "image"


def _candidates(path: Path, root: Path | None) -> list[str]:
    """Ids for ``path`` from shortest to most specific: stem, relative path, path + suffix."""
    try:
        rel = path.relative_to(root) if root is not None else Path(path.name)
    except ValueError:  # outside the root (an absolute path in a CSV): use the whole path
        rel = Path(*path.parts[1:]) if path.is_absolute() else path
    stem = _strip_suffix(path.name)
    parts = [p for p in rel.parts[:-1] if p not in ("", ".", "..")]
    nested = "__".join([*parts, stem])
    suffix = path.name[len(stem):].lstrip(".").replace(".", "_")
    full = f"{nested}_{suffix}" if suffix else nested
    return [_safe_id(stem), _safe_id(nested), _safe_id(full)]


def _assign_ids(entries: list[tuple[Path, list[str], str]]) -> list[InputItem]:
    """Pick for each entry the shortest candidate id that no other entry uses.

    ``entries``: (path, candidate ids, where-it-came-from for error messages). Entries with a
    single candidate (explicit CSV ids) never change; colliding ones escalate one level at a
    time until every id is unique.
    """
    level = [0] * len(entries)
    while True:
        names = [c[min(lv, len(c) - 1)] for (_, c, _), lv in zip(entries, level, strict=True)]
        counts: dict[str, int] = {}
        for n in names:
            counts[n] = counts.get(n, 0) + 1
        changed = False
        for i, ((_, cands, _), name) in enumerate(zip(entries, names, strict=True)):
            if counts[name] > 1 and level[i] < len(cands) - 1:
                level[i] += 1
                changed = True
        if not changed:
            break
    seen: dict[str, str] = {}
    for (_, _, origin), name in zip(entries, names, strict=True):
        if name in seen:
            raise BatchError(f"two inputs would both be named {name!r}: {seen[name]} and "
                               f"{origin}; list each image once (and give distinct ids in a "
                               f"CSV)")
        seen[name] = origin
    return [InputItem(name, path) for (path, _, _), name in zip(entries, names, strict=True)]


def _walk_images(folder: Path, exclude: Path | None) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted; hidden files/folders and ``exclude``
    skipped, so an output folder inside the input folder is never read back as input)."""
    found = []
    excluded = exclude.resolve() if exclude is not None else None
    for dirpath, dirnames, filenames in os.walk(folder):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (excluded is None or (here / d).resolve() != excluded))
        found += [here / f for f in sorted(filenames)
                  if not f.startswith(".") and _is_image_name(f)]
    return found


def _read_csv(path: Path) -> list[tuple[Path, list[str], str]]:
    base = path.parent
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [(i + 1, [c.strip() for c in row]) for i, row in enumerate(csv.reader(f))]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise BatchError(f"{path}: cannot read the CSV ({e})") from e
    rows = [(n, r) for n, r in rows if any(r) and not r[0].startswith("#")]
    if not rows:
        raise BatchError(f"{path}: the CSV lists no images (expected rows path[,id])")
    col_path, col_id = 0, 1
    header = [c.lower() for c in rows[0][1]]
    if header and header[0] in ("path", "image", "file", "id"):
        col_path = next((header.index(k) for k in ("path", "image", "file") if k in header), -1)
        if col_path < 0:
            raise BatchError(f"{path}: header {rows[0][1]} has no 'path' column")
        col_id = header.index("id") if "id" in header else -1
        rows = rows[1:]
    entries = []
    for line, row in rows:
        where = f"{path.name} line {line}"
        if col_path >= len(row) or not row[col_path]:
            raise BatchError(f"{path}: line {line} has no image path")
        p = Path(row[col_path]).expanduser()
        p = p if p.is_absolute() else base / p
        given = row[col_id] if 0 <= col_id < len(row) else ""
        cands = [_safe_id(given)] if given else _candidates(p, base)
        entries.append((p, cands, f"{row[col_path]} ({where})"))
    return entries


def collect_inputs(spec: str | Path, exclude: Path | None = None) -> list[InputItem]:
    """Resolve ``-i`` into a deterministic list of uniquely named images.

    Args:
        spec: an image file, a folder, a glob pattern or a ``.csv`` listing ``path[,id]``.
        exclude: a folder never to read inputs from (the output folder).

    Raises:
        BatchError: nothing found, an unreadable CSV, or two inputs with the same id.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return _assign_ids(_read_csv(path))
    if path.is_file():
        return [InputItem(file_id(path), path)]
    if path.is_dir():
        files = _walk_images(path, exclude)
        if not files:
            from vesselflow.io.images import IMAGE_SUFFIXES

            raise BatchError(f"{path}: no image files in this folder or below (looked for "
                               f"{', '.join(IMAGE_SUFFIXES)})")
        return _assign_ids([(f, _candidates(f, path), str(f)) for f in files])
    if glob.has_magic(text):
        matched = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
        files = [p for p in matched if p.is_file() and not p.name.startswith(".")]
        if exclude is not None:
            ex = exclude.resolve()
            files = [p for p in files if ex not in p.resolve().parents]
        if not files:
            raise BatchError(f"{text}: no files match this pattern")
        root = Path(os.path.commonpath([str(p.parent) for p in files]))
        return _assign_ids([(f, _candidates(f, root), str(f)) for f in files])
    raise BatchError(f"{text}: input not found (expected an image, a folder, a glob or a "
                       f".csv with path[,id] rows)")


def file_id(path: str | Path) -> str:
    """The id of a single input file: its stem (``.nii.gz``, ``.tar.gz`` stripped whole), made
    file-name safe. The app names an upload so, as ``vesselflow segment -i FILE`` does."""
    return _safe_id(_strip_suffix(Path(path).name))


def image_seed(seed: int, image_id: str) -> int:
    """Per-image seed from the run seed and the image id (independent of order and sharding)."""
    digest = hashlib.sha256(f"vesselflow-segment/{seed}/{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)
