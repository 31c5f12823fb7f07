"""Calibrate the vessel biomarkers' prediction intervals, and report them on held-out photos.

One command, rerun whenever shipped weights change::

    python scripts/calibrate_biomarkers.py                 # cnf-drive and factored-drive

For each model it

1. measures every labelled photo below as ``vesselflow segment`` does (FOV detected,
   ``--analysis-scale auto``, 16 samples, segment's per-image seed; the tracing measured
   at the same analysis scale inside the same FOV: :func:`vesselflow.vessel.evaluation.
   biomarker_agreement.labelled_record`), one cached file per photo
   (``results/biomarkers/cache/``, reused only for the same model sha256 and settings);
2. fits the calibration on the *calibration* photos only and writes it beside the weights
   (``vesselflow/weights/<model>/biomarkers.json``, with the model's sha256):
   DRIVE's 4 validation photos, clean and under :data:`DEGRADATIONS`; DRIVE's 16 training
   photos under :data:`DEGRADATIONS` only (the model was trained on the clean ones, whose
   residuals would be too small); and a seeded half of HRF, stratified by group
   (:func:`hrf_split`);
3. reports on the *reported* photos only: DRIVE's 20 test photos (with the second observer)
   and the other half of HRF: ``results/biomarkers/<model>/`` (``records.json`` with every
   photo's measurements, ``coverage.json``, ``per_image.csv``), from which
   ``scripts/results_table.py`` builds the tables (run at the end: the README's coverage
   table and docs/RESULTS.md are rewritten by this one command).

Segmentation and the review keep using all 42 HRF photos; only this calibration splits them.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "results" / "biomarkers"
CACHE_VERSION = 1
DEGRADATIONS = ("blur-1", "gamma-1.6", "jpeg-q30")
"""Degradations of DRIVE's training and validation photos in the calibration set
(:data:`vesselflow.vessel.data.corruptions.CORRUPTIONS`): focus, exposure, compression."""
SPLIT_SEED = 26
"""Seed of the HRF calibration / report split."""
HRF_GROUPS = ("h", "dr", "g")


def hrf_split(ids: list[str], seed: int = SPLIT_SEED) -> tuple[list[str], list[str]]:
    """(calibration, reported) halves of HRF's ids, stratified by group (the id's suffix:
    h healthy, dr diabetic retinopathy, g glaucoma): each group is shuffled with ``seed`` and
    half of it (rounded down for g, up for dr: 6 h + 8 dr + 7 g of 12/15/15) calibrates."""
    rng = np.random.default_rng(seed)
    cal, rep = [], []
    for g in HRF_GROUPS:
        members = sorted(i for i in ids if i.rsplit("_", 1)[1] == g)
        order = [members[k] for k in rng.permutation(len(members))]
        k = len(members) // 2 + (len(members) % 2 if g == "dr" else 0)
        cal += sorted(order[:k])
        rep += sorted(order[k:])
    return sorted(cal), sorted(rep)


def photo_sets(data: Path) -> dict[str, list[Any]]:
    """Every measured set: name -> items (id, image, label, fov, label2)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from generalisation import Item, drive_items, hrf_items

    from vesselflow.vessel.data.drive import drive_records

    test = [(Item(r["id"], Path(r["image"]), Path(r["label"]), Path(r["fov"])),
             Path(r["label2"])) for r in drive_records(data / "DRIVE", "test")]
    sets: dict[str, list[Any]] = {
        "drive-val": [(i, None) for i in drive_items(data / "DRIVE", "val")],
        "drive-test": test,
        "hrf": [(i, None) for i in hrf_items(data / "HRF")],
    }
    for c in DEGRADATIONS:
        sets[f"drive-val+{c}"] = [(i, None) for i in drive_items(data / "DRIVE", "val")]
    for c in DEGRADATIONS:
        sets[f"drive-train+{c}"] = [(i, None) for i in drive_items(data / "DRIVE", "train")]
    return sets


