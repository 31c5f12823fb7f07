"""Copy a trained SR run's best checkpoint into ``vesselflow/weights/<name>/`` with provenance.

Usage::

    python scripts/ship_sr_model.py --run runs/sr-cnf --name sr-cnf [--eval results/sr-cnf]
    python scripts/ship_sr_model.py --shipped --name sr-cnf --eval results/sr-cnf

``--shipped`` re-ships the weights already in ``vesselflow/weights/<name>/`` (their training
provenance is kept), e.g. to attach a new evaluation.

Writes ``model.safetensors`` and ``config.json`` (SR config + meta: validation scores, the
benchmark metrics from ``vesselflow sr evaluate`` when given, the training command, steps,
wall time and hardware, and the weights' sha256), plus a short ``MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from shipping import read_evaluation, read_run, ship, training_meta

from vesselflow.io.weights import WEIGHTS_DIR
from vesselflow.sr.weights import load_sr_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--run", type=Path, help="training run folder (its best/ is shipped)")
    src.add_argument("--shipped", action="store_true",
                     help="re-ship vesselflow/weights/NAME itself, keeping its provenance")
    ap.add_argument("--name", required=True)
    ap.add_argument("--eval", type=Path, default=None,
                    help="vesselflow sr evaluate output of these weights (adds its metrics)")
    a = ap.parse_args()

    if a.shipped:
        loaded = load_sr_model(WEIGHTS_DIR / a.name)
        test = read_evaluation(a.eval, loaded.sha256)
        training = loaded.meta["training"]
    else:
        loaded = load_sr_model(a.run / "best")
        run_cfg, summary, test = read_run(a.run, a.eval, loaded.sha256)
        training = training_meta(run_cfg, summary, "T91 (91) + BSD200 minus every 25th "
                                 "image (192) for training; those 8 BSD200 images for "
                                 "validation")
    meta = {
        **loaded.meta,
        "name": a.name,
        "benchmark_metrics": test["sets"] if test else (loaded.meta.get("benchmark_metrics")
                                                        if a.shipped else None),
        "training": training,
    }
    lines = []
    for set_name, s in (meta["benchmark_metrics"] or {}).items():
        t0 = s["temperatures"].get("0")
        lines.append(f"- {set_name} ({s['n_images']} images): bpd {s['bpd']:.3f}"
                     + (f", Y-PSNR at T=0 {t0['psnr_y']:.2f} dB, SSIM {t0['ssim_y']:.4f}"
                        if t0 else "")
                     + f" (bicubic {s['bicubic']['psnr_y']:.2f} dB)")
    dest, digest = ship(a.name, loaded.model, meta,
                        f"vesselflow x{loaded.config.scale} super-resolution model "
                        f"({loaded.config.kind}), trained on T91 + BSD200 patches. Research "
                        "use only.", lines or ["- benchmarks: not evaluated yet"])
    print(f"shipped {a.name} -> {dest} (sha256 {digest[:16]}...)")


if __name__ == "__main__":
    main()
