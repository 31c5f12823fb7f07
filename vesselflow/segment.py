"""``vesselflow segment``: batch vessel segmentation that never loses work.

Inputs (``-i``): one image file, a folder (searched recursively, image types only), a glob
(``'data/**/*.png'``), or a CSV file with ``path[,id]`` rows (paths relative to the CSV; an
optional header row ``path,id``). Each image gets an id: its file stem, or, when two inputs
share a stem, its path relative to the input root with ``/`` written as ``__``; a CSV may give
ids explicitly.

Per image ``<id>``, all at the input's original size (H, W):

* ``<id>_prob.tif``  float32 mean of the samples (vessel probability) in [0, 1];
* ``<id>_prob.png``  the same as 8-bit (value / 255);
* ``<id>_mask.png``  0/255, ``prob >= threshold`` inside the FOV;
* ``<id>_uncertainty.png``  per-pixel std across samples as 8-bit (value / 510 = std, since a
  binary sample's std is at most 0.5);
* ``<id>_overlay.png``  RGB input with the mask drawn in green;
* ``<id>_fov.png``  0/255 field of view that was detected and used;
* ``<id>_samples.nii.gz`` (``--save-samples``) uint8 0/1 stack (H, W, N), axis 0 = rows.

Per run: ``run.json`` (model, parameters, seed, device, package versions, times, counts,
failures), ``metrics.csv`` (one row per input) and ``biomarkers.csv`` (one row per image:
each vessel biomarker on the mask and its mean / sd / 2.5-97.5 % interval over the samples,
:mod:`vesselflow.biomarkers`; ``--no-biomarkers`` skips it, ``--pixel-size UM`` sets the
micrometres per input pixel). Bookkeeping lives in ``OUT/.vesselflow/``:
``settings.json`` (what a ``--continue`` must match), ``done/<id>.json`` (a marker written
last, atomically, once all of an image's outputs are in place) and per-rank part files.

Never losing work: every file is written to a temp file and renamed; SIGTERM is turned into
KeyboardInterrupt so temp files are removed on ``kill`` as on Ctrl-C; temp files left by a
``kill -9`` are removed by ``--continue``, which redoes every image without a valid marker.

Large images: the FOV is detected and the image is resized so that its FOV diameter matches
DRIVE's (``vesselflow.data.scale``), segmented at the training scale, and the maps are
resized back to the original size (bilinear for probabilities, nearest for the mask and the
samples). A 3504x2336 photograph is therefore sampled at ~840x560. ``--fov-degrees`` (default
45, DRIVE's) tells it another camera's field of view: the target diameter becomes
``537.7 * degrees / 45`` px, so a degree of retina spans DRIVE's pixels (run.json records it).

Sharding: under ``torchrun --nproc_per_node=N -m vesselflow segment ...`` (RANK/WORLD_SIZE in
the environment) rank r takes inputs r, r + N, r + 2N, ... of the (deterministic) input list;
rank 0 merges the per-rank results into run.json and metrics.csv after a gloo barrier. Each
image's seed is derived from ``--seed`` and its id, so results do not depend on the sharding.

Heavy libraries (torch, numpy, Pillow, ...) are imported inside functions: ``vesselflow
--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import glob
import hashlib
import io
import json
import math
import os
import re
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".dcm",
                  ".dicom", ".nii", ".nii.gz")
"""File types a folder input is searched for (case-insensitive)."""

OUTPUT_SUFFIXES = ("_prob.tif", "_prob.png", "_mask.png", "_uncertainty.png", "_overlay.png",
                   "_fov.png")
SAMPLES_SUFFIX = "_samples.nii.gz"
STATE_DIR = ".vesselflow"
RUN_FILES = ("run.json", "metrics.csv", "biomarkers.csv")
METRIC_FIELDS = ("id", "input", "status", "vessel_density", "mean_uncertainty", "seconds",
                 "height", "width", "scale_factor", "error")


class SegmentError(ValueError):
    """A problem with the run as a whole (bad input spec, refused output folder, bad model).

    Problems with a single image never raise this: they are recorded and the batch goes on.
    """


# ------------------------------------------------------------------------------------ inputs
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
            raise SegmentError(f"two inputs would both be named {name!r}: {seen[name]} and "
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
        raise SegmentError(f"{path}: cannot read the CSV ({e})") from e
    rows = [(n, r) for n, r in rows if any(r) and not r[0].startswith("#")]
    if not rows:
        raise SegmentError(f"{path}: the CSV lists no images (expected rows path[,id])")
    col_path, col_id = 0, 1
    header = [c.lower() for c in rows[0][1]]
    if header and header[0] in ("path", "image", "file", "id"):
        col_path = next((header.index(k) for k in ("path", "image", "file") if k in header), -1)
        if col_path < 0:
            raise SegmentError(f"{path}: header {rows[0][1]} has no 'path' column")
        col_id = header.index("id") if "id" in header else -1
        rows = rows[1:]
    entries = []
    for line, row in rows:
        where = f"{path.name} line {line}"
        if col_path >= len(row) or not row[col_path]:
            raise SegmentError(f"{path}: line {line} has no image path")
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
        SegmentError: nothing found, an unreadable CSV, or two inputs with the same id.
    """
    text = str(spec)
    path = Path(text).expanduser()
    if path.is_file() and path.suffix.lower() == ".csv":
        return _assign_ids(_read_csv(path))
    if path.is_file():
        return [InputItem(_candidates(path, path.parent)[0], path)]
    if path.is_dir():
        files = _walk_images(path, exclude)
        if not files:
            raise SegmentError(f"{path}: no image files in this folder or below (looked for "
                               f"{', '.join(IMAGE_SUFFIXES)})")
        return _assign_ids([(f, _candidates(f, path), str(f)) for f in files])
    if glob.has_magic(text):
        matched = sorted(Path(p) for p in glob.glob(os.path.expanduser(text), recursive=True))
        files = [p for p in matched if p.is_file() and not p.name.startswith(".")]
        if exclude is not None:
            ex = exclude.resolve()
            files = [p for p in files if ex not in p.resolve().parents]
        if not files:
            raise SegmentError(f"{text}: no files match this pattern")
        root = Path(os.path.commonpath([str(p.parent) for p in files]))
        return _assign_ids([(f, _candidates(f, root), str(f)) for f in files])
    raise SegmentError(f"{text}: input not found (expected an image, a folder, a glob or a "
                       f".csv with path[,id] rows)")


