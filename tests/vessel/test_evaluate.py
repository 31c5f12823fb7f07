"""``vesselflow evaluate`` end to end with a tiny model: DRIVE and --pairs inputs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image
from skimage.morphology import skeletonize
from sklearn.metrics import matthews_corrcoef, recall_score

from vesselflow.cli import main
from vesselflow.vessel.data.synthetic import synthetic_fundus
from vesselflow.vessel.evaluation.evaluate import drive_cases

KEYS = {"bpd", "max_f1", "f1", "threshold", "auc_roc", "average_precision", "ece",
        "sample_precision", "sample_recall", "human", "n_images", "n_samples", "specificity",
        "mcc", "cldice", "at_threshold"}


def test_evaluate_on_drive(drive_dir: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    rc = main(["evaluate", "--model", str(tiny_model), "--drive", str(drive_dir), "--samples",
               "3", "--limit", "2", "--out", str(out), "--device", "cpu"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert KEYS <= set(m) and m["n_images"] == 2 and m["n_samples"] == 3
    assert 0 < m["bpd"] < 2 and 0 <= m["max_f1"] <= 1 and m["threshold"] == 0.5
    # DRIVE also gets the paper's convention: bpd over a 1024 x 1024 zero-padded canvas.
    assert m["canvas"] == 1024 and 0 < m["bpd_canvas"] < 2
    # The second observer against the first on these two images (DRIVE: F1 around 0.79).
    assert 0.7 < m["human"]["f1"] < 0.9
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [r["id"] for r in rows] == ["01_test", "02_test"] and "bpd_canvas" in rows[0]
    for fig in ("pr.png", "sample_scatter.png", "reliability.png", "maps_01_test.png"):
        assert (out / "figures" / fig).stat().st_size > 1000
    assert np.load(out / "curves.npz")["sample_points"].shape == (6, 2)
    for k, lo in (("specificity", 0), ("mcc", -1), ("cldice", 0)):  # MCC lies in [-1, 1]
        assert lo <= m[k] <= 1 and all(lo <= float(r[f"{k}_at_threshold"]) <= 1 for r in rows)
    # The pooled second-observer scores, recomputed independently from the two images.
    cases = drive_cases(drive_dir)[:2]
    truth = np.concatenate([c.label[c.fov] for c in cases])
    pred = np.concatenate([c.label2[c.fov] for c in cases])
    assert m["human"]["specificity"] == pytest.approx(recall_score(truth, pred, pos_label=0))
    assert m["human"]["mcc"] == pytest.approx(matthews_corrcoef(truth, pred))
    sk = [(skeletonize(c.label2 & c.fov), skeletonize(c.label & c.fov)) for c in cases]
    tprec = sum((sp & c.label).sum() for (sp, _), c in zip(sk, cases, strict=True)) / sum(
        sp.sum() for sp, _ in sk)
    tsens = sum((sg & c.label2).sum() for (_, sg), c in zip(sk, cases, strict=True)) / sum(
        sg.sum() for _, sg in sk)
    assert m["human"]["cldice"] == pytest.approx(2 * tprec * tsens / (tprec + tsens))
    # bpd per FOV pixel: the same bound over fewer pixels; 95% bootstrap intervals over images
    assert m["bpd_fov"] > m["bpd"] and "bpd_fov" in rows[0]
    assert m["bootstrap"]["resamples"] == 1000 and m["bootstrap"]["seed"] == 0
    for k in ("f1", "max_f1", "auc_roc", "average_precision", "bpd", "bpd_fov", "bpd_canvas"):
        lo, hi = m["ci95"][k]
        assert np.isfinite([lo, hi]).all() and lo <= hi, k


def test_evaluate_bpd_is_reproducible_by_seed(tiny_model: Path, tmp_path: Path) -> None:
    """The CNF's bound draws dequantization noise: the draw follows --seed, nothing else."""
    from vesselflow.vessel.evaluation.evaluate import Case, evaluate

    d = synthetic_fundus((176, 176), seed=1)
    case = Case("a", d["image"].astype(np.float32), d["label"].astype(bool),
                np.ones((176, 176), bool))
    run = []
    for i, (seed, global_seed) in enumerate(((0, 1), (0, 2), (1, 1))):
        torch.manual_seed(global_seed)  # the global RNG's state must not matter
        run.append(evaluate(str(tiny_model), [case], tmp_path / f"e{i}", n_samples=1,
                            seed=seed, figures_for=0, progress=False, n_bootstrap=0)["bpd"])
    assert run[0] == run[1] != run[2]