def cache_settings(loaded: Any, samples: int, seed: int) -> dict[str, Any]:
    """What a cached photo's record depends on besides the photo: the weights, the threshold,
    the sampling, and the constants of ``auto``'s scale rule (which pick a high-resolution
    photo's analysis scale)."""
    from vesselflow.vessel.analysis.scale_rule import rule_settings
    from vesselflow.vessel.models import threshold_for

    return {"version": CACHE_VERSION, "model_sha256": loaded.sha256, "samples": samples,
            "seed": seed, "analysis_scale": "auto", "threshold": threshold_for(loaded, samples),
            "scale_rule": rule_settings()}


def _same(saved: dict[str, Any], settings: dict[str, Any], set_name: str) -> bool:
    """Whether a cached record was made with ``settings``; DRIVE's photos analysed at scale 1
    do not depend on the scale rule's constants."""
    from vesselflow.vessel.analysis.scale_rule import settings_match

    old = saved.get("settings") or {}
    rule_free = not set_name.startswith("hrf") and \
        saved.get("record", {}).get("analysis_scale") == 1.0
    return set(old) == set(settings) and settings_match(old, settings, rule_free)


def measure_all(name: str, data: Path, samples: int, seed: int, cache: Path
                ) -> dict[str, list[dict[str, Any]]]:
    """Every set's records for model ``name``, one cached JSON per photo."""
    from vesselflow.io.files import write_json
    from vesselflow.io.images import read_image
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.data.corruptions import corrupt, corruption_seed
    from vesselflow.vessel.evaluation.biomarker_agreement import labelled_record
    from vesselflow.vessel.models import load_model

    loaded = load_model(name)
    settings = cache_settings(loaded, samples, seed)
    out: dict[str, list[dict[str, Any]]] = {}
    for set_name, items in photo_sets(data).items():
        cond = set_name.split("+", 1)[1] if "+" in set_name else None
        recs = []
        for k, (it, label2_path) in enumerate(items):
            path = cache / name / set_name / f"{it.id}.json"
            if path.is_file():
                saved = json.loads(path.read_text())
                if _same(saved, settings, set_name):
                    recs.append(saved["record"])
                    continue
            image = read_image(it.image)
            shape = image.shape[:2]
            label = read_mask(it.label, shape=shape)
            label2 = read_mask(label2_path, shape=shape) if label2_path else None
            if cond:
                image = corrupt(image, cond, corruption_seed(seed, cond, it.id,
                                                             "vesselflow-biomarkers"))
            rec = labelled_record(loaded, image, label, label2, samples=samples, seed=seed,
                                  name=it.id)
            rec["set"] = set_name
            write_json(path, {"settings": settings, "record": rec})
            recs.append(rec)
            print(f"[{name}] {set_name} [{k + 1}/{len(items)}] {it.id}: scale "
                  f"{rec['analysis_scale']}, density tracing {rec['tracing']['vessel_density']:.3f}"
                  f" model {rec['mask']['vessel_density']:.3f}, {rec['sample_seconds']:.1f} s + "
                  f"{rec['biomarker_seconds']:.1f} s biomarkers", flush=True)
        out[set_name] = recs
    return out


CALIBRATION_SETS = ("drive-val", *(f"drive-val+{c}" for c in DEGRADATIONS),
                    *(f"drive-train+{c}" for c in DEGRADATIONS))
REPORTED = {"drive-test": "DRIVE test", "hrf-reported": "HRF held-out half"}
POOLED = ("vessel_density", "length_density", "fractal_dimension", "tortuosity",
          "calibre_mean_um")
"""The biomarkers the coverage target pools over."""
LOA = ("vessel_density", "length_density", "calibre_mean_um")
"""The biomarkers whose interval width is set against the observers' limits of agreement."""


def split_sets(sets: dict[str, list[dict[str, Any]]]
               ) -> tuple[list[dict[str, Any]], dict[str, list[dict[str, Any]]], list[str]]:
    """(calibration records, reported records by set, HRF calibration ids)."""
    cal_ids, rep_ids = hrf_split([r["id"] for r in sets["hrf"]])
    cal = [r for s in CALIBRATION_SETS for r in sets[s]]
    cal += [r for r in sets["hrf"] if r["id"] in cal_ids]
    reported = {"drive-test": sets["drive-test"],
                "hrf-reported": [r for r in sets["hrf"] if r["id"] in rep_ids]}
    return cal, reported, cal_ids