# ---------------------------------------------------------------------------- naming, seeds
def output_names(image_id: str, save_samples: bool) -> list[str]:
    """File names (in OUT) of one image's outputs."""
    names = [image_id + s for s in OUTPUT_SUFFIXES]
    return [*names, image_id + SAMPLES_SUFFIX] if save_samples else names


def image_seed(seed: int, image_id: str) -> int:
    """Per-image seed from the run seed and the image id (independent of order and sharding)."""
    digest = hashlib.sha256(f"vesselflow-segment/{seed}/{image_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


# ----------------------------------------------------------------------------- distribution
class _Dist:
    """Rank/world from torchrun's environment; a gloo group for barriers when world > 1."""

    def __init__(self) -> None:
        self.rank = int(os.environ.get("RANK", "0"))
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.group = False
        if self.world < 1 or not 0 <= self.rank < self.world:
            raise SegmentError(f"bad RANK={self.rank} / WORLD_SIZE={self.world} environment")
        if self.world > 1:
            if "MASTER_ADDR" not in os.environ:
                raise SegmentError("WORLD_SIZE > 1 but no MASTER_ADDR: launch sharded runs "
                                   "with torchrun --nproc_per_node=N -m vesselflow segment ...")
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
def _sigterm_as_interrupt() -> Iterator[None]:
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


# ------------------------------------------------------------------------------ the folder
def _previous_outputs(out: Path) -> list[str]:
    """Names in OUT that a previous segment run wrote (unrelated files do not count)."""
    if not out.is_dir():
        return []
    found = []
    for entry in sorted(os.listdir(out)):
        if entry in RUN_FILES or entry == STATE_DIR or entry.endswith(
                (*OUTPUT_SUFFIXES, SAMPLES_SUFFIX)):
            found.append(entry)
    return found


def _settings(loaded: Any, samples: int, temperature: float, threshold: float, seed: int,
              save_samples: bool, biomarkers: bool = True,
              pixel_size: float | None = None, fov_degrees: float = 45.0) -> dict[str, Any]:
    """What decides an image's outputs: a --continue must use the same."""
    settings = {"model_sha256": loaded.sha256, "samples": samples, "temperature": temperature,
                "threshold": threshold, "seed": seed, "save_samples": save_samples,
                "biomarkers": biomarkers, "pixel_size_um": pixel_size}
    if fov_degrees != 45.0:  # only when set: folders of earlier runs (no key) still continue
        settings["fov_degrees"] = fov_degrees
    return settings


def _check_folder(out: Path, settings: dict[str, Any], resume: bool, overwrite: bool) -> None:
    """Refuse to mix runs: previous outputs need --continue (same settings) or --overwrite."""
    if out.exists() and not out.is_dir():
        raise SegmentError(f"{out}: exists and is not a folder")
    previous = _previous_outputs(out)
    if not previous or overwrite:
        return
    if not resume:
        shown = ", ".join(previous[:4]) + (", ..." if len(previous) > 4 else "")
        raise SegmentError(f"{out}: holds outputs of a previous run ({shown}); use --continue "
                           f"to finish it, --overwrite to replace it, or another folder")
    path = out / STATE_DIR / "settings.json"
    try:
        before = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # outputs without settings (an old or foreign layout): markers decide per image
    # Runs from before biomarkers existed made none: they resume with --no-biomarkers.
    before = {"biomarkers": False, "pixel_size_um": None, **before}
    diff = {k: (before.get(k), v) for k, v in settings.items() if before.get(k) != v}
    if diff:
        shown = "; ".join(f"{k} was {a!r}, now {b!r}" for k, (a, b) in diff.items())
        raise SegmentError(f"{out}: --continue with different settings ({shown}); use the same "
                           f"settings, or --overwrite")


def _remove_stray_temps(out: Path, names: Sequence[str]) -> int:
    """Delete temp files left beside ``names`` by a killed run (``.<name>.*.tmp``)."""
    removed = 0
    for name in names:
        for tmp in glob.glob(os.path.join(glob.escape(str(out)), f".{glob.escape(name)}.*.tmp")):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
                removed += 1
    return removed


def _marker_path(out: Path, image_id: str) -> Path:
    return out / STATE_DIR / "done" / f"{image_id}.json"


def _completed(out: Path, item: InputItem, save_samples: bool) -> dict[str, Any] | None:
    """The marker of a finished image if all its outputs are present and the input unchanged."""
    try:
        marker = json.loads(_marker_path(out, item.id).read_text())
    except (OSError, ValueError):
        return None
    if not all((out / n).is_file() for n in output_names(item.id, save_samples)):
        return None
    try:
        if marker.get("input_sha256") != _sha256(item.path):
            return None  # the input changed since: redo it
    except OSError:
        return None
    return marker


# ----------------------------------------------------------------------------- one image
@contextlib.contextmanager
def _atomic(path: Path) -> Iterator[Path]:
    """``utils.atomic_path`` with the umask's permissions: its temp files are created 0600
    (mkstemp), and outputs must stay readable by the colleagues who share the folder."""
    from .utils import atomic_path

    with atomic_path(path) as tmp:
        yield tmp
        mask = os.umask(0)  # the only way to read the umask is to set it
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)


