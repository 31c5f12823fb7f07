"""Analysis-scale benchmark: each model at each ``--analysis-scale``, on full and narrow fields.

Sets (``--sets``):

* ``drive-val``, ``drive-test``: DRIVE's validation (where the rule is fixed) and test images;
* ``drive-val-narrow``, ``drive-test-narrow``, ``hrf-narrow``: their narrow-field views, the
  central two thirds of each photo's FOV inside a circular FOV, black outside, not resized
  (:func:`vesselflow.vessel.data.narrow_field.narrow_field_view`): how a 30-degree camera sees
  the same retina, vessels wider per FOV diameter;
* ``drive-val-x2``: DRIVE's validation photos enlarged 2x (bicubic; tracing and FOV nearest):
  a photo with twice the pixels scale 1 needs, vessels twice DRIVE's width in pixels, so a
  larger analysis scale is allowed; no new detail, so it measures the vessel width the model
  segments best, not the gain from a sharper camera;
* ``hrf``: HRF's 42 labelled photos (3504x2336, another camera): what the rule is measured on.

Each image is analysed as ``vesselflow segment`` does (FOV detected from the image, the
model's a-priori threshold, ``--samples`` samples with segment's per-image seed) at every scale
of ``--scales`` (``auto`` and fixed ones), and scored at the photo's size inside the dataset's
FOV (narrow views: inside the view's FOV); HRF sets also at half size (2x2 block means, the
scale the field's cross-dataset tables use). Per row: pooled F1 at the threshold, max-F1 and
AUC-ROC, the worst image's F1, the scales ``auto`` chose, seconds per image.

Outputs in ``--out`` (default results/analysis_scale/): analysis_scale.json and .md (naming each
model's sha256); cache/ holds one file per (model, set, scale), reused only when its settings
match, so an interrupted run resumes.

    python benchmarks/analysis_scale.py --sets drive-val drive-val-narrow hrf-narrow
    python benchmarks/analysis_scale.py --limit 2 --scales 1 auto --sets drive-val
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SETS = ("drive-val", "drive-val-narrow", "drive-val-x2", "drive-test", "drive-test-narrow", "hrf",
        "hrf-narrow")
CACHE_VERSION = 1
SET_SCALES = {"drive-val": ("1",), "drive-val-x2": ("1", "1.25", "1.5", "1.75", "2", "auto"),
              "drive-val-narrow": ("1", "auto", "0.75"), "drive-test": ("1",),
              "drive-test-narrow": ("1", "auto"), "hrf": ("1", "1.5", "2", "auto"),
              "hrf-narrow": ("1", "auto")}
"""The scales each set is run at unless ``--scales`` says otherwise. DRIVE-sized photos
support no scale above 1 (their pixels), so those sets run at 1 (narrow views: also ``auto``
and 0.75, below the vessel width auto would keep); the enlarged set spans 1-2 in steps."""
DEFAULT_SETS = ("drive-val", "drive-val-x2", "drive-val-narrow", "drive-test-narrow",
                "hrf-narrow")
"""HRF at full field is the generalisation benchmark's (``benchmarks/generalisation.py``)."""


def items(name: str, data: Path) -> list:
    """The labelled images of a set (ids and files), as the generalisation benchmark lists."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from generalisation import drive_items, hrf_items

    base = name.removesuffix("-narrow").removesuffix("-x2")
    if base == "hrf":
        return hrf_items(data / "HRF")
    return drive_items(data / "DRIVE", base.removeprefix("drive-"))


def load_case(item, narrow: bool, enlarge: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image, label, fov) of one item, as a narrow-field view when ``narrow``, enlarged
    ``enlarge`` times (image bicubic, masks nearest) when > 1."""
    import cv2

    from vesselflow.io.images import read_image
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.data.narrow_field import narrow_field_view

    image = read_image(item.image)
    label = read_mask(item.label, shape=image.shape[:2])
    fov = read_mask(item.fov, shape=image.shape[:2])
    if enlarge > 1:
        size = (image.shape[1] * enlarge, image.shape[0] * enlarge)
        image = np.clip(cv2.resize(image, size, interpolation=cv2.INTER_CUBIC), 0, 1)
        label, fov = (cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) > 0
                      for m in (label, fov))
    if not narrow:
        return image, label, fov
    view = narrow_field_view(image, label, fov)
    return view.image, view.label, view.fov


def pooled(records: list[dict], hists: list, key: str | None = None) -> dict:
    """F1 at the threshold (pixel counts), max-F1 and AUC (histograms) of a row's images."""
    from vesselflow.vessel.evaluation.metrics import auc_roc, histogram_points, max_f1

    recs = [r[key] for r in records] if key else records
    tp, fp, fn = (sum(r[k] for r in recs) for k in ("tp", "fp", "fn"))
    p, t, w = histogram_points(np.sum([np.asarray(h) for h in hists], axis=0))
    f1s = np.array([r["f1"] for r in recs])
    return {"f1": 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0,
            "max_f1": max_f1(p, t, w)[0], "auc": auc_roc(p, t, w),
            "min_image_f1": float(f1s.min()), "n_images": len(recs)}


