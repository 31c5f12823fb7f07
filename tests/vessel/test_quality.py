"""Review verdicts: the sample-count-free features, the fit, the predicted F1 on constructed
cases, stored calibrations (round trip, sha check) and the verdict at every sample count."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from skimage.morphology import skeletonize

from vesselflow.vessel.preprocess.fov import fov_roundness
from vesselflow.vessel.review.features import agreement, input_features, map_features
from vesselflow.vessel.review.predictor import TERMS, F1Model, fit
from vesselflow.vessel.review.verdict import (
    CALIBRATION_FILE,
    WHY,
    ReviewCalibration,
    assess,
)


def _disc(h: int, w: int, r: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return (yy - (h - 1) / 2) ** 2 + (xx - (w - 1) / 2) ** 2 <= r**2


def test_fov_roundness() -> None:
    assert fov_roundness(_disc(300, 300, 140)) > 0.97
    cut = _disc(400, 400, 190)
    cut[:60], cut[-60:] = False, False  # a disc cut by the sensor, as in HRF
    assert fov_roundness(cut) > 0.97
    assert fov_roundness(np.ones((256, 256), bool)) == pytest.approx(np.pi / 4, abs=0.03)
    assert fov_roundness(np.zeros((10, 10), bool)) == 0.0


def test_agreement_is_the_pooled_pairwise_dice_of_the_samples() -> None:
    rng = np.random.default_rng(0)
    p = rng.beta(0.3, 2.0, size=3000)
    for n in (2, 5, 16):
        s = rng.random((n, p.size)) < p  # (n, pixels) binary samples
        mean = s.mean(0)
        mask = mean >= 0.5
        inter = sum(2 * np.sum(s[i] & s[j]) for i in range(n) for j in range(i + 1, n))
        sizes = sum(s[i].sum() + s[j].sum() for i in range(n) for j in range(i + 1, n))
        got = agreement(mean, mask, n)
        assert got["agreement"] == pytest.approx(inter / sizes)
        dice = [2 * np.sum(s[i] & mask) for i in range(n)]
        assert got["mask_agreement"] == pytest.approx(
            sum(dice) / sum(s[i].sum() + mask.sum() for i in range(n)))


def test_agreement_does_not_depend_on_the_sample_count() -> None:
    rng = np.random.default_rng(1)
    p = rng.beta(0.3, 2.0, size=20000)
    expected = float((p**2).sum() / p.sum())
    for n in (2, 4, 16, 64):
        vals = [agreement(rng.binomial(n, p) / n, p >= 0.5, n)["agreement"] for _ in range(20)]
        assert np.mean(vals) == pytest.approx(expected, abs=0.01), n
    assert agreement(p, p >= 0.5, 1) == {}  # one sample: not measurable
    assert agreement(p, p >= 0.5, None)["agreement"] == pytest.approx(expected)  # exact map
    assert agreement(np.zeros(100), np.zeros(100, bool), 16) == {
        "agreement": 0.0, "mask_agreement": 0.0}


def test_input_features_ignore_colour_gain_and_illumination() -> None:
    from vesselflow.vessel.data.degradations import vignette
    from vesselflow.vessel.data.synthetic import synthetic_fundus

    d = synthetic_fundus((400, 400), seed=3)
    base = input_features(d["image"], d["fov"])
    cast = np.clip(d["image"] * np.array([1.2, 0.6, 0.4], np.float32), 0, 1)
    for other in (cast, vignette(0.5, 0.3)(d["image"], 0)):
        got = input_features(other, d["fov"])
        for k in ("noise", "detail"):
            assert got[k] == pytest.approx(base[k], rel=0.15), k


def _rows(rng: np.random.Generator, n: int = 120) -> list[dict]:
    """Records whose F1 follows agreement and fragmentation, in six families."""
    rows = []
    for i in range(n):
        ag = rng.uniform(0.2, 0.8)
        frag = rng.uniform(5, 80)
        f1 = float(np.clip(1.1 * ag - 0.002 * frag + rng.normal(0, 0.02), 0, 1))
        rows.append({"family": f"f{i % 6}", "f1": f1, "features": {
            "agreement": ag, "mask_agreement": ag + 0.1, "density": 0.12,
            "fragmentation": frag, "noise": 0.3, "detail": 0.5, "clipped": 0.0}})
    return rows


def test_fit_recovers_a_linear_relation_with_honest_intervals() -> None:
    rows = _rows(np.random.default_rng(2))
    model, held = fit(rows, ["agreement", "log_fragmentation"], alpha=0.1)
    f1 = np.array([r["f1"] for r in rows])
    assert np.mean(np.abs(held - f1)) < 0.03  # held-out predictions
    assert model.residual_q05 < 0 < model.residual_q95
    assert model.predict({"agreement": 0.8, "fragmentation": 5})[0] > 0.8
    assert model.predict({"agreement": 0.2, "fragmentation": 80})[0] < 0.25
    assert model.predict({"agreement": 0.5}) is None  # a missing feature
    fresh = _rows(np.random.default_rng(3), 400)
    inside = [lo <= r["f1"] <= hi for r in fresh
              for _, lo, hi in [model.predict(r["features"])]]
    assert 0.8 <= np.mean(inside) <= 0.98  # a 90% interval


def _calibration(sha: str = "abc") -> ReviewCalibration:
    rows = _rows(np.random.default_rng(4))
    full, _ = fit(rows, ["agreement", "log_fragmentation", "clipped"])
    no_ag, _ = fit(rows, ["log_fragmentation", "clipped"])
    return ReviewCalibration(full, no_ag, 0.6, {"model_sha256": sha})


def test_calibration_round_trip_sha_check_and_bad_files(tmp_path: Path) -> None:
    cal = _calibration("abc")
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(cal.to_dict()))
    stored = json.loads((tmp_path / CALIBRATION_FILE).read_text())

    def leaves(x):  # plain numbers and strings only: nothing a loader would execute
        if isinstance(x, dict):
            return [v for y in x.values() for v in leaves(y)]
        if isinstance(x, list):
            return [v for y in x for v in leaves(y)]
        return [x]
    assert all(isinstance(v, int | float | str) for v in leaves(stored))
    back = ReviewCalibration.load(tmp_path, "abc")
    assert back is not None and not back.stale and back.threshold == cal.threshold
    feats = {"agreement": 0.55, "mask_agreement": 0.6, "fragmentation": 20, "clipped": 0.01,
             "fov_roundness": 0.99}
    assert back.assess(feats).predicted_f1 == pytest.approx(cal.assess(feats).predicted_f1)
    assert back.assess(feats).interval == pytest.approx(cal.assess(feats).interval)
    other = ReviewCalibration.load(tmp_path, "def")  # made for other weights
    v = other.assess(feats)
    assert v.status == "not assessed" and "other weights" in v.sentences()[0]
    assert "vesselflow calibrate-review" in v.sentences()[0]
    assert ReviewCalibration.load(tmp_path / "nowhere") is None
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps({"ranges": {"density": [0, 1]}}))
    assert ReviewCalibration.load(tmp_path, "abc").assess(feats).status == "not assessed"
    (tmp_path / CALIBRATION_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=CALIBRATION_FILE):
        ReviewCalibration.load(tmp_path)
    bad = cal.to_dict()
    bad["full"]["terms"] = ["shininess", "log_fragmentation", "clipped"]
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="shininess"):
        ReviewCalibration.load(tmp_path)


def test_verdicts_of_a_calibration() -> None:
    cal = _calibration()
    good = cal.assess({"agreement": 0.75, "mask_agreement": 0.85, "fragmentation": 10,
                       "clipped": 0.0, "fov_roundness": 0.99})
    assert good.status == "ok" and good.codes == "" and good.predicted_f1 > 0.6
    assert "expected agreement with a human grader" in good.expected()
    poor = cal.assess({"agreement": 0.3, "mask_agreement": 0.4, "fragmentation": 70,
                       "clipped": 0.0, "fov_roundness": 0.99})
    assert poor.status == "review" and poor.codes == "predicted_f1_low"
    assert WHY["agreement"] in poor.sentences()[0]
    # One sample: no agreement; the second fit answers and the verdict says so.
    one = cal.assess({"fragmentation": 10, "clipped": 0.0, "fov_roundness": 0.99})
    assert one.predicted_f1 is not None and "could not be measured" in one.sentences()[-1]
    # An empty map has failed whatever the fit extrapolates (here it predicts a good map).
    empty = cal.assess({"agreement": 0.75, "mask_agreement": 0.85, "fragmentation": 10,
                        "clipped": 0.0, "fov_roundness": 0.99, "density": 0.001})
    assert empty.status == "review" and empty.codes == "map_empty"
    assert empty.predicted_f1 is not None and empty.predicted_f1 > 0.6
    square = cal.assess({"agreement": 0.75, "fragmentation": 10, "clipped": 0.0,
                         "fov_roundness": 0.8})
    assert square.status == "review" and square.codes == "no_fundus_fov"
    none = assess({"agreement": 0.75}, None)
    assert none.status == "not assessed" and "vesselflow calibrate-review" in none.messages[0]
    assert set(WHY) == set(TERMS)


def test_every_term_survives_a_dict_round_trip() -> None:
    m = F1Model(list(TERMS), *[[0.5] * len(TERMS)] * 4, coef=[0.1] * len(TERMS),
                intercept=0.7, residual_q05=-0.1, residual_q95=0.05)
    assert F1Model.from_dict(json.loads(json.dumps(m.to_dict()))) == m


# --- the shipped calibrations, on real photos ---------------------------------------------

@pytest.fixture(scope="module")
def cnf():
    from vesselflow.vessel.models import load_model

    loaded = load_model("cnf-drive")
    cal = ReviewCalibration.load(loaded.path, loaded.sha256)
    assert cal is not None and not cal.stale, "cnf-drive has no usable review calibration"
    return loaded, cal


@pytest.fixture(scope="module")
def photo(drive_dir: Path) -> dict:
    from vesselflow.io.images import read_image
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.data.drive import drive_records
    from vesselflow.vessel.preprocess.fov import detect_fov

    rec = drive_records(drive_dir, "test")[0]
    image = read_image(rec["image"])
    return {"image": image, "fov": detect_fov(image),
            "label": read_mask(rec["label"], shape=image.shape[:2])}


def _constructed(cal: ReviewCalibration, photo: dict, mean: np.ndarray, n: int):
    fov = photo["fov"]
    mask = (mean >= 0.5) & fov
    feats = {**input_features(photo["image"], fov),
             **map_features(mean, fov, mask, skeletonize(mask), mask.sum() / fov.sum(), n)}
    return cal.assess(feats)


def test_predicted_f1_on_constructed_maps(cnf, photo) -> None:
    _, cal = cnf
    fov = photo["fov"]
    # 16 samples that all agree, on the grader's own tracing: a good map.
    agree = _constructed(cal, photo, (photo["label"] & fov).astype(np.float32), 16)
    assert agree.status == "ok" and agree.predicted_f1 >= 0.7, agree.to_dict()
    empty = _constructed(cal, photo, np.zeros(fov.shape, np.float32), 16)
    assert empty.status == "review" and empty.predicted_f1 < 0.5, empty.to_dict()
    # Speckle: every sample marks 12% of the pixels at random, independently.
    counts = np.random.default_rng(0).binomial(16, 0.12, fov.shape) / 16
    speckle = _constructed(cal, photo, counts.astype(np.float32), 16)
    assert speckle.status == "review" and speckle.predicted_f1 < 0.5, speckle.to_dict()


def test_the_verdict_holds_at_every_sample_count_and_under_a_colour_cast(cnf, photo) -> None:
    from vesselflow.vessel.analysis.pipeline import segment_image
    from vesselflow.vessel.analysis.summary import summarise
    from vesselflow.vessel.models import threshold_for

    loaded, cal = cnf

    def verdict(image: np.ndarray, n: int):
        seg = segment_image(loaded.model, image, n=n, name="01_test", analysis_scale="auto")
        return summarise(seg, threshold_for(loaded, n), cal).verdict

    statuses = {n: verdict(photo["image"], n) for n in (1, 4, 16, 64)}
    assert [statuses[n].status for n in (4, 16, 64)] == ["ok"] * 3, {
        n: v.to_dict() for n, v in statuses.items()}
    assert statuses[1].status != "review" and "could not be measured" in " ".join(
        statuses[1].sentences())
    # A strong colour cast, nothing else: the map stays good, the verdict stays ok.
    cast = np.clip(photo["image"] * np.array([1.25, 0.7, 0.45], np.float32), 0, 1)
    v = verdict(cast, 16)
    assert v.status == "ok" and v.predicted_f1 >= cal.threshold, v.to_dict()


def test_shipped_models_carry_their_calibration_or_say_not_assessed() -> None:
    from vesselflow.vessel.models import load_model

    for name in ("cnf-drive", "factored-drive"):
        loaded = load_model(name)
        cal = ReviewCalibration.load(loaded.path, loaded.sha256)
        assert cal is not None and not cal.stale, name
        assert cal.meta["model_sha256"] == loaded.sha256, name
        assert cal.meta["command"].startswith(f"vesselflow calibrate-review --model {name}")
    bce = load_model("factored-bce")
    v = assess({}, ReviewCalibration.load(bce.path, bce.sha256))
    assert v.status == "not assessed" and "vesselflow calibrate-review" in v.messages[0]