def _write_json(path: Path, obj: Any) -> None:
    with _atomic(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


def _write_png(path: Path, array: Any) -> None:
    from PIL import Image

    with _atomic(path) as tmp:
        # Level 3: 2.5x faster than Pillow's default 6 for ~8% larger files (3504x2336 maps).
        Image.fromarray(array).save(tmp, format="PNG", compress_level=3)


def _segment_one(loaded: Any, item: InputItem, out: Path, *, samples: int,
                 temperature: float, threshold: float, seed: int, batch_size: int,
                 save_samples: bool, device: str,
                 on_batch: Callable[[int], None] | None = None, biomarkers: bool = False,
                 pixel_size: float | None = None,
                 fov_degrees: float = 45.0) -> dict[str, Any]:
    """Segment one image and write its outputs; returns its marker/metrics record.

    With ``biomarkers`` the record carries the image's biomarker row (mask value and sample
    mean / sd / interval, :mod:`vesselflow.biomarkers`), for the run's biomarkers.csv.

    Raises whatever reading or sampling raises; the caller records it and goes on.
    """
    import numpy as np
    import tifffile

    from .data.fov import detect_fov
    from .data.io import read_image
    from .inference import segment_image
    from .visualize import overlay

    t0 = time.perf_counter()
    digest = _sha256(item.path) if item.path.is_file() else ""
    image = read_image(item.path)  # (H, W, 3) float32 in [0, 1]; ImageReadError names the file
    h, w = image.shape[:2]
    if min(h, w) < 8:
        raise ValueError(f"{item.path}: image is {w}x{h} pixels, too small to segment")
    fov = detect_fov(image)  # (H, W) bool, at the input's size
    result = segment_image(loaded.model, image, n=samples, temperature=temperature,
                           seed=image_seed(seed, item.id), batch_size=batch_size,
                           keep=samples if save_samples or biomarkers else 0, fov=fov,
                           device=device, name=str(item.path), fov_degrees=fov_degrees,
                           callback=(lambda done, _m: on_batch(done)) if on_batch else None)
    info, t_sample = result.scale, result.seconds
    prob = np.clip(result.original(result.mean), 0.0, 1.0).astype(np.float32)
    std = np.clip(result.original(result.std), 0.0, 0.5).astype(np.float32)
    mask = (prob >= threshold) & fov  # (H, W) bool; outside the FOV is never vessel

    with _atomic(out / f"{item.id}_prob.tif") as tmp:
        tifffile.imwrite(tmp, prob, photometric="minisblack")
    _write_png(out / f"{item.id}_prob.png", np.round(prob * 255).astype(np.uint8))
    _write_png(out / f"{item.id}_mask.png", mask.astype(np.uint8) * 255)
    _write_png(out / f"{item.id}_uncertainty.png",
               np.round(std * 510).clip(0, 255).astype(np.uint8))
    _write_png(out / f"{item.id}_overlay.png", overlay(image, mask))
    _write_png(out / f"{item.id}_fov.png", fov.astype(np.uint8) * 255)
    if save_samples and result.samples is not None:
        _write_samples(out / f"{item.id}{SAMPLES_SUFFIX}", result.samples, info)

    bio: dict[str, Any] | None = None
    t_bio = time.perf_counter()
    if biomarkers:
        from .biomarkers import segmentation_report

        try:
            bio = segmentation_report(result, threshold, loaded.config.kind, pixel_size).row()
        except Exception as e:  # the maps are written: a measurement problem must not undo them
            bio = {"error": f"{item.path}: biomarkers failed: {type(e).__name__}: {e}"}
    t_bio = time.perf_counter() - t_bio
    fov_px = int(fov.sum())
    record = {
        "id": item.id, "input": str(item.path), "input_sha256": digest,
        "status": "ok",
        "vessel_density": float(mask.sum() / fov_px) if fov_px else float("nan"),
        "mean_uncertainty": float(std[fov].mean()) if fov_px else float("nan"),
        "seconds": round(time.perf_counter() - t0, 3),
        "sampling_seconds": round(t_sample, 3), "height": h, "width": w,
        "scale_factor": round(info.factor, 4), "fov_diameter": round(info.fov_diameter, 1),
        "seed": image_seed(seed, item.id), "samples": result.n,
        "outputs": output_names(item.id, save_samples), "finished": _now(),
    }
    if bio is not None:
        record["biomarkers"] = bio
        record["biomarker_seconds"] = round(t_bio, 3)
    # Written last: its presence means every output above is complete (--continue).
    _write_json(_marker_path(out, item.id), record)
    return record


def _write_samples(path: Path, samples: Any, info: Any) -> None:
    """(N, H', W') bool samples -> uint8 NIfTI (H, W, N) at the original size, gzipped."""
    import gzip

    import nibabel as nib
    import numpy as np

    from .data.scale import restore_size

    h, w = info.original_shape
    stack = np.empty((h, w, samples.shape[0]), dtype=np.uint8)
    for k in range(samples.shape[0]):  # one at a time: memory stays at one resized sample
        stack[:, :, k] = restore_size(samples[k], info, order=0)
    img = nib.Nifti1Image(stack, np.eye(4))
    img.header.set_data_dtype(np.uint8)
    with _atomic(path) as tmp:
        # nibabel picks the format from the file name; the temp name has none, so write bytes.
        tmp.write_bytes(gzip.compress(img.to_bytes(), compresslevel=6))


# ------------------------------------------------------------------------------- the run
def _failure_record(item: InputItem, error: BaseException, seconds: float) -> dict[str, Any]:
    from .data.errors import ImageReadError

    msg = str(error) if isinstance(error, ImageReadError) else f"{type(error).__name__}: {error}"
    if str(item.path) not in msg:
        msg = f"{item.path}: {msg}"  # every message names the file
    nan = float("nan")
    return {"id": item.id, "input": str(item.path), "status": "failed", "vessel_density": nan,
            "mean_uncertainty": nan, "seconds": round(seconds, 3), "height": nan, "width": nan,
            "scale_factor": nan, "error": msg}


def _write_metrics(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=METRIC_FIELDS, extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("nan" if isinstance(v, float) and math.isnan(v) else v)
                         for k, v in {**dict.fromkeys(METRIC_FIELDS, ""), **r}.items()})
    with _atomic(path) as tmp:
        tmp.write_text(buf.getvalue())