def run_row(loaded, set_name: str, scale: str | float, its: list, args, cache: Path) -> dict:
    """All images of one (model, set, scale), cached."""
    from vesselflow.vessel.evaluation.labelled import analyse
    from vesselflow.vessel.models import threshold_for

    settings = {"version": CACHE_VERSION, "model_sha256": loaded.sha256, "set": set_name,
                "scale": scale, "samples": args.samples, "seed": args.seed,
                "ids": [i.id for i in its], "threshold": threshold_for(loaded, args.samples)}
    if scale == "auto":
        from vesselflow.vessel.analysis.scale_rule import rule_settings

        settings["scale_rule"] = rule_settings()
    path = cache / loaded.name / f"{set_name}-scale-{scale}.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("settings") == settings:
            print(f"[{loaded.name}] {set_name} @ {scale}: cached", flush=True)
            return saved["row"]
    half = set_name.startswith("hrf")
    records, hists, half_hists = [], [], []
    for k, item in enumerate(its):
        image, label, fov = load_case(item, set_name.endswith("-narrow"),
                                      2 if set_name.endswith("-x2") else 1)
        rec, hist = analyse(loaded, image, label, fov, samples=args.samples, seed=args.seed,
                            name=item.id, analysis_scale=scale, half_size=half)
        hists.append(hist)
        if half:
            half_hists.append(rec.pop("half_hist"))
        records.append(rec)
        print(f"[{loaded.name}] {set_name} @ {scale} [{k + 1}/{len(its)}] {item.id}: F1 "
              f"{rec['f1']:.3f} at scale {rec['analysis_scale']}, {rec['seconds']:.1f} s",
              flush=True)
    row = {"full": pooled(records, hists),
           "scales_used": [r["analysis_scale"] for r in records],
           "seconds_per_image": float(np.mean([r["seconds"] for r in records])),
           "per_image": [{k: r[k] for k in ("id", "f1", "analysis_scale", "seconds")}
                         for r in records]}
    if half:
        row["half"] = pooled(records, half_hists, key="half")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"settings": settings, "row": row}))
    tmp.replace(path)
    return row


def markdown(result: dict) -> str:
    """One table per model: a row per (set, scale)."""
    out = ["# Analysis scale", "",
           f"{result['samples']} samples per image, seed {result['seed']}, the model's a-priori "
           "threshold; scored at the photo's size inside the dataset's FOV (narrow views: the "
           "view's FOV); HRF sets also at half size (2x2 block means). Command: "
           f"`{result['command']}`.", ""]
    for name, m in result["models"].items():
        out += [f"## {name} (`{m['sha256'][:12]}`)", "",
                "| set | scale | F1 @ thr | max-F1 | AUC | worst image F1 | half-size F1 "
                "| scales used | s/image |", "|---|---|---|---|---|---|---|---|---|"]
        for key, row in m["rows"].items():
            set_name, scale = key.split("@")
            f, h = row["full"], row.get("half")
            used = [u for u in row["scales_used"] if u is not None]
            span = f"{min(used):.2f}-{max(used):.2f}" if used else "as is"
            half = f"{h['f1']:.4f}" if h else "-"
            out.append(f"| {set_name} | {scale} | {f['f1']:.4f} | {f['max_f1']:.4f} | "
                       f"{f['auc']:.4f} | {f['min_image_f1']:.3f} | {half} | {span} | "
                       f"{row['seconds_per_image']:.1f} |")
        out += ["", *differences(m["rows"])]
    return "\n".join(out)


def differences(rows: dict) -> list[str]:
    """Each set's rows against its scale-1 row: the mean per-image F1 difference (same
    images, paired) with its 95% bootstrap interval over images."""
    from vesselflow.vessel.evaluation.bootstrap import paired_difference

    out = []
    for key, row in rows.items():
        set_name, scale = key.split("@")
        base = rows.get(f"{set_name}@1.0")
        if base is None or scale == "1.0":
            continue
        a = [r["f1"] for r in base["per_image"]]
        b = [r["f1"] for r in row["per_image"]]
        mean, lo, hi = paired_difference(a, b)
        out.append(f"| {set_name} | {scale} vs 1 | {len(a)} | {mean:+.4f} | "
                   f"[{lo:+.4f}, {hi:+.4f}] |")
    if not out:
        return [""]
    return ["Mean per-image F1 difference against scale 1 (paired, 95% bootstrap interval "
            "over images; 4 validation images give wide intervals):", "",
            "| set | scales | images | mean dF1 | 95% interval |", "|---|---|---|---|---|",
            *out, ""]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["cnf-drive", "factored-drive"])
    ap.add_argument("--sets", nargs="+", choices=SETS, default=list(DEFAULT_SETS))
    ap.add_argument("--scales", nargs="+", default=None,
                    help="scales for every set (default: each set's SET_SCALES)")
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="only the first N images per set")
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "analysis_scale")
    a = ap.parse_args(argv)
    import torch

    from vesselflow.io.files import atomic_path, write_json
    from vesselflow.vessel.analysis.scale_rule import parse_scale
    from vesselflow.vessel.models import load_model

    if a.threads:
        torch.set_num_threads(a.threads)
    command = "python benchmarks/analysis_scale.py " + " ".join(argv or sys.argv[1:])
    result = {"command": command.strip(), "samples": a.samples, "seed": a.seed, "models": {}}
    t0 = time.perf_counter()
    for name in a.models:
        loaded = load_model(name)
        rows = {}
        for set_name in a.sets:
            its = items(set_name, a.data)[: a.limit]
            for scale in [parse_scale(s) for s in (a.scales or SET_SCALES[set_name])]:
                rows[f"{set_name}@{scale}"] = run_row(loaded, set_name, scale, its, a,
                                                      a.out / "cache")
        result["models"][name] = {"sha256": loaded.sha256, "threshold": loaded.threshold,
                                  "rows": rows}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    write_json(a.out / "analysis_scale.json", result)
    text = markdown(result)
    with atomic_path(a.out / "analysis_scale.md") as tmp:
        tmp.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