def cell(name: str, recs: list[dict[str, Any]]) -> dict[str, Any]:
    """Coverage (with its exact 95% interval), median width and bias of one biomarker's
    calibrated intervals over reported records, beside the raw model's bias and the sample
    intervals' coverage; with a second observer, the observers' 95% limits of agreement."""
    from vesselflow.vessel.biomarkers import NAMES
    from vesselflow.vessel.evaluation.metrics import MIN_RATE_CASES, binomial_interval

    t = np.array([r["tracing"][name] for r in recs], float)
    m = np.array([r["mask"][name] for r in recs], float)
    est = np.array([r["calibrated"][name]["estimate"] for r in recs], float)
    lo = np.array([r["calibrated"][name]["lo"] for r in recs], float)
    hi = np.array([r["calibrated"][name]["hi"] for r in recs], float)
    ok = np.isfinite(t) & np.isfinite(lo) & np.isfinite(hi)
    k, n = int(np.sum((t[ok] >= lo[ok]) & (t[ok] <= hi[ok]))), int(ok.sum())
    out: dict[str, Any] = {"n": n, "covered": k, "coverage": k / n if n else None,
                           "ci95": list(binomial_interval(k, n)) if n else None,
                           "established": n >= MIN_RATE_CASES,
                           "median_width": float(np.median(hi[ok] - lo[ok])) if n else None,
                           "bias": float(np.mean(est[ok] - t[ok])) if n else None,
                           "model_bias": float(np.mean(m[ok] - t[ok])) if n else None,
                           "tracing_mean": float(np.mean(t[ok])) if n else None}
    samples = [np.array([v[NAMES.index(name)] for v in r["per_sample"]], float)
               for r in recs]
    if all(len(s) for s in samples):
        inside = [np.isfinite(s).any() and np.nanpercentile(s, 2.5) <= tv <= np.nanpercentile(
            s, 97.5) for s, tv in zip(samples, t, strict=True) if math.isfinite(tv)]
        out["sample_interval_coverage"] = float(np.mean(inside)) if inside else None
    if all(r["observer2"] is not None for r in recs):
        o2 = np.array([r["observer2"][name] for r in recs], float)
        d = (o2 - t)[np.isfinite(o2) & np.isfinite(t)]
        out["observer_loa_width"] = 2 * 1.96 * float(np.std(d, ddof=1)) if len(d) > 1 else None
        out["observer_bias"] = float(np.mean(d)) if len(d) else None
        k2 = np.isfinite(o2) & ok
        out["observer2_coverage"] = float(np.mean((o2[k2] >= lo[k2]) & (o2[k2] <= hi[k2]))
                                          ) if k2.any() else None
    return out


