"""Generalisation benchmark: the shipped models off DRIVE's camera, on the product path.

Conditions: DRIVE test clean; DRIVE test under every corruption of
:data:`vesselflow.vessel.data.corruptions.CORRUPTIONS`; HRF, all 42 labelled images (another camera,
3504x2336) at segment's default ``--analysis-scale auto`` (row ``hrf``) and at each fixed
scale of ``--scales`` (rows ``hrf@1``, ``hrf@1.5``, ``hrf@2``). Each image is analysed exactly
as ``vesselflow segment`` does: FOV detected from the (corrupted) image, the image rescaled to
the analysis scale (``auto``: scale 1, the FOV at DRIVE's diameter, for DRIVE-sized photos),
``--samples`` samples with segment's per-image seed (``--seed`` and the image id), maps resized
back to the original size, mask = ``prob >= the model's a-priori threshold`` (at that sample
count) inside the detected FOV. Scores are at the original size inside the dataset's FOV mask;
HRF rows also at half size (2x2 block means, as the field's cross-dataset tables score HRF).

Per row (pooled over the FOV pixels of all its images, as ``vesselflow evaluate`` pools):
F1 at the threshold (exact pixel counts), max-F1 and AUC-ROC (from a 4097-level histogram of
the probabilities, exact for k/16 sample means: ``metrics.prob_histogram``); per image: F1,
the number of images with F1 < 0.5 (and < 0.6, HRF's target) and of *empty* maps: mask pixels
below 0.5% of the dataset's FOV pixels (DRIVE's tracings cover ~12%).

By default each model gets the input normalisation it was trained with (as ``segment``
does); ``--input-norm model fov-standardise`` adds rows with FOV standardisation forced at
inference (vesselflow.vessel.preprocess.normalise), which measures what it does for a model that
was trained without it.

Outputs in ``--out`` (default results/generalisation/): generalisation.md (every row),
summary.md (one line per model), generalisation.json,
generalisation.png; cache/ keeps one file per (model, norm, condition) so an interrupted or
split run (e.g. one process per model) is resumed: a row is reused only if its settings
(model sha256, samples, seed, image ids, norm) match.

    python benchmarks/generalisation.py                       # everything, 16 samples
    python benchmarks/generalisation.py --limit 2 --conditions clean gamma-1.6 hrf
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from generalisation_report import (  # noqa: F401  (re-exported: the other benchmarks use them)
    HRF_SCALES,
    _fmt,
    all_conditions,
    condition_label,
    condition_scale,
    figure,
    is_hrf,
    markdown,
    summary,
)

from vesselflow.vessel.data.corruptions import corruption_seed
from vesselflow.vessel.evaluation.labelled import EMPTY_FRACTION, analyse

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
CACHE_VERSION = 3  # bump when the analysis or scoring changes: cached rows are redone
# 2: records carry the quality features of vesselflow.vessel.review.verdict
# 3: the analysis scale (DRIVE rows and ``hrf`` at auto, ``hrf@S`` at S), HRF at half size too


@dataclass(frozen=True)
class Item:
    """One labelled image: its id and files."""

    id: str
    image: Path
    label: Path
    fov: Path


def drive_items(root: Path, split: str = "test") -> list[Item]:
    """DRIVE's ``split`` images ("test": the reported set; "val": the 4 validation images on
    which training choices are made)."""
    from vesselflow.vessel.data.drive import drive_records

    return [Item(r["id"], Path(r["image"]), Path(r["label"]), Path(r["fov"]))
            for r in drive_records(root, split)]


def hrf_items(root: Path) -> list[Item]:
    """HRF's labelled images: images/NN_x.jpg|JPG with manual1/NN_x.tif and mask/NN_x_mask.tif."""
    items = []
    for img in sorted(p for p in (root / "images").iterdir()
                      if p.suffix.lower() in (".jpg", ".jpeg")):
        label, fov = root / "manual1" / f"{img.stem}.tif", root / "mask" / f"{img.stem}_mask.tif"
        if label.is_file() and fov.is_file():
            items.append(Item(img.stem, img, label, fov))
    if not items:
        raise SystemExit(f"{root}: no labelled HRF images (images/, manual1/, mask/)")
    return items