def _write_biomarkers(path: Path, rows: list[dict[str, Any]]) -> int:
    """biomarkers.csv: one row per image with biomarkers (id, input, then the values)."""
    table = [{"id": r["id"], "input": r["input"], **r["biomarkers"]} for r in rows
             if r.get("biomarkers")]
    buf = io.StringIO()
    keys = list(dict.fromkeys(k for r in table for k in r)) or ["id", "input"]
    writer = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    with _atomic(path) as tmp:
        tmp.write_text(buf.getvalue())
    return len(table)


def _parse_threshold(text: str | float) -> str | float:
    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"threshold must be 'auto' or a number in (0, 1], got "
                                         f"{text!r}") from None
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"threshold must be in (0, 1], got {value}")
    return value


def segment_inputs(inputs: str | Path, out: str | Path, *, model: str = "cnf-drive",
                   samples: int = 16, temperature: float = 1.0,
                   threshold: str | float = "auto", seed: int = 0, device: str = "auto",
                   resume: bool = False, overwrite: bool = False, save_samples: bool = False,
                   progress: bool = True, batch_size: int = 8, biomarkers: bool = True,
                   pixel_size: float | None = None,
                   log: Callable[[str], None] | None = None,
                   fov_degrees: float = 45.0) -> dict[str, Any]:
    """Segment every input image into ``out``; the Python form of ``vesselflow segment``.

    Failed images are recorded (run.json, metrics.csv) and the batch goes on. Under torchrun
    (RANK/WORLD_SIZE set) each rank segments its share and rank 0 writes the merged run files.

    ``fov_degrees``: the camera's field of view (DRIVE's 45 by default), folded into the
    rescale to DRIVE's scale (:func:`vesselflow.data.scale.target_fov_diameter`).

    Returns:
        The run record as written to run.json (``counts``: total/ok/failed/skipped over all
        ranks; ``failures``: id, input, error).

    Raises:
        SegmentError: bad arguments, no inputs, a refused output folder, a model that cannot
            be loaded. KeyboardInterrupt passes through after finished work is recorded.
    """
    say = log or (lambda s: print(s, flush=True))
    out = Path(out).expanduser()
    if resume and overwrite:
        raise SegmentError("--continue and --overwrite exclude each other")
    if samples < 1:
        raise SegmentError(f"--samples must be >= 1, got {samples}")
    if pixel_size is not None and not (math.isfinite(pixel_size) and pixel_size > 0):
        raise SegmentError(f"--pixel-size must be a positive number of um, got {pixel_size}")
    if batch_size < 1:
        raise SegmentError(f"--batch-size must be >= 1, got {batch_size}")
    if not math.isfinite(temperature) or temperature < 0:
        raise SegmentError(f"--temperature must be >= 0, got {temperature}")
    if not (math.isfinite(fov_degrees) and 0 < fov_degrees < 180):
        raise SegmentError(f"--fov-degrees must be in (0, 180), got {fov_degrees}")
    try:
        thr_arg = _parse_threshold(threshold)
    except argparse.ArgumentTypeError as e:
        raise SegmentError(str(e)) from None
    started, t_start = _now(), time.perf_counter()
    items = collect_inputs(inputs, exclude=out)

    dist = _Dist()
    try:
        with _sigterm_as_interrupt():
            return _run(dist, items, inputs, out, say, started, t_start, model=model,
                        samples=samples, temperature=temperature, thr_arg=thr_arg, seed=seed,
                        device=device, resume=resume, overwrite=overwrite,
                        save_samples=save_samples, progress=progress, batch_size=batch_size,
                        biomarkers=biomarkers, pixel_size=pixel_size,
                        fov_degrees=fov_degrees)
    finally:
        dist.close()


