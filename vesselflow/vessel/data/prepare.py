"""DRIVE verification and preparation: check every file of a download (readable, right size,
sha256 manifest) and write it in the canonical layout of :mod:`vesselflow.vessel.data.drive`
(``vesselflow prepare-drive``)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from vesselflow.io.errors import DatasetLayoutError, ImageReadError
from vesselflow.io.images import read_image_bytes
from vesselflow.io.masks import read_mask_bytes
from vesselflow.vessel.data.drive import (
    DRIVE_SHAPE,
    TEST_IDS,
    TRAIN_IDS,
    VAL_IDS,
    Log,
    _collect,
    _locate_split_dirs,
    _skip_dir,
    find_drive_root,
)

_MAX_ARCHIVE_BYTES = 2 << 30  # DRIVE is ~30 MB; anything near this is not DRIVE


# ----------------------------------------------------------------------------- verification
def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _verify_files(files: Mapping[str, Path], log: Log | None = None) -> dict[str, Any]:
    """Read, decode and hash every file; raise one error listing every bad file."""
    entries: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    counts: dict[str, int] = {}
    for n, (rel, src) in enumerate(sorted(files.items()), start=1):
        folder = rel.rsplit("/", 1)[0]
        counts[folder] = counts.get(folder, 0) + 1
        try:
            data = src.read_bytes()
        except OSError as exc:
            problems.append(f"{src}: cannot read ({exc.strerror or exc})")
            continue
        try:
            if "/images/" in rel:
                shape = read_image_bytes(data, str(src)).shape[:2]
            else:
                shape = read_mask_bytes(data, str(src)).shape
        except ImageReadError as exc:
            problems.append(str(exc))
            continue
        if tuple(shape) != DRIVE_SHAPE:
            problems.append(
                f"{src}: size {shape[1]}x{shape[0]}, expected DRIVE's "
                f"{DRIVE_SHAPE[1]}x{DRIVE_SHAPE[0]} (width x height)"
            )
        entries[rel] = {"sha256": _sha256(data), "bytes": len(data)}
        if log is not None and (n % 20 == 0 or n == len(files)):
            log(f"  verified {n}/{len(files)} files")
    if problems:
        root = next(iter(files.values())).parents[2] if files else Path(".")
        raise DatasetLayoutError(
            root,
            f"{len(problems)} bad DRIVE file(s): "
            + "; ".join(problems[:8])
            + (" ..." if len(problems) > 8 else ""),
        )
    return {
        "dataset": "DRIVE",
        "image_size": {"height": DRIVE_SHAPE[0], "width": DRIVE_SHAPE[1]},
        "counts": dict(sorted(counts.items())),
        "n_files": len(entries),
        "splits": {"train": list(TRAIN_IDS), "val": list(VAL_IDS), "test": list(TEST_IDS)},
        "files": entries,
    }


def verify_drive(root: str | Path) -> dict[str, Any]:
    """Check a DRIVE copy file by file and describe it.

    Every expected file must exist, decode, and be 565x584.

    Args:
        root: DRIVE folder (with or without a top ``DRIVE/``).

    Returns:
        Manifest dict: ``counts`` per folder, ``image_size``, ``n_files``, ``splits`` and
        ``files`` (relative path -> {sha256, bytes}), plus ``root``.

    Raises:
        DatasetLayoutError: Missing, unreadable or wrong-size files (all listed).
    """
    training, test = _locate_split_dirs(root)
    manifest = _verify_files(_collect(training, test))
    manifest["root"] = str(find_drive_root(root))
    return manifest


# ----------------------------------------------------------------------------- preparation
def _zip_sources(sources: Sequence[Path]) -> tuple[list[Path], Path | None]:
    """Split the sources into archives to extract, or one extracted folder to read."""
    zips: list[Path] = []
    folders: list[Path] = []
    for src in sources:
        if not src.exists():
            raise DatasetLayoutError(src, "source not found")
        if src.is_dir():
            folders.append(src)
        elif zipfile.is_zipfile(src):
            zips.append(src)
        else:
            raise DatasetLayoutError(src, "not a folder or a zip archive")
    if not folders:
        return zips, None
    if zips or len(folders) > 1:
        raise DatasetLayoutError(folders[0], "give one DRIVE folder, or the zip archive(s)")
    folder = folders[0]
    try:
        _locate_split_dirs(folder)
    except DatasetLayoutError:
        # A download folder holding training.zip + test.zip (or DRIVE.zip) instead of a tree.
        inner = sorted(p for p in folder.iterdir() if p.is_file() and zipfile.is_zipfile(p))
        if inner:
            return inner, None
        raise
    return [], folder


def _extract(archive: Path, dest: Path, log: Log | None) -> None:
    if log is not None:
        log(f"extracting {archive.name} ...")
    try:
        with zipfile.ZipFile(archive) as zf:
            members = [m for m in zf.infolist() if not m.filename.startswith("__MACOSX")]
            total = sum(m.file_size for m in members)
            if total > _MAX_ARCHIVE_BYTES:
                raise DatasetLayoutError(
                    archive, f"archive unpacks to {total / 2**30:.1f} GiB; DRIVE is ~30 MB"
                )
            # ZipFile.extract drops absolute paths and '..', so members stay inside dest.
            for member in members:
                zf.extract(member, dest)
    except zipfile.BadZipFile as exc:
        raise DatasetLayoutError(archive, f"corrupt zip archive ({exc})") from exc
    # An archive of archives (DRIVE.zip holding training.zip and test.zip): one more level.
    for inner in sorted(dest.rglob("*.zip")):
        if not _skip_dir(inner.name):
            sub = inner.with_suffix("")
            _extract(inner, sub, log)
            inner.unlink()


def prepare_drive(
    src: str | Path | Sequence[str | Path],
    dest: str | Path,
    *,
    overwrite: bool = False,
    log: Log | None = None,
) -> dict[str, Any]:
    """Verify a DRIVE download and write it in the canonical layout with a manifest.

    Args:
        src: The official ``training.zip`` and ``test.zip`` (a list of both, or a folder
            holding them), a single ``DRIVE.zip``, or an extracted folder (with or without a
            top ``DRIVE/``).
        dest: Output folder; receives ``training/{images,1st_manual,mask}``,
            ``test/{images,1st_manual,2nd_manual,mask}`` and ``manifest.json``. Written
            atomically: everything goes to a temporary folder beside it, then is renamed.
        overwrite: Replace a non-empty ``dest``.
        log: Called with progress messages (e.g. ``print``).

    Returns:
        The manifest written to ``dest/manifest.json``.

    Raises:
        DatasetLayoutError: Bad source (missing/corrupt/wrong-size files, bad archive) or
            ``dest`` not empty without ``overwrite``.
    """
    sources = [Path(s) for s in ([src] if isinstance(src, str | Path) else src)]
    if not sources:
        raise DatasetLayoutError("<none>", "no source given")
    dest = Path(dest)
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())) and not overwrite:
        raise DatasetLayoutError(dest, "destination exists and is not empty (use overwrite)")
    zips, folder = _zip_sources(sources)
    origin = [z.resolve() for z in zips] if zips else [Path(folder or ".").resolve()]
    label = " + ".join(z.name for z in zips) if zips else str(folder)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-", dir=dest.parent))
    search = tmp / "src" if zips else Path(folder or ".")

    def shown(path: Path) -> str:  # paths inside the temporary extraction, named by archive
        return f"{label}:{path.relative_to(search).as_posix()}" if zips else str(path)

    try:
        try:
            for archive in zips:
                _extract(archive, search, log)
            training, test = _locate_split_dirs(search)
            if log is not None:
                log(f"found training/ at {shown(training)}, test/ at {shown(test)}")
            files = _collect(training, test)
            if log is not None:
                log(f"verifying {len(files)} files (decode, size, sha256) ...")
            manifest = _verify_files(files, log)
        except DatasetLayoutError as exc:
            if not zips or exc.path.startswith(tuple(str(z) for z in zips)):
                raise
            # Name the archives, not the temporary folder that is about to disappear.
            problem = exc.problem.replace(str(search) + os.sep, f"{label}:")
            problem = problem.replace(str(search), label)
            raise DatasetLayoutError(", ".join(str(z) for z in zips), problem) from None
        manifest["source"] = [str(p) for p in origin]
        staging = tmp / "out"
        if log is not None:
            log(f"copying {len(files)} files ...")
        for rel, path in files.items():
            target = staging / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, target)
            if _sha256(target.read_bytes()) != manifest["files"][rel]["sha256"]:
                raise DatasetLayoutError(path, "copy does not match the source (disk error?)")
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        if dest.exists():  # empty, or overwrite=True: move the old copy aside first
            os.replace(dest, tmp / "old")
        os.replace(staging, dest)
        if log is not None:
            log(f"wrote {len(files)} files and manifest.json to {dest}")
        return manifest
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
