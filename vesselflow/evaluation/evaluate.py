"""``vesselflow evaluate``: the paper's protocol and the field's, on DRIVE or any labelled set.

Per image: N samples -> mean map (and std), a likelihood bound -> bpd. Pooled over the FOV
pixels of all images: PR curve of the mean map and its max F1 (the paper's number, an oracle
threshold), F1 at the a-priori threshold stored with the model (chosen on the validation
split), AUC-ROC, average precision, ECE; per-sample precision/recall (the paper's scatter);
the second observer's scores when given.
"""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..utils import atomic_path, environment, write_csv, write_json
from . import figures
from .bootstrap import bootstrap_intervals
from .metrics import (
    auc_roc,
    average_precision,
    binary_scores,
    expected_calibration_error,
    in_fov,
    max_f1,
    pr_curve,
    score_case,
)


@dataclass
class Case:
    """One labelled image: arrays at the image's own size."""

    id: str
    image: np.ndarray  # (H, W, 3) float32 in [0, 1]
    label: np.ndarray  # (H, W) bool
    fov: np.ndarray  # (H, W) bool
    label2: np.ndarray | None = None
    fov_detected: bool = False


def drive_cases(root: Path, split: str = "test") -> list[Case]:
    from ..data.drive import DriveDataset

    data = DriveDataset(root, split)
    out = []
    for i in range(len(data)):
        d = data[i]
        out.append(Case(
            id=str(d.get("id", data.records[i]["id"])),
            image=d["image"].permute(1, 2, 0).numpy(),
            label=d["label"][0].numpy() > 0.5, fov=d["fov"][0].numpy() > 0.5,
            label2=d["label2"][0].numpy() > 0.5 if "label2" in d else None))
    return out


def pairs_cases(csv_path: Path) -> list[Case]:
    """Cases from a CSV with columns image,label and optional fov,label2 (paths relative to it).

    Without a FOV column the FOV is detected from the image.
    """
    from ..data.fov import detect_fov
    from ..data.io import read_image, read_mask

    base = csv_path.parent
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"image", "label"} <= set(rows[0]):
        raise ValueError(f"{csv_path}: needs a header with columns image,label[,fov,label2]")
    cases = []
    for row in rows:
        image = read_image(base / row["image"])
        shape = image.shape[:2]
        label = read_mask(base / row["label"], shape=shape)
        fov_path = row.get("fov") or ""
        fov = read_mask(base / fov_path, shape=shape) if fov_path else detect_fov(image)
        l2 = row.get("label2") or ""
        cases.append(Case(Path(row["image"]).stem, image, label, fov,
                          read_mask(base / l2, shape=shape) if l2 else None, not fov_path))
    return cases