def _run(dist: _Dist, items: list[InputItem], inputs: str | Path, out: Path,
         say: Callable[[str], None], started: str, t_start: float, *, model: str, samples: int,
         temperature: float, thr_arg: str | float, seed: int, device: str, resume: bool,
         overwrite: bool, save_samples: bool, progress: bool, batch_size: int,
         biomarkers: bool = True, pixel_size: float | None = None,
         fov_degrees: float = 45.0) -> dict[str, Any]:
    import shutil

    from .models import load_model
    from .utils import pick_device

    listing = hashlib.sha256("\n".join(f"{i.id}\t{i.path}" for i in items).encode()).hexdigest()
    if not dist.all_equal(listing):
        raise SegmentError("the ranks found different input lists (did the input change "
                           "during start-up?); every rank must see the same files")
    try:
        dev = pick_device(device)
    except ValueError as e:
        raise SegmentError(str(e)) from None
    if dev == "cuda" and dist.world > 1:
        dev = f"cuda:{dist.local_rank}"  # one GPU per process on a multi-GPU machine
    try:
        loaded = load_model(model, device=dev)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        raise SegmentError(f"cannot load model {model!r}: {e}") from None
    threshold = loaded.threshold if thr_arg == "auto" else float(thr_arg)
    settings = _settings(loaded, samples, temperature, threshold, seed, save_samples,
                         biomarkers, pixel_size, fov_degrees)
    run = _RunInfo(inputs=inputs, out=out, items=items, world=dist.world, started=started,
                   t_start=t_start, loaded=loaded, settings=settings,
                   parameters={"samples": samples, "temperature": temperature,
                               "threshold": thr_arg, "threshold_used": threshold,
                               "seed": seed, "device": device, "batch_size": batch_size,
                               "fov_degrees": fov_degrees,
                               "save_samples": save_samples, "biomarkers": biomarkers,
                               "pixel_size_um": pixel_size, "continue": resume,
                               "overwrite": overwrite, "no_progress": not progress},
                   device=dev)

    # Every rank checks the folder before any rank writes to it, so they all decide alike.
    _check_folder(out, settings, resume, overwrite)
    dist.barrier()
    state = out / STATE_DIR
    if dist.main:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite and (state / "done").exists():
            shutil.rmtree(state / "done")  # old markers must not vouch for replaced outputs
        for part in state.glob("part-*.json"):
            part.unlink()
        _write_json(state / "settings.json", settings)
        _remove_stray_temps(out, list(RUN_FILES))
    dist.barrier()
    (state / "done").mkdir(parents=True, exist_ok=True)

    mine = items[dist.rank::dist.world]
    # Temp files a killed (kill -9) run left behind; each rank cleans only its own images'.
    _remove_stray_temps(out, [n for i in mine for n in output_names(i.id, True)])
    _remove_stray_temps(state / "done", [f"{i.id}.json" for i in mine])
    if dist.main:
        shards = f" on {dist.world} processes" if dist.world > 1 else ""
        say(f"segment: {len(items)} image(s){shards} with {loaded.name} "
            f"({loaded.config.kind}, sha256 {loaded.sha256[:12]}), {samples} samples, "
            f"threshold {threshold:.3f}, device {dev} -> {out}")

    rows: list[dict[str, Any]] = []
    bar = None
    if progress and dist.main:
        from tqdm import tqdm

        bar = tqdm(total=len(mine), unit="img", dynamic_ncols=True, file=sys.stderr,
                   bar_format="{l_bar}{bar}| {n:.1f}/{total} img "
                              "[{elapsed}<{remaining}{postfix}]")

    def note(text: str, failure: bool = False) -> None:
        # With a bar, only failures get a line (the bar shows the rest); without, every image.
        if failure:
            if bar is not None:
                bar.write(text, file=sys.stderr)
            else:
                print(text, file=sys.stderr, flush=True)
        elif not progress:
            say(text)

    interrupted = False
    try:
        for k, item in enumerate(mine):
            tag = f"[{k + 1}/{len(mine)}]" + (f" rank {dist.rank}" if dist.world > 1 else "")
            if bar is not None:
                bar.set_postfix_str(item.id, refresh=False)
            done_before = _completed(out, item, save_samples) if resume else None
            if done_before is not None:
                rows.append({**done_before, "status": "skipped"})
                note(f"{tag} {item.id}: complete from a previous run, skipped")
                if bar is not None:
                    bar.update(1)
                continue
            t0 = time.perf_counter()
            base = bar.n if bar is not None else 0.0

            def on_batch(done: int, base: float = base) -> None:
                if bar is not None:  # fractional progress within an image keeps the ETA live
                    bar.update(base + 0.95 * done / samples - bar.n)

            try:
                rec = _segment_one(loaded, item, out, samples=samples, temperature=temperature,
                                   threshold=threshold, seed=seed, batch_size=batch_size,
                                   save_samples=save_samples, device=dev, on_batch=on_batch,
                                   biomarkers=biomarkers, pixel_size=pixel_size,
                                   fov_degrees=fov_degrees)
                rows.append(rec)
                note(f"{tag} {item.id}: ok in {rec['seconds']:.1f} s, vessel density "
                     f"{rec['vessel_density']:.3f}")
            except Exception as e:  # one bad image never stops the batch
                rec = _failure_record(item, e, time.perf_counter() - t0)
                rows.append(rec)
                note(f"{tag} {item.id}: FAILED: {rec['error']}", failure=True)
            if bar is not None:
                bar.update(base + 1 - bar.n)
    except KeyboardInterrupt:
        interrupted = True
        raise
    finally:
        if bar is not None:
            bar.close()
        # Record what is finished even when interrupted, so no finished image goes unreported.
        _write_json(state / f"part-{dist.rank}.json",
                   {"rank": dist.rank, "rows": rows, "interrupted": interrupted})
        if interrupted and dist.world == 1:
            _finish(run, interrupted=True)

    dist.barrier()
    record: dict[str, Any] = _finish(run, interrupted=False) if dist.main else {}
    failed = dist.total(sum(r["status"] == "failed" for r in rows))
    dist.barrier()  # nobody exits (and lets torchrun tear the group down) before the merge
    if not dist.main:
        record = {"counts": {"failed": failed}, "failures": []}
    return record


