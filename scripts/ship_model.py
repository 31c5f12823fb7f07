"""Copy a trained run's best checkpoint into ``vesselflow/weights/<name>/`` with provenance.

Usage::

    python scripts/ship_model.py --run runs/cnf-drive --name cnf-drive [--drive DRIVE]
    vesselflow evaluate --model cnf-drive --drive DRIVE --samples 100 --out results/cnf-drive
    python scripts/ship_model.py --shipped --name cnf-drive --eval results/cnf-drive

``--shipped`` re-ships the weights already in ``vesselflow/weights/<name>/`` (their training
provenance is kept): to attach a new evaluation or refresh the threshold and model card.

Writes ``model.safetensors`` and ``config.json`` (model config + meta: the a-priori threshold
chosen on DRIVE's validation split on the mean of as many samples as the evaluation uses
(``THRESHOLD_SAMPLES``, 100), the test
metrics from ``vesselflow evaluate`` with their 95% bootstrap intervals, the training command,
steps, wall time and hardware, and the weights' sha256), plus a short ``MODEL_CARD.md``, the
review calibration and (unless ``--no-biomarker-calibration``) the biomarkers' calibration
(``scripts/calibrate_biomarkers.py``, ``biomarkers.json``). An evaluation run with another
threshold than the shipped one is refused.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shipping import read_evaluation, read_run, repo_path, ship, training_meta

from vesselflow.io.weights import WEIGHTS_DIR
from vesselflow.vessel.models import load_model
from vesselflow.vessel.review.verdict import CALIBRATION_FILE

TEST_KEYS = ("bpd", "bpd_fov", "max_f1", "f1", "threshold", "precision", "recall", "auc_roc",
             "average_precision", "ece", "sample_precision", "sample_recall", "human",
             "n_images", "n_samples", "bpd_canvas", "canvas", "ci95", "bootstrap")
LIKELIHOOD = {"cnf": "conditional normalizing flow (binary variational dequantization)",
              "weighted": "factored per-pixel baseline trained on the paper's weighted "
                          "Bernoulli (vessel term weight 0.9, background 0.1), likelihood "
                          "with its normaliser",
              "bernoulli": "factored per-pixel baseline trained on the plain (unweighted) "
                           "Bernoulli likelihood"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="training run folder (its best/ is shipped)")
    src.add_argument("--shipped", action="store_true",
                     help="re-ship vesselflow/weights/NAME itself, keeping its provenance")
    ap.add_argument("--name", required=True)
    ap.add_argument("--eval", type=Path, default=None,
                    help="vesselflow evaluate output of these weights (adds test metrics)")
    ap.add_argument("--drive", type=Path, default=Path("../shared/data/DRIVE"))
    ap.add_argument("--no-quality", action="store_true",
                    help="skip calibrating the review (vesselflow.vessel.evaluation."
                    "review_calibration: 164 maps of DRIVE's training images, ~10 min)")
    ap.add_argument("--threshold-samples", type=int, default=None,
                    help="samples per validation image the a-priori threshold is chosen at "
                    "(default THRESHOLD_SAMPLES, the evaluation's 100); a threshold already "
                    "chosen at this count is kept")
    ap.add_argument("--threshold-table", action="store_true",
                    help="(re)choose the per-count thresholds on the validation split "
                    "(choose_thresholds); a run's own table is kept otherwise")
    ap.add_argument("--no-biomarker-calibration", action="store_true",
                    help="skip calibrating the biomarkers' prediction intervals "
                    "(scripts/calibrate_biomarkers.py: ~150 labelled photos, 30-60 min on one "
                    "thread; run it later, until then the intervals are refused as made for "
                    "other weights)")
    a = ap.parse_args()

    from vesselflow.vessel.train.validation import (
        THRESHOLD_COUNTS,
        THRESHOLD_SAMPLES,
        choose_threshold,
        choose_thresholds,
    )

    if a.shipped:
        loaded = load_model(WEIGHTS_DIR / a.name)
        test = read_evaluation(a.eval, loaded.sha256)
        training = loaded.meta["training"]
    else:
        loaded = load_model(a.run / "best")
        run_cfg, summary, test = read_run(a.run, a.eval, loaded.sha256)
        training = training_meta(run_cfg, summary, "DRIVE training images 22-26, 28-32, "
                                 "34-38, 40 (16); validation 21, 27, 33, 39")
    n_thr = a.threshold_samples or THRESHOLD_SAMPLES
    threshold = {k: loaded.meta[k] for k in ("threshold", "val_f1_at_threshold",
                                             "threshold_samples") if k in loaded.meta}
    if a.threshold_table or (not a.shipped and "thresholds" not in loaded.meta):
        print("choosing the a-priori thresholds at each sample count on the validation split "
              "...", flush=True)
        table = choose_thresholds(loaded.model, a.drive, "cpu",
                                  counts=tuple(sorted({*THRESHOLD_COUNTS, n_thr})))
        old = loaded.meta.get("threshold")
        if old is not None and loaded.meta.get("threshold_samples") == n_thr \
                and abs(table[str(n_thr)]["threshold"] - old) < 1e-6:
            # the same choice as before (a float32 round trip apart): keep the stored value,
            # so an evaluation made at it still belongs to the model
            table[str(n_thr)]["threshold"] = old
        threshold = {"threshold": table[str(n_thr)]["threshold"],
                     "val_f1_at_threshold": table[str(n_thr)]["f1"],
                     "threshold_samples": n_thr, "thresholds": table}
    elif "thresholds" in loaded.meta:
        threshold["thresholds"] = loaded.meta["thresholds"]
    if threshold.get("threshold_samples") != n_thr:
        print(f"choosing the a-priori threshold on the validation split (mean of "
              f"{n_thr} samples) ...", flush=True)
        thr = choose_threshold(loaded.model, a.drive, "cpu", n_samples=n_thr)
        threshold = {"threshold": thr["threshold"], "val_f1_at_threshold": thr["f1"],
                     "threshold_samples": n_thr}
    if test and abs(test["threshold"] - threshold["threshold"]) > 1e-12:
        raise SystemExit(f"{a.eval} was evaluated at threshold {test['threshold']:.4f}, the "
                         f"model's a-priori threshold is {threshold['threshold']:.4f}: ship "
                         f"without --eval first, then evaluate the shipped model")

    meta = {
        **loaded.meta,
        **threshold,
        "name": a.name,
        "test_metrics": ({k: test[k] for k in TEST_KEYS if k in test} if test
                         else loaded.meta.get("test_metrics") if a.shipped else None),
        "training": training,
    }
    if a.shipped and meta["test_metrics"] and abs(meta["test_metrics"]["threshold"]
                                                  - threshold["threshold"]) > 1e-12:
        meta["test_metrics"] = None  # measured at another threshold: evaluate again
    t = meta["test_metrics"]
    facts = [f"- a-priori threshold (DRIVE validation, mean of "
             f"{meta['threshold_samples']} samples): {meta['threshold']:.4f}",
             *(_test_facts(t) if t else ["- DRIVE test: not evaluated yet"])]
    kind = (loaded.config.kind if loaded.config.kind == "cnf"
            else loaded.config.likelihood)
    dest, digest = ship(a.name, loaded.model, meta,
                        f"vesselflow model for retinal vessel segmentation: {LIKELIHOOD[kind]}. "
                        "Trained on DRIVE's training split. Research use only, not for "
                        "diagnosis.", facts)
    if not a.no_quality and not (dest / CALIBRATION_FILE).is_file():
        from vesselflow.io.files import write_json
        from vesselflow.vessel.evaluation.review_calibration import calibrate

        print("calibrating the review on DRIVE's training images ...", flush=True)
        calibration, _ = calibrate(load_model(dest), a.drive)
        calibration.meta["command"] = (f"vesselflow calibrate-review --model {a.name} "
                                       f"--drive {repo_path(a.drive)}")
        write_json(dest / CALIBRATION_FILE, calibration.to_dict())
    if not a.no_biomarker_calibration:
        import subprocess
        import sys

        print("calibrating the biomarkers (scripts/calibrate_biomarkers.py) ...", flush=True)
        subprocess.run([sys.executable, str(Path(__file__).with_name("calibrate_biomarkers.py")),
                        "--models", a.name], check=True)
    print(f"shipped {a.name} -> {dest} (sha256 {digest[:16]}...)")


def _ci(t: dict, key: str) -> str:
    ci = (t.get("ci95") or {}).get(key)
    return f" [95% CI {ci[0]:.4f}, {ci[1]:.4f}]" if ci else ""


def _test_facts(t: dict) -> list[str]:
    """The model card's DRIVE test lines: bpd per image pixel first (the headline)."""
    boot = "; 95% bootstrap intervals over images" if t.get("ci95") else ""
    lines = [f"- DRIVE test ({t['n_images']} images, {t['n_samples']} samples per image{boot})"
             f": bpd {t['bpd']:.4f}{_ci(t, 'bpd')} per "
             f"image pixel" + (f", {t['bpd_fov']:.4f}{_ci(t, 'bpd_fov')} per FOV pixel"
                               if t.get("bpd_fov") is not None else "")]
    if t.get("bpd_canvas") is not None:
        lines.append(f"- bpd if divided by the {t['canvas']}x{t['canvas']} zero-padded canvas "
                     f"(which the paper does not state it does): {t['bpd_canvas']:.4f}")
    lines.append(f"- max F1 {t['max_f1']:.4f}{_ci(t, 'max_f1')}, F1 at the a-priori "
                 f"threshold {t['f1']:.4f}{_ci(t, 'f1')}, AUC {t['auc_roc']:.4f}"
                 f"{_ci(t, 'auc_roc')}, AP {t['average_precision']:.4f}"
                 f"{_ci(t, 'average_precision')}, ECE {t['ece']:.4f}")
    return lines


if __name__ == "__main__":
    main()