def test_evaluate_pairs_csv_detects_the_fov(tiny_model: Path, tmp_path: Path) -> None:
    d = synthetic_fundus((176, 176), seed=3)
    Image.fromarray((d["image"] * 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(d["label"].astype(np.uint8) * 255).save(tmp_path / "a_label.png")
    (tmp_path / "pairs.csv").write_text("image,label\na.png,a_label.png\n")
    out = tmp_path / "eval"
    assert main(["evaluate", "--model", str(tiny_model), "--pairs", str(tmp_path / "pairs.csv"),
                 "--samples", "2", "--out", str(out), "--device", "cpu"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["fov"] == "detected" and m["human"] is None and m["n_images"] == 1
    assert m["bpd_canvas"] is None and m["canvas"] is None


def test_evaluate_reports_bad_inputs(tiny_model: Path, tmp_path: Path, capsys) -> None:
    (tmp_path / "pairs.csv").write_text("img,lab\nx.png,y.png\n")
    assert main(["evaluate", "--model", str(tiny_model), "--pairs", str(tmp_path / "pairs.csv"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "image,label" in capsys.readouterr().err
    assert main(["evaluate", "--model", "no-such-model", "--pairs",
                 str(tmp_path / "pairs.csv"), "--out", str(tmp_path / "o")]) == 2


def test_evaluate_seeds_an_image_as_segment_does(tiny_model: Path, tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Same image id, same run seed: evaluate scores the maps segment writes."""
    import vesselflow.vessel.evaluation.evaluate as ev
    from vesselflow.vessel.segment import segment_inputs

    d = synthetic_fundus((176, 176), seed=6)
    Image.fromarray((d["image"] * 255).astype(np.uint8)).save(tmp_path / "eye.png")
    Image.fromarray(d["label"].astype(np.uint8) * 255).save(tmp_path / "eye_label.png")
    (tmp_path / "pairs.csv").write_text("image,label\neye.png,eye_label.png\n")
    segment_inputs(tmp_path / "eye.png", tmp_path / "seg", model=str(tiny_model), samples=2,
                   seed=3, progress=False, biomarkers=False, log=lambda _: None)
    written = tifffile.imread(tmp_path / "seg" / "eye_prob.tif")
    scored = []
    real = ev.score_case
    monkeypatch.setattr(ev, "score_case", lambda mean, *a, **k: (scored.append(mean),
                                                                  real(mean, *a, **k))[1])
    for seed in (3, 4):
        ev.evaluate(str(tiny_model), ev.pairs_cases(tmp_path / "pairs.csv"),
                    tmp_path / f"e{seed}", n_samples=2, seed=seed, figures_for=0,
                    progress=False, biomarkers=False, n_bootstrap=0)
    np.testing.assert_array_equal(scored[0], written)  # the mean map, at full size
    assert not np.array_equal(scored[1], written)  # another seed, other maps: it can fail
    with open(tmp_path / "e3" / "per_image.csv", newline="") as f:
        row = next(csv.DictReader(f))
    with open(tmp_path / "seg" / "metrics.csv", newline="") as f:
        seg_row = next(csv.DictReader(f))
    for key in ("vessel_density", "mean_uncertainty", "review", "reasons"):
        assert row[key] == seg_row[key], key


def test_evaluate_takes_the_camera_field_and_pixel_size(tiny_model: Path, tmp_path: Path) -> None:
    """--fov-degrees and --pixel-size reach the rescale and the biomarkers, as in segment."""
    d = synthetic_fundus((176, 176), seed=3)
    Image.fromarray((d["image"] * 255).astype(np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(d["label"].astype(np.uint8) * 255).save(tmp_path / "a_label.png")
    (tmp_path / "pairs.csv").write_text("image,label\na.png,a_label.png\n")
    factors = {}
    for degrees in ("45", "30"):
        out = tmp_path / f"eval{degrees}"
        assert main(["evaluate", "--model", str(tiny_model), "--pairs",
                     str(tmp_path / "pairs.csv"), "--samples", "1", "--bootstrap", "0",
                     "--fov-degrees", degrees, "--pixel-size", "10", "--out", str(out),
                     "--device", "cpu"]) == 0
        m = json.loads((out / "metrics.json").read_text())
        assert m["fov_degrees"] == float(degrees) and m["pixel_size_um"] == 10.0
        factors[degrees] = m["scale_factors"]["a"]
    # a 30 degree camera's retina is brought to 30/45 of DRIVE's FOV diameter
    assert factors["30"] == pytest.approx(factors["45"] * 30 / 45, rel=0.02)
    for bad in (["--fov-degrees", "200"], ["--pixel-size", "-1"]):
        assert main(["evaluate", "--model", str(tiny_model), "--pairs",
                     str(tmp_path / "pairs.csv"), *bad, "--out", str(tmp_path / "x")]) == 2