def _clamped(cond: str, loaded) -> str:
    """``hrf@S`` with S above the model's trained scale range -> ``hrf@<top>`` (what segment
    analyses it at on a photo with pixels to spare), else ``cond``."""
    from vesselflow.vessel.analysis.scale_rule import trained_range

    if not cond.startswith("hrf@"):
        return cond
    top = trained_range(loaded.config)[1]
    return f"hrf@{top:g}" if float(condition_scale(cond)) > top + 1e-9 else cond


def summarise(records: list[dict], hist: np.ndarray) -> dict:
    """Pooled and per-image numbers of one row (see the module docstring)."""
    from vesselflow.vessel.evaluation.metrics import auc_roc, histogram_points, max_f1

    tp, fp, fn = (sum(r[k] for r in records) for k in ("tp", "fp", "fn"))
    p, t, w = histogram_points(hist)
    f1s = np.array([r["f1"] for r in records])
    return {"n_images": len(records),
            "f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
            "max_f1": max_f1(p, t, w)[0], "auc": auc_roc(p, t, w),
            "mean_image_f1": float(f1s.mean()), "min_image_f1": float(f1s.min()),
            "n_f1_below_0.5": int((f1s < 0.5).sum()), "n_f1_below_0.6": int((f1s < 0.6).sum()),
            "n_empty": int(sum(r["empty"] for r in records)),
            "n_f1_below_0.68": int((f1s < 0.68).sum()),
            "seconds_per_image": float(np.mean([r["seconds"] for r in records])),
            "analysis_scales": [r.get("analysis_scale") for r in records]}


def summarise_half(records: list[dict], hist: np.ndarray) -> dict:
    """The half-size scores of an HRF row (records' ``half``): pooled F1, max-F1, AUC."""
    from vesselflow.vessel.evaluation.metrics import auc_roc, histogram_points, max_f1

    tp, fp, fn = (sum(r["half"][k] for r in records) for k in ("tp", "fp", "fn"))
    p, t, w = histogram_points(hist)
    return {"f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
            "max_f1": max_f1(p, t, w)[0], "auc": auc_roc(p, t, w),
            "min_image_f1": float(min(r["half"]["f1"] for r in records))}


def _file(stem: Path, ext: str) -> Path:
    """``stem`` + ``ext`` (not with_suffix: condition names such as noise-0.02 hold dots)."""
    return stem.parent / f"{stem.name}{ext}"


