"""The model's vessel biomarkers against the manual tracing's (``vesselflow evaluate``).

Per image, at the analysis scale (the tracing brought there with the image, see
:func:`analysis_label`): the biomarkers of the tracing, of the model's thresholded mean map
and of each sample (their 2.5-97.5 % interval); with a second observer, its biomarkers too.
Per biomarker over images:

* ``bias``: mean of (model mask - tracing); ``pearson_r``: their correlation;
* ``calibrated``: with the model's calibration (:mod:`vesselflow.vessel.biomarker_calibration`),
  the share of images whose tracing value lies inside the 90 % prediction interval, the
  median interval width and the bias of the calibrated estimate (the target: >= 0.85 pooled
  over the five biomarkers of ``scripts/calibrate_biomarkers.py``, on photos not in the
  calibration);
* ``coverage``: the share of images whose tracing value lies inside the samples' 2.5-97.5 %
  interval (the model uncertainty, not a prediction interval: it under-covers);
* ``interval_width``: the mean width of the sample intervals, set against the second
  observer's spread: the width of the 95 % limits of agreement between the two tracings
  (2 x 1.96 x sd of observer 2 - observer 1). Intervals much narrower than that are
  over-confident about what a human would trace.
* ``observer``: the second observer against the first (bias, correlation): the human
  reference for how much two tracings differ.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vesselflow.vessel.biomarkers import (
    BIOMARKERS,
    NAMES,
    STATS,
    BiomarkerReport,
    PixelScale,
    measure,
)

if TYPE_CHECKING:
    from vesselflow.vessel.preprocess.scale import ScaleInfo

KEY_BIOMARKERS = ("vessel_density", "length_density", "calibre_mean_um")
"""Those whose interval width is set against the observers' limits of agreement."""


def analysis_label(label: np.ndarray, scale: ScaleInfo) -> np.ndarray:
    """A tracing (H, W) bool brought to the analysis size (``ScaleInfo.scaled_shape``).

    Anti-aliased linear resize, then >= 0.5: a thin vessel shrunk by 0.17 stays where half
    its area is (nearest-neighbour picking would drop or keep it by the sampling phase).
    """
    from skimage.transform import resize

    label = np.asarray(label, dtype=bool)
    if not scale.resized:
        return label
    small = resize(label.astype(np.float32), tuple(scale.scaled_shape), order=1,
                   anti_aliasing=scale.factor < 1, preserve_range=True)
    return small >= 0.5


def case_record(case_id: str, report: BiomarkerReport, tracing: np.ndarray, fov: np.ndarray,
                scale: PixelScale, label2: np.ndarray | None = None) -> dict[str, Any]:
    """One image's biomarkers: model (mask + samples), tracing, second observer (or None)."""
    return {"id": case_id, "mask": report.mask, "samples": report.samples,
            "calibrated": report.calibrated,
            "tracing": measure(tracing, fov, scale),
            "observer2": measure(label2, fov, scale) if label2 is not None else None,
            "scale_factor": scale.factor, "um_per_input_px": scale.input_um_per_px}


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) < 3 or np.std(a) == 0 or np.std(b) == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def _finite(x: float | None) -> float | None:
    return float(x) if x is not None and math.isfinite(x) else None


