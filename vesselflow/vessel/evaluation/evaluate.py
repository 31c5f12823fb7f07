"""``vesselflow evaluate``: the paper's protocol and the field's, on DRIVE or any labelled set.

Per image: N samples -> mean map (and std), a likelihood bound -> bpd. Pooled over the FOV
pixels of all images: PR curve of the mean map and its max F1 (the paper's number, an oracle
threshold), F1 at the a-priori threshold stored with the model (chosen on the validation
split), with specificity, MCC and clDice (centreline Dice, Shit et al. 2021) at that same
threshold; AUC-ROC, average precision, ECE; per-sample precision/recall (the paper's scatter);
the second observer's scores when given. Pooled clDice sums the skeleton counts of all images.
Per image, vessel density, mean uncertainty and the review verdict are the per-image summary's
(:mod:`vesselflow.vessel.analysis.summary`, at the analysis scale), as in segment and the app.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vesselflow.io.files import atomic_path, write_csv, write_json
from vesselflow.runtime import environment
from vesselflow.vessel.evaluation import figures
from vesselflow.vessel.evaluation.bootstrap import bootstrap_intervals
from vesselflow.vessel.evaluation.metrics import (
    auc_roc,
    average_precision,
    binary_scores,
    cldice_counts,
    cldice_from_counts,
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
    from vesselflow.vessel.data.drive import DriveDataset

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


class _LazyCases(Sequence):
    """Cases read one at a time (42 HRF photographs at full size do not fit in memory)."""

    def __init__(self, load: Callable[[dict[str, str]], Case], rows: list[dict[str, str]]):
        self._load, self._rows = load, rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return _LazyCases(self._load, self._rows[i])
        return self._load(self._rows[i])


def pairs_cases(csv_path: Path) -> Sequence[Case]:
    """Cases from a CSV with columns image,label and optional fov,label2 (paths relative to it).

    Without a FOV column the FOV is detected from the image. Every listed file is checked
    up front (a missing one is reported before any work); images are read when used.
    """
    from vesselflow.io.images import read_image
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.preprocess.fov import detect_fov

    base = csv_path.parent
    with open(csv_path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows or not {"image", "label"} <= set(rows[0]):
        raise ValueError(f"{csv_path}: needs a header with columns image,label[,fov,label2]")
    for n, row in enumerate(rows, start=2):
        for col in ("image", "label", "fov", "label2"):
            if row.get(col) and not (base / row[col]).is_file():
                raise FileNotFoundError(f"{csv_path} line {n}: {col} file {base / row[col]} "
                                        f"not found")

    def load(row: dict[str, str]) -> Case:
        image = read_image(base / row["image"])
        shape = image.shape[:2]
        label = read_mask(base / row["label"], shape=shape)
        fov_path = row.get("fov") or ""
        fov = read_mask(base / fov_path, shape=shape) if fov_path else detect_fov(image)
        l2 = row.get("label2") or ""
        return Case(Path(row["image"]).stem, image, label, fov,
                    read_mask(base / l2, shape=shape) if l2 else None, not fov_path)

    return _LazyCases(load, rows)


def evaluate(model_name: str, cases: Sequence[Case], out: Path, n_samples: int = 100,
             temperature: float = 1.0, seed: int = 0, device: str = "cpu",
             batch_size: int = 8, figures_for: int = 3, progress: bool = True,
             canvas: int | None = None, biomarkers: bool = True,
             n_bootstrap: int = 1000, analysis_scale: str | float = "auto",
             fov_degrees: float | None = None,
             pixel_size: float | None = None) -> dict[str, Any]:
    """Evaluate a model on labelled cases; writes metrics.json, per_image.csv, figures/.

    Each image is analysed as ``vesselflow segment`` and the app do
    (:func:`vesselflow.vessel.analysis.pipeline.segment_image`: the FOV, given or detected;
    a rescale to DRIVE's FOV diameter; the maps restored to the image's size) and scored at its
    original size. ``bpd`` is the likelihood of the tracing at the analysis scale: image and tracing
    rescaled (the tracing anti-aliased, >= 0.5), per analysis pixel (the headline; the image's
    own pixel when not rescaled); DRIVE's test images are within the rescale's 5 % tolerance
    and are not resized, so their numbers are unchanged. ``bpd_fov`` is the same bound per
    (analysis-scale) FOV pixel. With ``biomarkers``, the vessel biomarkers of the model (mask
    and samples) are compared with the tracing's
    (:mod:`vesselflow.vessel.evaluation.biomarker_agreement`).

    With ``canvas`` = N, ``bpd_canvas`` is also reported: the bound for each image and label
    zero-padded to N x N, divided by N * N dimensions. The paper pads DRIVE to 1024 x 1024;
    this is its bpd only if it divided by its canvas, which it does not state. Each image is
    sampled, and its bound draws its dequantization noise, with the per-image seed of
    ``seed`` and its id (:mod:`vesselflow.vessel.analysis.pipeline`, as ``vesselflow
    segment``), so an image gets the same maps here as there, and bpd is reproducible.
    ``analysis_scale``: as ``vesselflow segment``'s (:mod:`vesselflow.vessel.analysis.
    scale_rule`; DRIVE's own images have no pixels to spare and stay at scale 1).
    ``fov_degrees`` (None: DRIVE's 45) and ``pixel_size`` (um per input pixel; None: estimated
    from the FOV and the field) as segment's ``--fov-degrees`` and ``--pixel-size``.
    ``ci95`` holds 95% bootstrap intervals over images (``n_bootstrap`` resamples, seeded by
    ``seed``; :mod:`.bootstrap` says how the pooled metrics are recomputed); 0 skips them.
    """
    from vesselflow.flows import bits_per_dim
    from vesselflow.vessel.analysis.pipeline import segment_image
    from vesselflow.vessel.analysis.sampler import log_likelihood
    from vesselflow.vessel.analysis.summary import summarise
    from vesselflow.vessel.evaluation import biomarker_agreement as bm
    from vesselflow.vessel.models import load_model, threshold_for
    from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DEGREES
    from vesselflow.vessel.review.verdict import ReviewCalibration

    degrees = DRIVE_FOV_DEGREES if fov_degrees is None else float(fov_degrees)
    t0 = time.time()
    loaded = load_model(model_name, device=device)
    threshold = threshold_for(loaded, n_samples)  # chosen at this count when the model can
    calibration = ReviewCalibration.load(loaded.path, loaded.sha256)
    if biomarkers:
        from vesselflow.vessel.biomarker_calibration import load_for

        bio_calibration = load_for(loaded)  # once: every case uses the model's own
    out.mkdir(parents=True, exist_ok=True)
    (out / "figures").mkdir(exist_ok=True)
    probs, truths, rows, sample_pts, human_pts, human_pred, human_truth = [], [], [], [], [], [],\
        []
    ll_total, pix_total, ll_canvas = 0.0, 0, 0.0
    cl_counts, human_cl = np.zeros(4), np.zeros(4)
    bio_records: list[dict[str, Any]] = []
    lls, llcs, pixels_x, fovs_x = [], [], [], []
    for k, case in enumerate(cases):
        t = time.time()
        seg = segment_image(loaded.model, case.image, n=n_samples, temperature=temperature,
                            batch_size=batch_size, seed=seed, keep=n_samples,
                            fov=case.fov, device=device, name=case.id,
                            analysis_scale=analysis_scale, fov_degrees=degrees)
        summary = summarise(seg, threshold, calibration)
        maps = seg.at_original_size(threshold)  # scored at the image's own size
        label_x = bm.analysis_label(case.label, seg.scale)  # bpd at the analysis scale
        fov_x = int(np.asarray(seg.fov).sum())
        ll = log_likelihood(loaded.model, seg.image, label_x, device=device, seed=seg.seed)
        ll_total += ll
        pix_total += label_x.size
        lls.append(ll)
        pixels_x.append(label_x.size)
        fovs_x.append(fov_x)
        if canvas:
            llc = log_likelihood(loaded.model, seg.image, label_x, device=device,
                                 canvas=canvas, seed=seg.seed)
            ll_canvas += llc
            llcs.append(llc)
        if biomarkers:
            from vesselflow.vessel.biomarkers import segmentation_report

            rep = segmentation_report(seg, summary, loaded.config.kind, pixel_size,
                                      *bio_calibration)
            bio_records.append(bm.case_record(
                case.id, rep, label_x, seg.fov, rep.scale,
                bm.analysis_label(case.label2, seg.scale) if case.label2 is not None
                else None))
        sc = score_case(maps.mean, case.label, case.fov, threshold,
                        samples=maps.samples, label2=case.label2)
        truth = in_fov(case.label, case.fov).astype(bool)
        probs.append(in_fov(maps.mean, case.fov))
        truths.append(truth)
        sample_pts.append(sc["sample_points"])
        cl_counts += sc["cldice_counts"]
        row = {"id": case.id, "bpd": bits_per_dim(ll, label_x.size),
               "bpd_fov": bits_per_dim(ll, fov_x), "max_f1": sc["max_f1"],
               **{f"{k2}_at_threshold": sc[k2] for k2 in ("precision", "recall", "f1",
                                                          "accuracy", "specificity",
                                                          "mcc", "cldice")},
               "auc_roc": sc["auc_roc"], "sample_precision": sc["sample_precision"],
               "sample_recall": sc["sample_recall"],
               "vessel_density": summary.vessel_density,
               "mean_uncertainty": summary.mean_uncertainty,
               "fov_detected": case.fov_detected, "height": case.label.shape[0],
               "width": case.label.shape[1], "fov_pixels": sc["n_pixels"],
               "scale_factor": round(summary.scale_factor, 4),
               "analysis_scale": summary.analysis_scale,
               "analysis_shape": "x".join(map(str, summary.analysis_size)),
               **summary.verdict.row(), "seconds": round(time.time() - t, 2)}
        if canvas:
            row["bpd_canvas"] = bits_per_dim(llc, canvas * canvas)
        if sc["human"] is not None:
            h = sc["human"]
            human_pts.append([h["precision"], h["recall"]])
            human_pred.append(in_fov(case.label2, case.fov))
            human_truth.append(truth)
            row["human_f1"] = h["f1"]
            human_cl += cldice_counts(case.label2, case.label, case.fov)
        rows.append(row)
        if k < figures_for:
            figures.maps_figure(case.image, maps.mean, maps.std, case.label,
                                f"{loaded.name}: {case.id} (mean of {n_samples})",
                                out / "figures" / f"maps_{case.id}.png")
        if progress:
            print(f"[{k + 1}/{len(cases)}] {case.id}: bpd {row['bpd']:.4f}, max F1 "
                  f"{row['max_f1']:.4f}, {row['seconds']:.1f} s", flush=True)

    prob_all, truth_all = np.concatenate(probs), np.concatenate(truths)
    curve = thin_curve(pr_curve(prob_all, truth_all))
    best_f1, best_thr = max_f1(prob_all, truth_all)
    at_thr = binary_scores(prob_all >= threshold, truth_all)
    ece, table = expected_calibration_error(prob_all, truth_all)
    pts_all = np.concatenate(sample_pts)
    human = None
    if human_pred:
        human = binary_scores(np.concatenate(human_pred), np.concatenate(human_truth))
        human["cldice"] = cldice_from_counts(human_cl)
    metrics = {
        "model": {"name": loaded.name, "sha256": loaded.sha256, "kind": loaded.config.kind},
        "bpd": bits_per_dim(ll_total, pix_total),
        "bpd_fov": bits_per_dim(ll_total, sum(fovs_x)),
        "bpd_canvas": bits_per_dim(ll_canvas, canvas * canvas * len(cases)) if canvas else None,
        "canvas": canvas,
        "max_f1": best_f1, "max_f1_threshold": best_thr,
        "f1": at_thr["f1"], "threshold": threshold,
        "precision": at_thr["precision"], "recall": at_thr["recall"],
        "accuracy": at_thr["accuracy"], "specificity": at_thr["specificity"],
        "mcc": at_thr["mcc"], "cldice": cldice_from_counts(cl_counts),
        "at_threshold": "precision, recall, f1, accuracy, specificity, mcc and cldice use the "
                        "a-priori threshold (mean map >= threshold, FOV pixels pooled)",
        "auc_roc": auc_roc(prob_all, truth_all),
        "average_precision": average_precision(prob_all, truth_all),
        "ece": ece,
        "sample_precision": float(pts_all[:, 0].mean()),
        "sample_recall": float(pts_all[:, 1].mean()),
        "sample_f1": float(np.mean(2 * pts_all[:, 0] * pts_all[:, 1]
                                   / np.maximum(pts_all.sum(1), 1e-12))),
        "human": human,
        "n_images": len(cases), "n_samples": n_samples, "temperature": temperature,
        "seed": seed, "fov": "given" if not any(r["fov_detected"] for r in rows) else "detected",
        "analysis": "as vesselflow segment: FOV (given, else detected), image rescaled to "
                    "DRIVE's FOV diameter (537.7 px; not resized within 5 %), maps restored "
                    "to the original size (mean/std bilinear, samples nearest) and scored "
                    "there; bpd on the analysis-scale image and tracing (anti-aliased, "
                    ">= 0.5), per analysis pixel; per-image vessel_density, "
                    "mean_uncertainty and review at the analysis scale; each image seeded "
                    "with the run seed and its id, as vesselflow segment",
        "scale_factors": {r["id"]: r["scale_factor"] for r in rows},
        "analysis_scale": analysis_scale, "fov_degrees": degrees,
        "pixel_size_um": pixel_size,
        "seconds": round(time.time() - t0, 1), "environment": environment(),
    }
    if bio_records:
        metrics["biomarkers"] = bm.write_outputs(out, bio_records)
    if n_bootstrap:
        if progress:
            print(f"bootstrap: {n_bootstrap} resamples of the {len(cases)} images ...",
                  flush=True)
        boot = bootstrap_intervals(
            probs, truths, threshold, lls, pixels_x, fov_pixels=fovs_x,
            sample_points=sample_pts, log_liks_canvas=llcs if canvas else None, canvas=canvas,
            n_resamples=n_bootstrap, seed=seed)
        metrics["ci95"] = boot.pop("intervals")
        metrics["bootstrap"] = boot
        metrics["seconds"] = round(time.time() - t0, 1)
    write_json(out / "metrics.json", metrics)
    write_csv(out / "per_image.csv", rows)
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