def run_row(loaded, variant: str, cond: str, items: list[Item], args, norm: str | None,
            cache: Path, cached_only: bool = False) -> dict | None:
    """All images of one (model, norm, condition); cached in ``cache``.

    With ``cached_only`` a row missing from the cache is not computed: returns None.
    """
    from vesselflow.io.images import read_image
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.data.corruptions import corrupt
    from vesselflow.vessel.models import threshold_for

    scale = condition_scale(cond)
    half = is_hrf(cond)
    settings = {"version": CACHE_VERSION, "model_sha256": loaded.sha256,
                "samples": args.samples, "seed": args.seed, "analysis_scale": str(scale),
                "input_norm": norm or f"model:{loaded.config.input_norm}", "condition": cond,
                "drive_split": args.drive_split,
                "ids": [i.id for i in items], "threshold": threshold_for(loaded, args.samples)}
    if cond == "hrf":  # large photos at auto: the rule's constants decide the scale (DRIVE-
        # sized photos never take auto's first pass, so their rows do not depend on them)
        from vesselflow.vessel.analysis.scale_rule import rule_settings

        settings["scale_rule"] = rule_settings()
    lab = condition_label(cond, args.drive_split)
    stem = cache / variant / (cond if args.drive_split == "test" or is_hrf(cond)
                              else f"{args.drive_split}-{cond}")
    if _file(stem, ".json").is_file() and _file(stem, ".npy").is_file():
        saved = json.loads(_file(stem, ".json").read_text())
        if saved.get("settings") == settings:
            print(f"[{variant}] {lab}: cached ({len(items)} images)",
                  flush=True)
            return {"records": saved["records"], "hist": np.load(_file(stem, ".npy"))}
    if cached_only:
        return None
    from vesselflow.io.files import atomic_path, write_json

    # Images finished by an interrupted run of the same settings are kept (one file per row).
    records, hist = [], None
    partial = stem.parent / f"{stem.name}.partial"
    if _file(partial, ".json").is_file() and _file(partial, ".npy").is_file():
        saved = json.loads(_file(partial, ".json").read_text())
        if saved.get("settings") == settings:
            records, hist = saved["records"], np.load(_file(partial, ".npy"))
            print(f"[{variant}] {lab}: resuming after {len(records)} "
                  f"image(s)", flush=True)
    stem.parent.mkdir(parents=True, exist_ok=True)
    for k, it in enumerate(items):
        if k < len(records):
            continue
        image = read_image(it.image)
        shape = image.shape[:2]
        label, fov_true = read_mask(it.label, shape=shape), read_mask(it.fov, shape=shape)
        if cond != "clean" and not is_hrf(cond):
            image = corrupt(image, cond, corruption_seed(args.seed, cond, it.id))
        rec, h = analyse(loaded, image, label, fov_true, samples=args.samples,
                         seed=args.seed, input_norm=norm, name=it.id, analysis_scale=scale,
                         half_size=half)
        if half:  # the row's histogram is (2, ...): full size, then half size
            h = np.stack([h, np.asarray(rec.pop("half_hist"))])
        records.append(rec)
        hist = h if hist is None else hist + h
        print(f"[{variant}] {lab} [{k + 1}/{len(items)}] {it.id}: "
              f"F1 {rec['f1']:.3f}, mask {100 * rec['mask_fraction']:.1f}% of FOV"
              f"{' EMPTY' if rec['empty'] else ''}, x{rec['scale_factor']:.3f} (scale "
              f"{rec['analysis_scale']}), "
              f"{rec['seconds']:.1f} s", flush=True)
        with atomic_path(_file(partial, ".npy")) as tmp, open(tmp, "wb") as f:
            np.save(f, hist)
        write_json(_file(partial, ".json"), {"settings": settings, "records": records})
    with atomic_path(_file(stem, ".npy")) as tmp, open(tmp, "wb") as f:
        np.save(f, hist)
    write_json(_file(stem, ".json"), {"settings": settings, "records": records})
    for suffix in (".json", ".npy"):
        _file(partial, suffix).unlink(missing_ok=True)
    return {"records": records, "hist": hist}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["cnf-drive", "factored-drive"])
    p.add_argument("--samples", type=int, default=16, help="samples per image (default 16)")
    p.add_argument("--seed", type=int, default=0, help="run seed, as segment's --seed")
    p.add_argument("--conditions", nargs="+", default=None,
                   help="subset of: clean, <corruption names>, hrf (default all)")
    p.add_argument("--input-norm", nargs="+", default=["model"],
                   choices=["model", "none", "fov-standardise"],
                   help="inference-time input normalisation(s): model (the one the model was "
                   "trained with, as segment uses it), none or fov-standardise (forced); "
                   "several give several rows")
    p.add_argument("--limit", type=int, default=None, help="first N images per dataset")
    p.add_argument("--drive-split", default="test", choices=["test", "val"],
                   help="DRIVE images for the clean and corrupted rows: test (reported) or val "
                   "(the 4 validation images, for choosing a training recipe)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--drive", type=Path, default=DATA / "DRIVE")
    p.add_argument("--hrf", type=Path, default=DATA / "HRF")
    p.add_argument("--out", type=Path, default=ROOT / "results" / "generalisation")
    p.add_argument("--cached-only", action="store_true",
                   help="only tabulate rows already in OUT/cache (a partial or split run)")
    a = p.parse_args(argv)
    known = all_conditions()
    a.conditions = known if a.conditions is None else [
        c.removeprefix("drive-").removeprefix("drive+") for c in a.conditions]
    bad = [c for c in a.conditions if c not in known]
    if bad:
        p.error(f"unknown condition(s) {bad}; known: {' '.join(known)}")
    if a.samples < 1 or (a.limit is not None and a.limit < 1):
        p.error("--samples and --limit must be >= 1")
    return a


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    import torch

    from vesselflow.io.files import write_json
    from vesselflow.vessel.models import load_model

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    datasets = {"drive": drive_items(args.drive, args.drive_split)[: args.limit]}
    if any(is_hrf(c) for c in args.conditions):
        datasets["hrf"] = hrf_items(args.hrf)[: args.limit]
    # --cached-only only says where the rows come from (a full run's cache, kept out of git);
    # the recorded command is the one that computes them from a clean clone.
    shown = [a if " " not in a else f"'{a}'" for a in (argv if argv is not None
                                                        else sys.argv[1:])
             if a != "--cached-only"]
    result = {"command": " ".join(["python benchmarks/generalisation.py", *shown]),
              "drive_split": args.drive_split,
              "samples": args.samples, "seed": args.seed, "limit": args.limit,
              "empty_fraction": EMPTY_FRACTION, "thresholds": {}, "models": {}, "rows": {},
              "images": {}, "missing": {}}
    for name in args.models:
        loaded = load_model(name)
        result["thresholds"][loaded.name] = loaded.threshold
        result["models"][loaded.name] = {"sha256": loaded.sha256, "kind": loaded.config.kind}
        for norm in args.input_norm:
            variant = loaded.name if norm == "model" else f"{loaded.name}+{norm}"
            result["rows"][variant], result["images"][variant] = {}, {}
            done = {}
            rows_by_cond: dict[str, dict | None] = {}
            for cond in sorted(args.conditions, key=lambda c: _clamped(c, loaded) != c):
                items = datasets["hrf" if is_hrf(cond) else "drive"]
                lab = condition_label(cond, args.drive_split)
                same = _clamped(cond, loaded)
                if same != cond and same in rows_by_cond:
                    # a fixed scale above the trained range is clamped to its top on every
                    # HRF photo (their pixels allow more): the same analysis, not redone
                    print(f"[{variant}] {lab}: clamped to the trained range, = {same}",
                          flush=True)
                    row = rows_by_cond[same]
                else:
                    row = run_row(loaded, variant, cond, items, args,
                                  None if norm == "model" else norm, args.out / "cache",
                                  cached_only=args.cached_only)
                rows_by_cond[cond] = row
                if row is None:
                    print(f"[{variant}] {lab}: not in the cache, left out",
                          flush=True)
                    result["missing"].setdefault(variant, []).append(cond)
                    continue
                hist = row["hist"]
                s = summarise(row["records"], hist[0] if is_hrf(cond) else hist)
                if is_hrf(cond):
                    s["half"] = summarise_half(row["records"], hist[1])
                done[cond] = (s, row["records"])
                print(f"[{variant}] {lab}: F1 {s['f1']:.3f}, max-F1 "
                      f"{s['max_f1']:.3f}, AUC {_fmt(s['auc'])}, {s['n_f1_below_0.5']} "
                      f"image(s) F1 < 0.5, {s['n_empty']} empty", flush=True)
            for cond in all_conditions():
                if cond in done:
                    result["rows"][variant][cond], result["images"][variant][cond] = done[cond]
    result["seconds"] = round(time.perf_counter() - t_start, 1)
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "generalisation.json", result)
    table = markdown(result)
    from vesselflow.io.files import atomic_path

    with atomic_path(args.out / "generalisation.md") as tmp:
        tmp.write_text(table)
    with atomic_path(args.out / "summary.md") as tmp:
        tmp.write_text(summary(result))
    figure(result, args.out / "generalisation.png")
    print("\n" + table, flush=True)
    print(f"generalisation: {sum(len(r) for r in result['rows'].values())} rows in "
          f"{result['seconds']:.0f} s -> {args.out}/generalisation.{{md,json,png}}", flush=True)
    return result


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))  # run from a checkout without installing
    main()
