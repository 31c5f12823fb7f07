"""Copy a trained run's best checkpoint into ``vesselflow/weights/<name>/`` with provenance.

Usage::

    python scripts/ship_model.py --run runs/cnf-drive --name cnf-drive \
        --eval results/cnf-drive [--drive ../shared/data/DRIVE]

Writes ``model.safetensors`` and ``config.json`` (model config + meta: the a-priori threshold
chosen on DRIVE's validation split, the uncertainty reference measured on the same split, the
test metrics from ``vesselflow evaluate``, the training command, steps, wall time and
hardware, and the weights' sha256), plus a short ``MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from shipping import read_run, ship, training_meta

from vesselflow.vessel.evaluation.metrics import in_fov, uncertainty_reference
from vesselflow.vessel.inference import sample_stats
from vesselflow.vessel.models import load_model

TEST_KEYS = ("bpd", "max_f1", "f1", "threshold", "precision", "recall", "auc_roc",
             "average_precision", "ece", "sample_precision", "sample_recall", "human",
             "n_images", "n_samples", "bpd_canvas", "canvas")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--eval", type=Path, default=None,
                    help="vesselflow evaluate output of these weights (adds test metrics)")
    ap.add_argument("--drive", type=Path, default=Path("../shared/data/DRIVE"))
    a = ap.parse_args()

    loaded = load_model(a.run / "best")
    run_cfg, summary, test = read_run(a.run, a.eval, loaded.sha256)

    from vesselflow.vessel.data.drive import DriveDataset

    print("measuring the uncertainty reference on the validation split ...", flush=True)
    val = DriveDataset(a.drive, "val")
    per_image = []
    for i in range(len(val)):
        d = val[i]
        stats = sample_stats(loaded.model, d["image"], n=16, temperature=1.0, seed=i)
        per_image.append(float(in_fov(stats.std, d["fov"][0].numpy() > 0.5).mean()))
    meta = {
        **loaded.meta,
        "name": a.name,
        "uncertainty_reference": uncertainty_reference(per_image),
        "val_mean_uncertainty": per_image,
        "test_metrics": {k: test[k] for k in TEST_KEYS if k in test} if test else None,
        "training": training_meta(run_cfg, summary, "DRIVE training images 22-26, 28-32, "
                                  "34-38, 40 (16); validation 21, 27, 33, 39"),
    }
    t = meta["test_metrics"]
    facts = [f"- a-priori threshold (DRIVE validation): {meta.get('threshold', 0.5):.4f}",
             f"- DRIVE test ({t['n_images']} images, {t['n_samples']} samples): bpd "
             f"{t['bpd']:.4f}{_canvas_note(t)}, max F1 {t['max_f1']:.4f}, "
             f"F1 at threshold {t['f1']:.4f}, "
             f"AUC {t['auc_roc']:.4f}" if t else "- DRIVE test: not evaluated yet"]
    dest, digest = ship(a.name, loaded.model, meta,
                        f"vesselflow {loaded.config.kind} model for retinal vessel "
                        "segmentation, trained on DRIVE's training split. Research use only, "
                        "not for diagnosis.", facts)
    print(f"shipped {a.name} -> {dest} (sha256 {digest[:16]}..., "
          f"uncertainty reference {meta['uncertainty_reference']:.4f}, val per-image "
          f"{np.round(per_image, 4).tolist()})")


def _canvas_note(t: dict) -> str:
    if t.get("bpd_canvas") is None:
        return ""
    return f" ({t['bpd_canvas']:.4f} per pixel of the {t['canvas']}x{t['canvas']} canvas)"


if __name__ == "__main__":
    main()
