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
import json
import shutil
from pathlib import Path

import numpy as np

from vesselflow.evaluation.metrics import in_fov, uncertainty_reference
from vesselflow.inference import sample_stats
from vesselflow.models import load_model, save_model
from vesselflow.models.io import WEIGHTS_DIR

TEST_KEYS = ("bpd", "max_f1", "f1", "threshold", "precision", "recall", "auc_roc",
             "average_precision", "ece", "sample_precision", "sample_recall", "human",
             "n_images", "n_samples")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--eval", type=Path, default=None,
                    help="vesselflow evaluate output of these weights (adds test metrics)")
    ap.add_argument("--drive", type=Path, default=Path("../shared/data/DRIVE"))
    a = ap.parse_args()

    loaded = load_model(a.run / "best")
    run_cfg = json.loads((a.run / "config.json").read_text())
    summary = json.loads((a.run / "summary.json").read_text())
    test = json.loads((a.eval / "metrics.json").read_text()) if a.eval else None
    if test and test["model"]["sha256"] != loaded.sha256:
        raise SystemExit(f"{a.eval} evaluated other weights than {a.run / 'best'}")

    from vesselflow.data.drive import DriveDataset

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
        "training": {"command": run_cfg.get("command"), "options": run_cfg.get("train"),
                     "steps": summary.get("steps"), "wall_minutes": summary.get("wall_minutes"),
                     "device": run_cfg.get("device"), "environment": run_cfg.get("environment"),
                     "data": "DRIVE training images 22-26, 28-32, 34-38, 40 (16); "
                             "validation 21, 27, 33, 39"},
    }
    dest = WEIGHTS_DIR / a.name
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    digest = save_model(loaded.model, tmp, meta)
    t = meta["test_metrics"]
    results = (f"- DRIVE test ({t['n_images']} images, {t['n_samples']} samples): bpd "
               f"{t['bpd']:.4f}, max F1 {t['max_f1']:.4f}, F1 at threshold {t['f1']:.4f}, "
               f"AUC {t['auc_roc']:.4f}\n") if t else "- DRIVE test: not evaluated yet\n"
    (tmp / "MODEL_CARD.md").write_text(
        f"# {a.name}\n\nvesselflow {loaded.config.kind} model for retinal vessel segmentation, "
        f"trained on DRIVE's training split. Research use only, not for diagnosis.\n\n"
        f"- sha256 of model.safetensors: `{digest}`\n"
        f"- a-priori threshold (DRIVE validation): {meta.get('threshold', 0.5):.4f}\n"
        f"{results}"
        f"- trained with `{meta['training']['command']}` for {summary.get('steps')} steps, "
        f"{summary.get('wall_minutes')} min on {run_cfg.get('device')} "
        f"({run_cfg.get('environment', {}).get('cpus')} CPUs)\n"
        f"- config: see config.json\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    print(f"shipped {a.name} -> {dest} (sha256 {digest[:16]}..., "
          f"uncertainty reference {meta['uncertainty_reference']:.4f}, val per-image "
          f"{np.round(per_image, 4).tolist()})")


if __name__ == "__main__":
    main()