def pooled_cell(cells: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Coverage pooled over :data:`POOLED` (images x biomarkers; the interval treats them as
    independent, which they are not: read it as a lower bound on the uncertainty)."""
    from vesselflow.vessel.evaluation.metrics import binomial_interval

    k = sum(cells[n]["covered"] for n in POOLED)
    n = sum(cells[n]["n"] for n in POOLED)
    return {"n": n, "covered": k, "coverage": k / n if n else None,
            "ci95": list(binomial_interval(k, n)) if n else None}


def _slim(r: dict[str, Any]) -> dict[str, Any]:
    """A record for records.json: the per-sample values summarised by their 2.5 / 97.5 %
    percentiles (``sample_interval``), the rest as measured."""
    from vesselflow.vessel.biomarkers import NAMES

    out = {k: v for k, v in r.items() if k != "per_sample"}
    v = np.array(r["per_sample"], float).reshape(-1, len(NAMES))
    out["sample_interval"] = {
        n: ([float(x) for x in np.nanpercentile(v[:, j], [2.5, 97.5])]
            if np.isfinite(v[:, j]).any() else None) for j, n in enumerate(NAMES)}
    return out


def fit_and_report(name: str, sets: dict[str, list[dict[str, Any]]], out: Path,
                   samples: int, seed: int) -> None:
    """Fit on the calibration photos, write the calibration beside the weights, report on
    the reported photos (see the module docstring)."""
    from vesselflow.io.files import write_csv, write_json
    from vesselflow.vessel.biomarker_calibration import CALIBRATION_FILE, fit, stratum
    from vesselflow.vessel.biomarkers import NAMES
    from vesselflow.vessel.models import load_model

    loaded = load_model(name)
    cal, reported, cal_ids = split_sets(sets)
    command = "python scripts/calibrate_biomarkers.py"
    meta = {"command": command, "samples": samples, "seed": seed, "analysis_scale": "auto",
            "cache_settings": cache_settings(loaded, samples, seed),
            "degradations": list(DEGRADATIONS), "calibration_sets": list(CALIBRATION_SETS),
            "hrf_calibration_ids": cal_ids, "hrf_split_seed": SPLIT_SEED,
            "n_photos": len(cal),
            "photos_per_stratum": {s: sum(stratum(r["analysis_scale"]) == s for r in cal)
                                   for s in sorted({stratum(r["analysis_scale"]) for r in cal})}}
    calibration = fit(cal, NAMES, loaded.sha256, meta=meta)
    write_json(loaded.path / CALIBRATION_FILE, calibration.to_dict())
    for recs in reported.values():
        for r in recs:
            r["calibrated"] = calibration.apply(r["mask"], r["analysis_scale"])
    cells = {s: {n: cell(n, recs) for n in NAMES} for s, recs in reported.items()}
    summary = {
        "model": {"name": name, "sha256": loaded.sha256, "kind": loaded.config.kind},
        "command": command, "samples": samples, "seed": seed, "level": calibration.level,
        "protocol": "each photo on segment's path (FOV detected, analysis scale auto); the "
                    "tracing brought to the analysis scale (anti-aliased, >= 0.5) and measured "
                    "inside the same FOV; estimate and 90% prediction interval from "
                    f"vesselflow/weights/{name}/{CALIBRATION_FILE}, fitted on the calibration "
                    "photos only; coverage = share of reported photos whose first observer's "
                    "value lies inside the interval",
        "calibration": {"photos": len(cal), "sets": list(CALIBRATION_SETS),
                        "hrf_ids": cal_ids, "per_stratum": meta["photos_per_stratum"]},
        "reported": {s: {"label": REPORTED[s], "ids": [r["id"] for r in recs],
                         "analysis_scales": sorted({r["analysis_scale"] for r in recs}),
                         "per_biomarker": cells[s], "pooled": pooled_cell(cells[s])}
                     for s, recs in reported.items()},
    }
    dest = out / name
    write_json(dest / "coverage.json", summary)
    write_json(dest / "records.json", {"model_sha256": loaded.sha256,
                                       "sets": {s: [_slim(r) for r in recs]
                                                for s, recs in sets.items()}})
    rows = []
    for s, recs in reported.items():
        for r in recs:
            row: dict[str, Any] = {"set": s, "id": r["id"], "analysis_scale": r["analysis_scale"],
                                   "model_sha256": loaded.sha256[:12]}
            for n in NAMES:
                c = r["calibrated"][n]
                row.update({f"{n}_tracing": r["tracing"][n], f"{n}_estimate": c["estimate"],
                            f"{n}_pi90_lo": c["lo"], f"{n}_pi90_hi": c["hi"],
                            f"{n}_model": r["mask"][n]})
            rows.append(row)
    write_csv(dest / "per_image.csv", rows)
    for s, v in summary["reported"].items():
        p = v["pooled"]
        print(f"[{name}] {REPORTED[s]}: pooled coverage {p['coverage']:.3f} "
              f"({p['covered']}/{p['n']}), "
              + ", ".join(f"{n} {v['per_biomarker'][n]['coverage']:.2f}" for n in POOLED),
              flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=["cnf-drive", "factored-drive"])
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--measure-only", action="store_true",
                    help="measure (and cache) the photos; fit and report nothing")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    for name in a.models:
        t0 = time.time()
        sets = measure_all(name, a.data, a.samples, a.seed, a.out / "cache")
        print(f"[{name}] measured {sum(map(len, sets.values()))} photos in "
              f"{time.time() - t0:.0f} s", flush=True)
        if not a.measure_only:
            fit_and_report(name, sets, a.out, a.samples, a.seed)
    if not a.measure_only and a.out == OUT:  # the README and RESULTS tables, from results/
        import subprocess

        subprocess.run([sys.executable, str(ROOT / "scripts" / "results_table.py")], check=True)


if __name__ == "__main__":
    main()
