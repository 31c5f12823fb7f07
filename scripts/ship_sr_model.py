"""Copy a trained SR run's best checkpoint into ``vesselflow/weights/<name>/`` with provenance.

Usage::

    python scripts/ship_sr_model.py --run runs/sr-cnf --name sr-cnf [--eval results/sr-cnf]

Writes ``model.safetensors`` and ``config.json`` (SR config + meta: validation scores, the
benchmark metrics from ``vesselflow sr evaluate`` when given, the training command, steps,
wall time and hardware, and the weights' sha256), plus a short ``MODEL_CARD.md``.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from vesselflow.models.io import WEIGHTS_DIR, save_model
from vesselflow.sr.io import load_sr_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--eval", type=Path, default=None,
                    help="vesselflow sr evaluate output of these weights (adds its metrics)")
    a = ap.parse_args()

    loaded = load_sr_model(a.run / "best")
    run_cfg = json.loads((a.run / "config.json").read_text())
    summary = json.loads((a.run / "summary.json").read_text())
    test = json.loads((a.eval / "metrics.json").read_text()) if a.eval else None
    if test and test["model"]["sha256"] != loaded.sha256:
        raise SystemExit(f"{a.eval} evaluated other weights than {a.run / 'best'}")
    meta = {
        **loaded.meta,
        "name": a.name,
        "benchmark_metrics": test["sets"] if test else None,
        "training": {"command": run_cfg.get("command"), "options": run_cfg.get("train"),
                     "steps": summary.get("steps"), "wall_minutes": summary.get("wall_minutes"),
                     "device": run_cfg.get("device"), "environment": run_cfg.get("environment"),
                     "data": "T91 (91) + BSD200 minus every 25th image (192) for training; "
                             "those 8 BSD200 images for validation"},
    }
    dest = WEIGHTS_DIR / a.name
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    digest = save_model(loaded.model, tmp, meta)
    lines = []
    for set_name, s in (test["sets"].items() if test else []):
        t0 = s["temperatures"].get("0")
        lines.append(f"- {set_name} ({s['n_images']} images): bpd {s['bpd']:.3f}"
                     + (f", Y-PSNR at T=0 {t0['psnr_y']:.2f} dB, SSIM {t0['ssim_y']:.4f}"
                        if t0 else "")
                     + f" (bicubic {s['bicubic']['psnr_y']:.2f} dB)")
    (tmp / "MODEL_CARD.md").write_text(
        f"# {a.name}\n\nvesselflow x{loaded.config.scale} super-resolution model "
        f"({loaded.config.kind}), trained on T91 + BSD200 patches. Research use only.\n\n"
        f"- sha256 of model.safetensors: `{digest}`\n"
        + ("\n".join(lines) + "\n" if lines else "- benchmarks: not evaluated yet\n")
        + f"- trained with `{meta['training']['command']}` for {summary.get('steps')} steps, "
        f"{summary.get('wall_minutes')} min on {run_cfg.get('device')} "
        f"({run_cfg.get('environment', {}).get('cpus')} CPUs)\n"
        f"- config: see config.json\n")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    print(f"shipped {a.name} -> {dest} (sha256 {digest[:16]}...)")


if __name__ == "__main__":
    main()