def compare(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-biomarker bias, correlation, coverage and interval width over images."""
    out: dict[str, Any] = {}
    for name in NAMES:
        t = np.array([r["tracing"][name] for r in records], float)
        m = np.array([r["mask"][name] for r in records], float)
        lo = np.array([r["samples"][name]["lo"] for r in records], float)
        hi = np.array([r["samples"][name]["hi"] for r in records], float)
        sm = np.array([r["samples"][name]["mean"] for r in records], float)
        ok = np.isfinite(t) & np.isfinite(m)
        ok_i = np.isfinite(t) & np.isfinite(lo) & np.isfinite(hi)
        entry: dict[str, Any] = {
            "unit": BIOMARKERS[name][0], "n": int(ok.sum()),
            "tracing_mean": _finite(np.mean(t[ok])) if ok.any() else None,
            "model_mean": _finite(np.mean(m[ok])) if ok.any() else None,
            "bias": _finite(np.mean(m[ok] - t[ok])) if ok.any() else None,
            "pearson_r": _finite(_pearson(m[ok], t[ok])),
            "bias_sample_mean": _finite(np.nanmean(sm[ok_i] - t[ok_i])) if ok_i.any()
            else None,
            "coverage": _finite(np.mean((t[ok_i] >= lo[ok_i]) & (t[ok_i] <= hi[ok_i])))
            if ok_i.any() else None,
            "interval_width": _finite(np.mean(hi[ok_i] - lo[ok_i])) if ok_i.any() else None,
        }
        cal = [r.get("calibrated") for r in records]
        if records and all(c is not None for c in cal):
            clo = np.array([c[name]["lo"] for c in cal], float)
            chi = np.array([c[name]["hi"] for c in cal], float)
            est = np.array([c[name]["estimate"] for c in cal], float)
            k = np.isfinite(t) & np.isfinite(clo) & np.isfinite(chi)
            entry["calibrated"] = {
                "n": int(k.sum()),
                "coverage": _finite(np.mean((t[k] >= clo[k]) & (t[k] <= chi[k])))
                if k.any() else None,
                "median_width": _finite(np.median(chi[k] - clo[k])) if k.any() else None,
                "bias": _finite(np.mean(est[k] - t[k])) if k.any() else None}
        obs = [r["observer2"] for r in records]
        if all(o is not None for o in obs) and records:
            o2 = np.array([o[name] for o in obs], float)
            k = np.isfinite(o2) & np.isfinite(t)
            d = o2[k] - t[k]
            loa = 2 * 1.96 * float(np.std(d, ddof=1)) if len(d) > 1 else float("nan")
            width = entry["interval_width"]
            entry["observer"] = {
                "bias": _finite(np.mean(d)) if len(d) else None,
                "pearson_r": _finite(_pearson(o2[k], t[k])),
                "abs_diff_mean": _finite(np.mean(np.abs(d))) if len(d) else None,
                "loa_width": _finite(loa),
                "coverage_of_observer2": _finite(np.mean(
                    (o2[k & ok_i] >= lo[k & ok_i]) & (o2[k & ok_i] <= hi[k & ok_i])))
                if (k & ok_i).any() else None,
            }
            if width is not None and math.isfinite(loa):
                entry["intervals_vs_observer"] = "narrower" if width < loa else "wider"
        out[name] = entry
    return out


def per_image_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows for ``biomarkers_per_image.csv``: tracing, mask, sample stats, observer 2."""
    rows = []
    for r in records:
        row: dict[str, Any] = {"id": r["id"], "scale_factor": round(r["scale_factor"], 4),
                               "um_per_input_px": round(r["um_per_input_px"], 3)}
        for name in NAMES:
            row[f"{name}_tracing"] = r["tracing"][name]
            row[f"{name}_mask"] = r["mask"][name]
            if r.get("calibrated") is not None:
                c = r["calibrated"][name]
                row.update({f"{name}_estimate": c["estimate"], f"{name}_pi90_lo": c["lo"],
                            f"{name}_pi90_hi": c["hi"]})
            for s in STATS:
                row[f"{name}_{s}"] = r["samples"][name][s]
            if r["observer2"] is not None:
                row[f"{name}_observer2"] = r["observer2"][name]
        rows.append(row)
    return rows


def write_outputs(out: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """Write ``biomarkers_per_image.csv``; return the metrics.json ``biomarkers`` section."""
    from vesselflow.io.files import write_csv

    write_csv(out / "biomarkers_per_image.csv", per_image_rows(records))
    return {
        "protocol": "measured at the analysis scale (FOV brought to DRIVE's diameter, as "
                    "vesselflow segment); the tracing (and second observer) resized there "
                    "(anti-aliased, >= 0.5); model value = thresholded mean map at the "
                    "a-priori threshold; calibrated = the model's 90 % prediction interval "
                    "(biomarkers.json beside its weights); coverage / interval_width = "
                    "the samples' 2.5-97.5 % interval (model uncertainty); "
                    "um from the FOV: a 45 degree field ~ 13 mm across its diameter",
        "key_biomarkers": list(KEY_BIOMARKERS),
        "per_biomarker": compare(records),
    }


def labelled_record(loaded: Any, image: np.ndarray, label: np.ndarray,
                    label2: np.ndarray | None = None, *, samples: int = 16, seed: int = 0,
                    name: str = "image", analysis_scale: str | float = "auto",
                    pixel_size: float | None = None) -> dict[str, Any]:
    """One labelled photo's biomarkers as ``vesselflow segment`` measures them, beside its
    tracing's: the unit of the biomarker calibration (``scripts/calibrate_biomarkers.py``).

    The photo goes through segment's path (FOV detected, analysis scale ``auto``, segment's
    per-image seed, the model's threshold at ``samples``); the tracing (and ``label2``) is
    brought to the analysis scale (:func:`analysis_label`) and measured inside the same
    detected FOV with the same pixel scale, so model and tracing differ only by the map.
    A CNF's samples are measured one by one (``per_sample``); a factored model's are not
    vessel maps and are skipped.
    """
    import time

    from vesselflow.vessel.analysis.pipeline import segment_image
    from vesselflow.vessel.analysis.summary import summarise
    from vesselflow.vessel.biomarkers import measure, pixel_scale
    from vesselflow.vessel.models import threshold_for

    t0 = time.perf_counter()
    cnf = loaded.config.kind == "cnf"
    seg = segment_image(loaded.model, image, n=samples, seed=seed, name=name,
                        keep=samples if cnf else 0, analysis_scale=analysis_scale)
    summary = summarise(seg, threshold_for(loaded, samples), None)
    info = seg.scale
    scale = pixel_scale(info.fov_diameter, info.factor, pixel_size, seg.fov_degrees)
    t1 = time.perf_counter()
    per_sample = [measure(s, seg.fov, scale) for s in (seg.samples if cnf else [])]
    rec = {"id": name, "mask": measure(summary.mask, seg.fov, scale, summary.skeleton),
           "per_sample": [[v[k] for k in NAMES] for v in per_sample],
           "tracing": measure(analysis_label(label, info), seg.fov, scale),
           "observer2": (measure(analysis_label(label2, info), seg.fov, scale)
                         if label2 is not None else None),
           "scale_factor": info.factor, "um_per_px": scale.um_per_px,
           "analysis_scale": summary.analysis_scale,
           "mean_uncertainty": summary.mean_uncertainty,
           "sample_seconds": round(t1 - t0, 2),
           "biomarker_seconds": round(time.perf_counter() - t1, 2)}
    return rec
