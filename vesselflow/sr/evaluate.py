"""``vesselflow sr evaluate``: the standard x2 SR protocol on benchmark folders.

Per set (Set5, Set14, BSD100 by default) and temperature: Y-PSNR and Y-SSIM (BT.601, ``scale``
border pixels cropped) of one sample per image against the HR image cropped to a multiple of
the scale, next to MATLAB bicubic; and the model's bpd of x_hr given x_lr.

bpd is measured on whole images: HR cropped to a multiple of 2^L = 4 (both models see the same
crop) and LR its bicubic downscale, summed over images and divided by the total number of HR
sub-pixels. For the CNF with uniform dequantization it is one draw of the dequantization bound
per image (an upper bound on the true bpd in expectation); the factored model's is exact.

Writes ``OUT/metrics.json``, ``OUT/per_image.csv`` and ``OUT/figures/samples_<set>.png``.
With ``--update`` only the named sets are re-evaluated and merged into an existing OUT of the
same weights, temperatures and seed (the other sets' numbers are kept: every image's seed
depends only on ``--seed`` and its name, so they are what a full run gives).
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any

BENCHMARKS = ("Set5", "Set14", "BSD100")


def summary_table(m: dict[str, Any]) -> str:
    """A plain-text table of metrics.json: one row per set, PSNR/SSIM per temperature."""
    lines = [f"{m['model']['name']} ({m['model']['kind']})"]
    for name, s in m["sets"].items():
        temps = "  ".join(f"T={t}: {v['psnr_y']:.2f} dB / {v['ssim_y']:.4f}"
                          for t, v in s["temperatures"].items())
        lines.append(f"  {name:7s} n={s['n_images']:3d}  bpd {s['bpd']:.3f}  bicubic "
                     f"{s['bicubic']['psnr_y']:.2f} dB / {s['bicubic']['ssim_y']:.4f}  {temps}")
    return "\n".join(lines)


def _image_seed(seed: int, name: str) -> int:
    return (seed * 1000003 + zlib.crc32(name.encode())) % 2**31


def evaluate_sr(model_name: str | Path, data: Path, out: Path, sets: list[str],
                temperatures: list[float], limit: int | None = None, seed: int = 0,
                device: str = "auto", progress: bool = True, update: bool = False
                ) -> dict[str, Any]:
    """Evaluate an SR model on benchmark folders; writes and returns metrics.json's content.

    With ``update``, ``sets`` are re-evaluated and merged into ``out``'s existing results."""
    import csv
    import json

    import numpy as np
    import torch

    from vesselflow.flows import bits_per_dim
    from vesselflow.io.files import write_json
    from vesselflow.runtime import pick_device
    from vesselflow.sr.data import SRBenchmark, to_image, to_tensor
    from vesselflow.sr.metrics import psnr_y, ssim_y
    from vesselflow.sr.resize import bicubic_degrade, bicubic_upscale
    from vesselflow.sr.weights import load_sr_model

    dev = pick_device(device)
    loaded = load_sr_model(model_name, device=dev)
    model, s = loaded.model, loaded.config.scale
    mult = 2 ** loaded.config.levels
    rows: list[dict[str, Any]] = []
    result: dict[str, Any] = {
        "model": {"name": loaded.name, "kind": loaded.config.kind, "sha256": loaded.sha256,
                  "config": loaded.config.to_dict()},
        "protocol": {"scale": s, "border": s, "channel": "Y (BT.601, unrounded) of RGB "
                     "images; grey values of single-channel images", "temperatures":
                     temperatures, "seed": seed, "bpd": f"whole images, HR cropped to a "
                     f"multiple of {mult}, total nats / (total HR sub-pixels * ln 2)",
                     "psnr_ssim": "one sample per image and temperature vs HR cropped to a "
                     "multiple of the scale; factored at T=0 uses the mixture mean"},
        "sets": {}}
    previous: dict[str, Any] | None = None
    if update:
        path = out / "metrics.json"
        if not path.exists():
            raise FileNotFoundError(f"--update: {path} does not exist")
        previous = json.loads(path.read_text())
        same = (previous["model"]["sha256"] == loaded.sha256
                and previous["protocol"]["temperatures"] == temperatures
                and previous["protocol"]["seed"] == seed)
        if not same:
            raise ValueError(f"--update: {path} holds other weights, temperatures or seed")
    grids: dict[str, list[tuple[str, np.ndarray, np.ndarray, dict[float, np.ndarray]]]] = {}
    t_start = time.time()
    for set_name in sets:
        bench = SRBenchmark(data, set_name, s)
        n = len(bench) if limit is None else min(limit, len(bench))
        nats, dims = 0.0, 0
        per_t: dict[float, list[tuple[float, float]]] = {t: [] for t in temperatures}
        bic: list[tuple[float, float]] = []
        grids[set_name] = []
        for i in range(n):
            name, hr, lr = bench[i]
            row: dict[str, Any] = {"set": set_name, "image": name, "grey": bench.grey[i]}
            ref = hr[..., 0] if bench.grey[i] else hr  # a grey image is scored on its values
            up = bicubic_upscale(lr, s)
            bic.append((psnr_y(up, ref, s), ssim_y(up, ref, s)))
            row.update(bicubic_psnr_y=bic[-1][0], bicubic_ssim_y=bic[-1][1])
            # bpd on the crop every model accepts (a multiple of 2^L).
            h4, w4 = hr.shape[0] // mult * mult, hr.shape[1] // mult * mult
            hr4, lr4 = bicubic_degrade(hr[:h4, :w4], s)
            gen = torch.Generator(device=dev).manual_seed(_image_seed(seed, name))
            with torch.no_grad(), torch.random.fork_rng(devices=[]):
                torch.manual_seed(_image_seed(seed, name))
                lp = model.log_prob(to_tensor(hr4)[None].to(dev), to_tensor(lr4)[None].to(dev))
            nats -= float(lp[0])
            dims += hr4.size
            row["bpd"] = bits_per_dim(float(lp[0]), hr4.size)
            outs: dict[float, np.ndarray] = {}
            lr_t = to_tensor(lr)[None].to(dev)
            with torch.no_grad():  # conditioning computed once for all temperatures
                preds = model.predict_many(lr_t, temperatures, generator=gen)
            for t, pred in zip(temperatures, preds, strict=True):
                sr = to_image(pred[0])
                per_t[t].append((psnr_y(sr, ref, s), ssim_y(sr, ref, s)))
                row[f"psnr_y_t{t:g}"], row[f"ssim_y_t{t:g}"] = per_t[t][-1]
                outs[t] = sr
            rows.append(row)
            if len(grids[set_name]) < 3:
                grids[set_name].append((name, hr, up, outs))
            if progress:
                print(f"[{set_name} {i + 1}/{n}] {name}: bpd {row['bpd']:.3f}, bicubic "
                      f"{bic[-1][0]:.2f} dB, " + ", ".join(
                          f"T={t:g} {per_t[t][-1][0]:.2f} dB" for t in temperatures)
                      + f"  ({time.time() - t_start:.0f} s)", flush=True)
        bpd = bits_per_dim(-nats, dims)
        result["sets"][set_name] = {
            "n_images": n, "bpd": bpd,
            "bicubic": {"psnr_y": float(np.mean([b[0] for b in bic])),
                        "ssim_y": float(np.mean([b[1] for b in bic]))},
            "temperatures": {f"{t:g}": {"psnr_y": float(np.mean([v[0] for v in per_t[t]])),
                                        "ssim_y": float(np.mean([v[1] for v in per_t[t]])),
                                        "bpd": bpd}
                             for t in temperatures}}
    result["seconds"] = round(time.time() - t_start, 1)
    if previous is not None:  # keep the other sets, in their order, with their rows
        merged = {k: result["sets"].get(k, v) for k, v in previous["sets"].items()}
        result["sets"] = {**merged, **result["sets"]}
        result["updated_sets"] = sets
        with open(out / "per_image.csv", newline="") as f:
            kept = [r for r in csv.DictReader(f) if r["set"] not in sets]
        for name in {r["set"] for r in kept}:  # results from before the "grey" column
            grey = dict(zip([p.stem for p in SRBenchmark(data, name, s).files],
                            SRBenchmark(data, name, s).grey, strict=True))
            for r in kept:
                if r["set"] == name and not r.get("grey"):
                    r["grey"] = grey.get(r["image"], "")
        order = list(result["sets"])
        rows = sorted([*kept, *rows], key=lambda r: order.index(r["set"]))
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "per_image.csv", rows)
    for set_name, grid in grids.items():
        if grid:
            _save_grid(out / "figures" / f"samples_{set_name}.png", grid, temperatures,
                       loaded.name)
    write_json(out / "metrics.json", result)
    return result


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    from vesselflow.io.files import write_csv

    write_csv(path, [{k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()}
                     for r in rows])