@dataclass
class _RunInfo:
    """What run.json records besides the per-image rows."""

    inputs: str | Path
    out: Path
    items: list[InputItem]
    world: int
    started: str
    t_start: float
    loaded: Any
    settings: dict[str, Any]
    parameters: dict[str, Any]
    device: str


def _finish(run: _RunInfo, *, interrupted: bool) -> dict[str, Any]:
    """Merge the ranks' part files into run.json and metrics.csv (rank 0); print a summary."""
    from . import __version__
    from .utils import environment

    state = run.out / STATE_DIR
    by_id: dict[str, dict[str, Any]] = {}
    for r in range(run.world):
        try:
            part = json.loads((state / f"part-{r}.json").read_text())
        except (OSError, ValueError) as e:
            raise SegmentError(f"{state}: the part file of rank {r} is missing ({e})") from None
        interrupted = interrupted or bool(part.get("interrupted"))
        for row in part["rows"]:
            by_id[row["id"]] = row
    # One row per input, in input order; an interrupted run's remaining inputs read "not run".
    rows = [by_id.get(i.id, {"id": i.id, "input": str(i.path), "status": "not run"})
            for i in run.items]
    counts = {"total": len(rows)}
    for status in ("ok", "failed", "skipped", "not run"):
        counts[status.replace(" ", "_")] = sum(r["status"] == status for r in rows)
    failures = [{"id": r["id"], "input": r["input"], "error": r.get("error", "")}
                for r in rows if r["status"] == "failed"]
    seconds = time.perf_counter() - run.t_start
    loaded, meta = run.loaded, run.loaded.meta
    record = {
        "command": "segment",
        "argv": sys.argv[1:],
        "input": str(run.inputs), "output": str(run.out),
        "model": {"name": loaded.name, "path": str(loaded.path), "kind": loaded.config.kind,
                  "version": meta.get("version", __version__), "sha256": loaded.sha256,
                  "threshold": loaded.threshold, "config": loaded.config.to_dict(),
                  "trained_step": meta.get("step")},
        "parameters": run.parameters,
        "seed": run.settings["seed"], "device": run.device, "world_size": run.world,
        "environment": environment(),
        "started": run.started, "finished": _now(), "seconds": round(seconds, 2),
        "interrupted": interrupted,
        "counts": counts, "failures": failures,
        "outputs": [s.lstrip("_") for s in OUTPUT_SUFFIXES]
        + ([SAMPLES_SUFFIX.lstrip("_")] if run.settings["save_samples"] else []),
    }
    if run.settings.get("biomarkers"):
        from .biomarkers import FACTORED_NOTE, RETINA_MM_45_DEG

        record["biomarkers"] = {
            "file": "biomarkers.csv",
            "images": _write_biomarkers(run.out / "biomarkers.csv", rows),
            "pixel_size_um": run.settings.get("pixel_size_um"),
            "scale": "measured at the analysis scale (DRIVE's FOV diameter); calibre in px "
                     "of the input image; um from --pixel-size, else from the FOV assuming a "
                     f"45 degree field spans {RETINA_MM_45_DEG:g} mm across its diameter",
            "note": FACTORED_NOTE if loaded.config.kind == "factored" else ""}
    _write_metrics(run.out / "metrics.csv", rows)
    _write_json(run.out / "run.json", record)
    per = [r["seconds"] for r in rows if r["status"] == "ok"]
    rate = f", {sum(per) / len(per):.1f} s/image" if per else ""
    not_run = f", {counts['not_run']} not run" if counts["not_run"] else ""
    print(f"segment {'interrupted' if interrupted else 'done'}: {counts['total']} image(s): "
          f"{counts['ok']} ok, {counts['failed']} failed, {counts['skipped']} skipped{not_run} "
          f"in {seconds:.1f} s{rate}", flush=True)
    for f in failures:
        print(f"  failed: {f['error']}", flush=True)
    print(f"  outputs, run.json and metrics.csv in {run.out}"
          + ("; rerun with --continue to finish" if interrupted else ""), flush=True)
    return record


