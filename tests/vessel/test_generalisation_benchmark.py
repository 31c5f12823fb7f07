"""benchmarks/generalisation.py on a limited setup: outputs exist and the numbers match a direct
computation on segment's path (the shipped factored model: one pass per image, fast)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from vesselflow.io.images import read_image
from vesselflow.io.masks import read_mask
from vesselflow.vessel.analysis.pipeline import segment_image
from vesselflow.vessel.data.corruptions import corrupt
from vesselflow.vessel.evaluation.metrics import (
    auc_roc,
    binary_scores,
    histogram_points,
    max_f1,
    prob_histogram,
)
from vesselflow.vessel.models import load_model
from vesselflow.vessel.preprocess.fov import detect_fov

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("generalisation",
                                                  REPO / "benchmarks" / "generalisation.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_histogram_metrics_match_the_pixelwise_ones() -> None:
    rng = np.random.default_rng(0)
    truth = rng.random(5000) < 0.2
    prob = np.clip(truth * 0.3 + rng.random(5000) * 0.7, 0, 1)
    prob = np.round(prob * 16) / 16  # sample means of 16 binary samples: exact levels
    p, t, w = histogram_points(prob_histogram(prob, truth))
    assert w.sum() == prob.size
    assert max_f1(p, t, w)[0] == pytest.approx(max_f1(prob, truth)[0], abs=1e-9)
    assert auc_roc(p, t, w) == pytest.approx(auc_roc(prob, truth), abs=1e-9)


def test_benchmark_outputs_and_numbers(drive_dir: Path, tmp_path: Path) -> None:
    bench = _bench()
    out = tmp_path / "gen"
    conds = ["clean", "gamma-1.6"]
    result = bench.main(["--models", "factored-drive", "--samples", "1", "--limit", "2",
                         "--conditions", *conds, "--drive", str(drive_dir), "--out", str(out)])
    for name in ("generalisation.md", "generalisation.json", "generalisation.png"):
        assert (out / name).stat().st_size > 0, name
    saved = json.loads((out / "generalisation.json").read_text())
    assert list(saved["rows"]["factored-drive"]) == conds and saved["samples"] == 1
    md = (out / "generalisation.md").read_text()
    assert "1 samples" in md and "DRIVE + gamma-1.6" in md

    loaded = load_model("factored-drive")
    items = bench.drive_items(drive_dir)[:2]
    for cond in conds:
        counts, probs, truths, f1s = np.zeros(3), [], [], []
        for it in items:
            image = read_image(it.image)
            label, fov_true = read_mask(it.label), read_mask(it.fov)
            if cond != "clean":
                image = corrupt(image, cond, bench.corruption_seed(0, cond, it.id))
            fov = detect_fov(image)
            seg = segment_image(loaded.model, image, n=1, seed=0, fov=fov, name=it.id)
            maps = seg.at_original_size(loaded.threshold, samples=False)
            prob = maps.mean
            pred = ((prob >= loaded.threshold) & fov)[fov_true]
            truth = label[fov_true]
            f1s.append(binary_scores(pred, truth)["f1"])
            counts += [np.sum(pred & truth), np.sum(pred & ~truth), np.sum(~pred & truth)]
            probs.append(prob[fov_true])
            truths.append(truth)
        row = saved["rows"]["factored-drive"][cond]
        tp, fp, fn = counts
        assert row["f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn), abs=1e-9)
        assert row["mean_image_f1"] == pytest.approx(np.mean(f1s), abs=1e-9)
        assert row["n_f1_below_0.5"] == sum(f < 0.5 for f in f1s)
        prob, truth = np.concatenate(probs), np.concatenate(truths)
        # Histogram levels of 1/4096: continuous (resized) maps agree to ~1e-3.
        assert row["max_f1"] == pytest.approx(max_f1(prob, truth)[0], abs=2e-3)
        assert row["auc"] == pytest.approx(auc_roc(prob, truth), abs=2e-3)
    assert saved["rows"]["factored-drive"]["gamma-1.6"]["f1"] != \
        saved["rows"]["factored-drive"]["clean"]["f1"]

    # A second run reuses the cache and tabulates the same numbers.
    again = bench.main(["--models", "factored-drive", "--samples", "1", "--limit", "2",
                        "--conditions", *conds, "--drive", str(drive_dir), "--out", str(out),
                        "--cached-only"])
    assert again["rows"] == result["rows"]
