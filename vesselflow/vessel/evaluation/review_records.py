"""Per-map review records: one labelled photo, optionally degraded, analysed on segment's path,
scored against its tracing, with the review features of its per-image summary.

The unit of the review's calibration (:mod:`vesselflow.vessel.evaluation.review_calibration`)
and of its evaluation (``benchmarks/review_flags.py``). Records are JSON lines in a cache file,
keyed by ``key`` and the settings (model sha256, samples, seed, analysis scale): an interrupted
run resumes, and a record made with other weights or settings is made again.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vesselflow.io.weights import LoadedModel

RECORD_VERSION = 2


@dataclass(frozen=True)
class MapJob:
    """One map to make: a labelled photo (files), the degradation to apply first (``family``
    "clean", a calibration family with its ``strength``, a held-out family or a corruption of
    :mod:`vesselflow.vessel.data.corruptions`) and the set it belongs to."""

    set: str
    id: str
    image: str
    label: str
    fov: str
    family: str = "clean"
    strength: int | None = None

    @property
    def key(self) -> str:
        s = "" if self.strength is None else f"/{self.strength}"
        return f"{self.set}/{self.family}{s}/{self.id}"


def degraded(job: MapJob, image: np.ndarray, seed: int) -> np.ndarray:
    """The job's photo under its degradation (seeded per run seed, family and image)."""
    from vesselflow.vessel.data.corruptions import CORRUPTIONS, corrupt, corruption_seed
    from vesselflow.vessel.data.degradations import degrade

    if job.family == "clean":
        return image
    tag = job.family if job.strength is None else f"{job.family}-{job.strength}"
    s = corruption_seed(seed, tag, job.id, "vesselflow-review")
    if job.family in CORRUPTIONS:
        return corrupt(image, job.family, s)
    return degrade(image, job.family, job.strength, s)


def settings(loaded: LoadedModel, samples: int, seed: int, analysis_scale: str | float
             ) -> dict[str, Any]:
    """What a record depends on besides its photo; at ``auto`` also the scale rule's
    constants (they pick a high-resolution photo's scale)."""
    from vesselflow.vessel.analysis.scale_rule import AUTO, rule_settings

    out = {"version": RECORD_VERSION, "model_sha256": loaded.sha256, "samples": samples,
           "seed": seed, "analysis_scale": analysis_scale}
    if analysis_scale == AUTO:
        out["scale_rule"] = rule_settings()
    return out


def _matches(r: dict[str, Any], want: dict[str, Any]) -> bool:
    """A record made with ``want``; DRIVE-sized photos (every set but HRF) analysed at scale 1
    do not depend on the scale rule's constants."""
    from vesselflow.vessel.analysis.scale_rule import settings_match

    return settings_match(r, want, r.get("set") != "hrf" and r.get("analysis_scale_used") == 1.0)


def make_record(loaded: LoadedModel, job: MapJob, *, samples: int, seed: int,
                analysis_scale: str | float) -> dict[str, Any]:
    """Analyse one job's photo on segment's path; the record (F1, features, timing)."""
    from vesselflow.io.images import read_image
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.analysis.pipeline import AnalysisError
    from vesselflow.vessel.evaluation.labelled import analyse

    image = read_image(job.image)
    label = read_mask(job.label, shape=image.shape[:2])
    fov = read_mask(job.fov, shape=image.shape[:2])
    image = degraded(job, image, seed)
    base = {"key": job.key, "set": job.set, "id": job.id, "family": job.family,
            "strength": job.strength, **settings(loaded, samples, seed, analysis_scale)}
    try:
        r, _ = analyse(loaded, image, label, fov, samples=samples, seed=seed, name=job.id,
                       analysis_scale=analysis_scale)
    except AnalysisError as e:
        return {**base, "refused": str(e), "f1": 0.0, "features": {}}
    return {**base, "f1": round(r["f1"], 5), "mask_fraction": round(r["mask_fraction"], 5),
            "analysis_scale_used": r["analysis_scale"], "seconds": r["seconds"],
            "features": {k: round(float(v), 6) for k, v in r["quality"].items()}}


def load_records(path: Path | None, want: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The cached records of ``path`` made with settings ``want``, by key."""
    out: dict[str, dict[str, Any]] = {}
    if path is None or not Path(path).is_file():
        return out
    for line in Path(path).read_text().splitlines():
        try:
            r = json.loads(line)
        except ValueError:
            continue  # a line cut by an interruption
        if _matches(r, want):
            out[r["key"]] = r
    return out


def run_jobs(loaded: LoadedModel, jobs: Iterable[MapJob], cache: Path | None, *,
             samples: int = 16, seed: int = 0, analysis_scale: str | float = "auto",
             say: Callable[..., None] = print, cached_only: bool = False
             ) -> list[dict[str, Any]]:
    """Records of ``jobs`` (cached ones reused, new ones appended to ``cache``), in order;
    with ``cached_only`` the jobs not in the cache are left out."""
    jobs = list(jobs)
    done = load_records(cache, settings(loaded, samples, seed, analysis_scale))
    out, t0 = [], time.perf_counter()
    if cache is not None:
        Path(cache).parent.mkdir(parents=True, exist_ok=True)
    for k, job in enumerate(jobs):
        rec = done.get(job.key)
        if rec is None and cached_only:
            continue
        if rec is None:
            rec = make_record(loaded, job, samples=samples, seed=seed,
                              analysis_scale=analysis_scale)
            if cache is not None:
                with open(cache, "a") as f:
                    f.write(json.dumps(rec) + "\n")
            say(f"[{loaded.name} {k + 1}/{len(jobs)}] {job.key}: F1 {rec['f1']:.3f} "
                f"({time.perf_counter() - t0:.0f} s)", flush=True)
        out.append(rec)
    return out


def calibration_jobs(drive: Path, per_cell: int = 4) -> list[MapJob]:
    """The calibration maps: DRIVE's 20 training-folder images clean, and every calibration
    family at every strength on ``per_cell`` of them (a rotating choice, so each image is seen
    under several families and strengths)."""
    from vesselflow.vessel.data.degradations import CALIBRATION_FAMILIES, STRENGTHS
    from vesselflow.vessel.data.drive import drive_records

    recs = drive_records(drive, "trainval")
    jobs = [MapJob("calibration", r["id"], r["image"], r["label"], r["fov"]) for r in recs]
    for fi, family in enumerate(CALIBRATION_FAMILIES):
        for k in range(STRENGTHS):
            start = (fi * STRENGTHS + k) * per_cell
            for j in range(start, start + per_cell):
                r = recs[j % len(recs)]
                jobs.append(MapJob("calibration", r["id"], r["image"], r["label"], r["fov"],
                                   family, k))
    return jobs