# ----------------------------------------------------------------------------------- CLI
def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``vesselflow segment`` on a subparsers object; sets ``func``."""
    p = sub.add_parser(
        "segment", help="segment a batch of fundus images (file, folder, glob or CSV)",
        description="Segment retinal vessels in one image, a folder (recursive), a glob or a "
        "CSV of path[,id]. Per image: <id>_prob.tif (float32), _prob.png, _mask.png, "
        "_uncertainty.png, _overlay.png, _fov.png (and _samples.nii.gz), at the input's size; "
        "per run: run.json, metrics.csv and biomarkers.csv (vessel biomarkers with sample "
        "intervals). Images are brought to DRIVE's FOV scale for "
        "sampling and the maps resized back. Writes are atomic; --continue resumes an "
        "interrupted run. Shard with torchrun --nproc_per_node=N -m vesselflow segment ...")
    p.add_argument("-i", "--input", required=True,
                   help="image file, folder, glob (quote it) or CSV with path[,id]")
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--model", default="cnf-drive",
                   help="cnf-drive (default), factored-drive, factored-bce, a model folder or a "
                   "checkpoint")
    p.add_argument("--samples", type=int, default=16,
                   help="samples per image for the mean and uncertainty maps (default 16)")
    p.add_argument("--temperature", type=float, default=1.0, help="sampling temperature")
    p.add_argument("--threshold", type=_parse_threshold, default="auto",
                   help="mask threshold on the mean map: auto (the model's, chosen on DRIVE's "
                   "validation split) or a number in (0, 1]")
    p.add_argument("--seed", type=int, default=0,
                   help="run seed; each image's seed derives from it and the image id")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"])
    p.add_argument("--fov-degrees", type=float, default=45.0,
                   help="the camera's field of view in degrees (default 45, DRIVE's); images "
                   "are rescaled so a degree of retina spans as many pixels as in DRIVE")
    p.add_argument("--batch-size", type=int, default=8,
                   help="samples drawn at once (memory-bounded; default 8)")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--continue", dest="resume", action="store_true",
                      help="finish a previous run in OUT: skip images whose outputs are complete")
    mode.add_argument("--overwrite", action="store_true",
                      help="replace the outputs of a previous run in OUT")
    p.add_argument("--save-samples", action="store_true",
                   help="also write the samples as <id>_samples.nii.gz (uint8 H x W x N)")
    p.add_argument("--pixel-size", type=float, default=None, metavar="UM",
                   help="micrometres per input pixel, for calibres in um (default: estimated "
                   "from the FOV, assuming a 45 degree field spans ~13 mm across it)")
    p.add_argument("--no-biomarkers", action="store_true",
                   help="skip the vessel biomarkers (biomarkers.csv)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar: one line per image instead (for logs)")
    p.set_defaults(func=_cmd_segment)
    return p


def _cmd_segment(a: argparse.Namespace) -> int:
    """0: every image segmented; 1: some failed (the rest are written); 2: the run failed."""
    try:
        record = segment_inputs(a.input, a.out, model=a.model, samples=a.samples,
                                temperature=a.temperature, threshold=a.threshold, seed=a.seed,
                                device=a.device, resume=a.resume, overwrite=a.overwrite,
                                save_samples=a.save_samples, progress=not a.no_progress,
                                batch_size=a.batch_size, biomarkers=not a.no_biomarkers,
                                pixel_size=a.pixel_size, fov_degrees=a.fov_degrees)
    except SegmentError as e:
        print(f"vesselflow segment: error: {e}", file=sys.stderr)
        return 2
    return 1 if record["counts"]["failed"] else 0


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser (``python -m vesselflow.segment ...``)."""
    parser = argparse.ArgumentParser(prog="vesselflow")
    add_parser(parser.add_subparsers(dest="command", required=True))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(["segment", *(sys.argv[1:] if argv is None else argv)])
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("\ninterrupted: finished images are kept; rerun with --continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
