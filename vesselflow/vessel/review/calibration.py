"""Calibrate a model's quality reference (issue 14) and store it next to its weights.

Calibration maps: DRIVE's 20 training-folder images (16 training + 4 validation), clean, and
each of the 16 training images under ``per_image`` corruptions of
:mod:`vesselflow.vessel.data.corruptions` (assigned round-robin, so every corruption is used
about equally; seeded). Every map is made on segment's path
(:func:`vesselflow.vessel.evaluation.labelled.analyse`) and scored against its tracing. The
reference ranges (:func:`vesselflow.vessel.review.verdict.ranges_from`) are those of the *good*
maps (F1 >= :data:`~vesselflow.vessel.review.verdict.GOOD_F1`). The test set and HRF are never
used: they are where the flags are evaluated (``benchmarks/review_flags.py``).

    python -m vesselflow.vessel.review.calibration --model cnf-drive --drive ../shared/data/DRIVE

writes ``quality.json`` into the model's folder (the shipped ``vesselflow/weights/<name>/`` or
a run's ``best/``), with every calibration map's F1 and features for inspection.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from vesselflow.vessel.review.verdict import GOOD_F1, REFERENCE_FILE, Reference, ranges_from


def calibration_plan(drive: Path, per_image: int = 4) -> list[tuple[dict, str]]:
    """(DRIVE record, condition) pairs: trainval clean, then train x ``per_image``
    corruptions."""
    from vesselflow.vessel.data.corruptions import CORRUPTIONS
    from vesselflow.vessel.data.drive import drive_records

    names = list(CORRUPTIONS)
    plan = [(r, "clean") for r in drive_records(drive, "trainval")]
    for i, rec in enumerate(drive_records(drive, "train")):
        for j in range(per_image):
            plan.append((rec, names[(i * per_image + j) % len(names)]))
    return plan



def calibrate(loaded: Any, drive: Path, *, samples: int = 16, per_image: int = 4,
              seed: int = 0, say=print) -> tuple[Reference, list[dict[str, Any]]]:
    """Analyse the calibration maps and derive the reference; returns it and the rows."""
    from vesselflow.batch.inputs import image_seed
    from vesselflow.io.images import read_image
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.data.corruptions import corrupt, corruption_seed
    from vesselflow.vessel.evaluation.labelled import analyse

    plan = calibration_plan(drive, per_image)
    rows, t0 = [], time.perf_counter()
    for k, (rec, cond) in enumerate(plan):
        image = read_image(rec["image"])
        label = read_mask(rec["label"], shape=image.shape[:2])
        fov = read_mask(rec["fov"], shape=image.shape[:2])
        if cond != "clean":
            image = corrupt(image, cond, corruption_seed(seed, cond, rec["id"],
                                                          "vesselflow-quality"))
        r, _ = analyse(loaded, image, label, fov, samples=samples,
                       seed=image_seed(seed, rec["id"]), name=rec["id"])
        rows.append({"id": rec["id"], "condition": cond, "f1": round(r["f1"], 4),
                     **{f: round(v, 6) for f, v in r["quality"].items()}})
        say(f"[{k + 1}/{len(plan)}] {rec['id']} {cond}: F1 {r['f1']:.3f}", flush=True)
    good = [r for r in rows if r["f1"] >= GOOD_F1]
    if len(good) < 5:
        raise ValueError(f"only {len(good)} of {len(rows)} calibration maps have F1 >= "
                         f"{GOOD_F1}: the model is too poor to calibrate a reference")
    meta = {"model_sha256": loaded.sha256, "threshold": loaded.threshold, "samples": samples,
            "seed": seed, "per_image": per_image, "good_f1": GOOD_F1,
            "n_maps": len(rows), "n_good": len(good), "margin": 0.05,
            "definition": "per feature, [min, max] over the good calibration maps widened by "
                          "5% of the span on each side",
            "seconds": round(time.perf_counter() - t0, 1), "maps": rows}
    return Reference(ranges_from(good, margin=0.05), meta), rows


def main(argv: list[str] | None = None) -> int:
    """Calibrate and store a model's quality reference."""
    import torch

    from vesselflow.io.files import write_json
    from vesselflow.vessel.models import load_model

    p = argparse.ArgumentParser(prog="python -m vesselflow.vessel.review.calibration",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="shipped name, model folder or run folder")
    p.add_argument("--drive", type=Path, required=True, help="DRIVE folder")
    p.add_argument("--samples", type=int, default=16, help="samples per map (segment's default)")
    p.add_argument("--per-image", type=int, default=4, help="corruptions per training image")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    if a.threads:
        torch.set_num_threads(a.threads)
    loaded = load_model(a.model)
    ref, rows = calibrate(loaded, a.drive, samples=a.samples, per_image=a.per_image, seed=a.seed)
    ref.meta["command"] = " ".join(["python -m vesselflow.vessel.review.calibration",
                                    *(argv if argv is not None else sys.argv[1:])])
    write_json(Path(loaded.path) / REFERENCE_FILE, ref.to_dict())
    print(f"{loaded.name}: {ref.meta['n_good']} of {len(rows)} calibration maps good "
          f"(F1 >= {GOOD_F1}); ranges -> {Path(loaded.path) / REFERENCE_FILE}")
    for name, (lo, hi) in ref.ranges.items():
        print(f"  {name:14s} {lo:9.4f} .. {hi:9.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