def crop_box(shape: tuple[int, ...], size: int = 96) -> tuple[slice, slice]:
    """A central ``size`` x ``size`` window (or the whole image if smaller)."""
    h, w = shape[:2]
    i, j = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return slice(i, i + size), slice(j, j + size)


def image_grid(rows: list[tuple[str, list[tuple[str, Any]]]], title: str,
               crop: int | None = 96) -> Any:
    """A matplotlib Figure: one row per ``(row_label, [(column_label, image), ...])``, each
    image shown as its central ``crop`` x ``crop`` window (whole image if None)."""
    from matplotlib.figure import Figure

    cols = max(len(panels) for _, panels in rows)
    fig = Figure(figsize=(2.2 * cols, 2.3 * len(rows)))
    axes = fig.subplots(len(rows), cols, squeeze=False)
    for r, (row_label, panels) in enumerate(rows):
        for c, (label, img) in enumerate(panels):
            ax = axes[r, c]
            ax.imshow(img[crop_box(img.shape, crop)] if crop else img)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0 or label != rows[0][1][c][0]:
                ax.set_title(label, fontsize=9)
        for c in range(len(panels), cols):
            axes[r, c].axis("off")
        axes[r, 0].set_ylabel(row_label, fontsize=9)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def _save_grid(path: Path, grid: list, temperatures: list[float], title: str) -> None:
    """Rows = images; columns = bicubic, one sample per temperature, ground truth (crops)."""
    from vesselflow.io.files import atomic_path

    rows = [(name, [("bicubic", up), *((f"T = {t:g}", outs[t]) for t in temperatures),
                    ("ground truth", hr)]) for name, hr, up, outs in grid]
    fig = image_grid(rows, f"{title}: x2 samples (central crops)")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