def evaluate(model_name: str, cases: list[Case], out: Path, n_samples: int = 100,
             temperature: float = 1.0, seed: int = 0, device: str = "cpu",
             batch_size: int = 8, figures_for: int = 3, progress: bool = True,
             canvas: int | None = None, n_bootstrap: int = 1000) -> dict[str, Any]:
    """Evaluate a model on labelled cases; writes metrics.json, per_image.csv, figures/.

    ``bpd`` is per image pixel (the headline), ``bpd_fov`` the same bound per FOV pixel.
    With ``canvas`` = N, ``bpd_canvas`` is also reported: the bound for each image and label
    zero-padded to N x N, divided by N * N dimensions. The paper pads DRIVE to 1024 x 1024;
    this is its bpd only if it divided by its canvas, which it does not state. The bound of
    image k draws its dequantization noise with seed ``seed + k``, so bpd is reproducible.
    ``ci95`` holds 95% bootstrap intervals over images (``n_bootstrap`` resamples, seeded by
    ``seed``; :mod:`.bootstrap` says how the pooled metrics are recomputed); 0 skips them.
    """
    from ..inference import bpd, log_likelihood, sample_stats
    from ..models import load_model

    t0 = time.time()
    loaded = load_model(model_name, device=device)
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    probs, truths, rows, sample_pts, human_pts, human_pred, human_truth = [], [], [], [], [], [],\
        []
    ll_total, pix_total, ll_canvas = 0.0, 0, 0.0
    lls, llcs, fov_total = [], [], 0
    for k, case in enumerate(cases):
        t = time.time()
        stats = sample_stats(loaded.model, case.image, n=n_samples, temperature=temperature,
                             batch_size=batch_size, seed=seed + k, keep=n_samples,
                             device=device)
        ll = log_likelihood(loaded.model, case.image, case.label, device=device, seed=seed + k)
        ll_total += ll
        pix_total += case.label.size
        fov_total += int(case.fov.sum())
        lls.append(ll)
        if canvas:
            llc = log_likelihood(loaded.model, case.image, case.label, device=device,
                                 canvas=canvas, seed=seed + k)
            ll_canvas += llc
            llcs.append(llc)
        sc = score_case(stats.mean, case.label, case.fov, loaded.threshold,
                        samples=stats.samples, label2=case.label2, std=stats.std)
        truth = in_fov(case.label, case.fov).astype(bool)
        probs.append(in_fov(stats.mean, case.fov))
        truths.append(truth)
        sample_pts.append(sc["sample_points"])
        row = {"id": case.id, "bpd": bpd(ll, case.label.size),
               "bpd_fov": bpd(ll, int(case.fov.sum())), "max_f1": sc["max_f1"],
               **{f"{k2}_at_threshold": sc[k2] for k2 in ("precision", "recall", "f1",
                                                          "accuracy")},
               "auc_roc": sc["auc_roc"], "sample_precision": sc["sample_precision"],
               "sample_recall": sc["sample_recall"], "mean_uncertainty": sc["mean_uncertainty"],
               "fov_detected": case.fov_detected, "seconds": round(time.time() - t, 2)}
        if canvas:
            row["bpd_canvas"] = bpd(llc, canvas * canvas)
        if sc["human"] is not None:
            h = sc["human"]
            human_pts.append([h["precision"], h["recall"]])
            human_pred.append(in_fov(case.label2, case.fov))
            human_truth.append(truth)
            row["human_f1"] = h["f1"]
        rows.append(row)
        if k < figures_for:
            figures.maps_figure(case.image, stats.mean, stats.std, case.label,
                                f"{loaded.name}: {case.id} (mean of {n_samples})",
                                out / "figures" / f"maps_{case.id}.png")
        if progress:
            print(f"[{k + 1}/{len(cases)}] {case.id}: bpd {row['bpd']:.4f}, max F1 "
                  f"{row['max_f1']:.4f}, {row['seconds']:.1f} s", flush=True)

    prob_all, truth_all = np.concatenate(probs), np.concatenate(truths)
    curve = thin_curve(pr_curve(prob_all, truth_all))
    best_f1, best_thr = max_f1(prob_all, truth_all)
    at_thr = binary_scores(prob_all >= loaded.threshold, truth_all)
    ece, table = expected_calibration_error(prob_all, truth_all)
    pts_all = np.concatenate(sample_pts)
    human = None
    if human_pred:
        human = binary_scores(np.concatenate(human_pred), np.concatenate(human_truth))
    metrics = {
        "model": {"name": loaded.name, "sha256": loaded.sha256, "kind": loaded.config.kind},
        "bpd": bpd(ll_total, pix_total),
        "bpd_fov": bpd(ll_total, fov_total),
        "bpd_canvas": bpd(ll_canvas, canvas * canvas * len(cases)) if canvas else None,
        "canvas": canvas,
        "max_f1": best_f1, "max_f1_threshold": best_thr,
        "f1": at_thr["f1"], "threshold": loaded.threshold,
        "precision": at_thr["precision"], "recall": at_thr["recall"],
        "accuracy": at_thr["accuracy"],
        "auc_roc": auc_roc(prob_all, truth_all),
        "average_precision": average_precision(prob_all, truth_all),
        "ece": ece,
        "sample_precision": float(pts_all[:, 0].mean()),
        "sample_recall": float(pts_all[:, 1].mean()),
        "sample_f1": float(np.mean(2 * pts_all[:, 0] * pts_all[:, 1]
                                   / np.maximum(pts_all.sum(1), 1e-12))),
        "human": human,
        "n_images": len(cases), "n_samples": n_samples, "temperature": temperature,
        "seed": seed, "fov": "given" if not any(c.fov_detected for c in cases) else "detected",
        "seconds": round(time.time() - t0, 1), "environment": environment(),
    }
    if n_bootstrap:
        if progress:
            print(f"bootstrap: {n_bootstrap} resamples of the {len(cases)} images ...",
                  flush=True)
        boot = bootstrap_intervals(
            probs, truths, loaded.threshold, lls, [c.label.size for c in cases],
            sample_points=sample_pts, log_liks_canvas=llcs if canvas else None, canvas=canvas,
            n_resamples=n_bootstrap, seed=seed)
        metrics["ci95"] = boot.pop("intervals")
        metrics["bootstrap"] = boot
        metrics["seconds"] = round(time.time() - t0, 1)
    write_json(out / "metrics.json", metrics)
    _write_csv(out / "per_image.csv", rows)
    with atomic_path(out / "curves.npz") as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, precision=curve["precision"], recall=curve["recall"],
                            thresholds=curve["thresholds"], sample_points=pts_all,
                            human_points=np.array(human_pts), ece_table_conf=table["confidence"],
                            ece_table_acc=table["accuracy"], ece_table_count=table["count"])
    name = loaded.name
    figures.pr_figure({name: {**curve, "max_f1": best_f1}}, human, out / "figures" / "pr.png")
    figures.scatter_figure({name: pts_all}, np.array(human_pts) if human_pts else None,
                           out / "figures" / "sample_scatter.png")
    figures.reliability_figure(table, ece, out / "figures" / "reliability.png")
    return metrics


def thin_curve(curve: dict[str, np.ndarray], max_points: int = 2000) -> dict[str, np.ndarray]:
    """At most ``max_points`` points of a PR curve (ends and the max-F1 point kept).

    A continuous probability map has one threshold per pixel (millions); a figure or a stored
    curve needs a few thousand.
    """
    n = len(curve["thresholds"])
    if n <= max_points:
        return curve
    keep = np.unique(np.concatenate([np.linspace(0, n - 1, max_points).round().astype(int),
                                     [int(np.argmax(curve["f1"][:-1]))]]))
    out = {k: curve[k][keep] for k in ("thresholds",)}
    for k in ("precision", "recall", "f1"):  # these have one more entry (the (1, 0) end)
        out[k] = np.concatenate([curve[k][keep], curve[k][-1:]])
    return out


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    write_csv(path, rows)
