"""The biomarkers' calibrated estimates and prediction intervals, the calibration file, and
the numpy skeleton graph that replaced skan's numba code."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from vesselflow.vessel.biomarker_calibration import (
    CALIBRATION_FILE,
    BiomarkerCalibration,
    CalibrationMismatch,
    conformal_interval,
    fit,
    load_for,
    residual,
)
from vesselflow.vessel.biomarkers import NAMES, PixelScale, biomarker_report, measure

ROOT = Path(__file__).resolve().parents[2]
UNIT = PixelScale(1.0, 10.0, "given")
SHA = "ab" * 32


def _bar(width: int = 5, shape: tuple[int, int] = (80, 160)) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[40:40 + width, 20:140] = True
    return m


def _cross() -> np.ndarray:
    m = np.zeros((101, 101), bool)
    m[48:53, 10:91] = True
    m[10:91, 48:53] = True
    return m


def _records(n: int, rng: np.random.Generator, shift: float, spread: float,
             scale: float = 1.0) -> list[dict]:
    """Calibration records whose tracing is the model value times exp(shift + noise)
    (relative biomarkers) or plus it (additive ones)."""
    out = []
    for _ in range(n):
        model = {k: float(rng.uniform(0.5, 2.0)) for k in NAMES}
        e = float(rng.normal(shift, spread))
        tracing = {k: (v * math.exp(e) if residual(k, 1.0, math.e) == 1.0 else v + e)
                   for k, v in model.items()}
        out.append({"mask": model, "tracing": tracing, "analysis_scale": scale})
    return out


def test_known_answer_bar_and_cross() -> None:
    # A 5 px bar, 120 px long: width 5, straight, two ends, no junction; length 120 - 5 + 1
    # skeleton pixels give 115 px of path at most (skeletonize trims the ends).
    b = measure(_bar(), np.ones((80, 160), bool), UNIT)
    assert b["calibre_median_px"] == pytest.approx(5.0)
    assert b["tortuosity"] == pytest.approx(1.0, abs=0.005)
    assert b["vessel_density"] == pytest.approx(5 * 120 / (80 * 160))
    mm2 = 80 * 160 * (UNIT.um_per_px / 1000) ** 2
    assert b["end_point_density"] * mm2 == pytest.approx(2)
    assert b["branch_point_density"] == 0
    assert 110 <= b["length_density"] * mm2 / (UNIT.um_per_px / 1000) <= 120
    c = measure(_cross(), np.ones((101, 101), bool), UNIT)
    mm2 = 101 * 101 * (UNIT.um_per_px / 1000) ** 2
    assert c["branch_point_density"] * mm2 == pytest.approx(1)
    assert c["end_point_density"] * mm2 == pytest.approx(4)


def _skan_reference(sk: np.ndarray) -> tuple[float, int, int, float]:
    """The biomarkers' graph numbers as skan computes them (the code this replaced)."""
    skan = pytest.importorskip("skan")
    from scipy import ndimage as ndi

    from vesselflow.vessel.biomarkers import MIN_CHORD_PX, _smoothed_arc_lengths

    skel = skan.Skeleton(sk, keep_images=False)
    deg = np.zeros(sk.shape, dtype=np.int32)
    rc = np.round(skel.coordinates).astype(np.intp)
    deg[rc[:, 0], rc[:, 1]] = skel.degrees[: len(rc)]
    indptr, indices = skel.paths.indptr, skel.paths.indices
    first, last = indices[indptr[:-1]], indices[np.maximum(indptr[1:] - 1, indptr[:-1])]
    chord = np.linalg.norm(skel.coordinates[first] - skel.coordinates[last], axis=1)
    ok = (chord >= MIN_CHORD_PX) & (first != last)
    arc = _smoothed_arc_lengths(skel.coordinates, indptr, indices)[ok]
    t = np.maximum(arc / chord[ok], 1.0)
    return (float(skel.path_lengths().sum()),
            int(ndi.label(deg >= 3, structure=np.ones((3, 3)))[1]), int((deg == 1).sum()),
            float(np.sum(t * arc) / np.sum(arc)) if ok.any() else float("nan"))


def _tracings() -> list[np.ndarray]:
    from vesselflow.io.masks import read_mask

    folder = ROOT.parent / "shared" / "data" / "DRIVE" / "test" / "1st_manual"
    if not folder.is_dir():
        return []
    return [read_mask(p) for p in sorted(folder.glob("*.gif"))[:3]]


def test_skeleton_graph_equals_skans_on_tracings_and_shapes() -> None:
    from skimage.morphology import skeletonize

    from vesselflow.vessel.biomarkers import _skeleton_graph

    ring = np.zeros((60, 60), bool)
    yy, xx = np.mgrid[:60, :60]
    ring[np.abs(np.hypot(yy - 30, xx - 30) - 20) < 1.5] = True
    wavy = np.zeros((80, 200), bool)
    x = np.arange(10, 190)
    wavy[(40 + 15 * np.sin(x / 12)).astype(int), x] = True
    noisy = np.random.default_rng(3).random((120, 150)) < 0.35  # a factored-like sample
    maps = [_bar(), _cross(), ring | _bar(3, (60, 60)), wavy, noisy, *_tracings()]
    for m in maps:
        sk = skeletonize(m)
        ours, ref = _skeleton_graph(sk), _skan_reference(sk)
        assert ours[1:3] == ref[1:3]
        np.testing.assert_allclose([ours[0], ours[3]], [ref[0], ref[3]], rtol=1e-9)


def test_conformal_interval_finite_sample_rank_and_coverage() -> None:
    # Constant model values: no slope; residuals 0..8, each left out in turn is predicted by
    # the mean of the others (36 - r) / 8: |9 r - 36| / 8, largest 4.5. n = 9 at 90%: the
    # ceil(10 * 0.9) = 9th smallest, the largest.
    r = [float(k) for k in range(9)]
    iv = conformal_interval("tortuosity", [1.0] * 9, [1.0 + x for x in r])
    assert iv.intercept == pytest.approx(4) and iv.slope == 0 and iv.kind == "additive"
    assert iv.half_width == pytest.approx(4.5)
    assert math.isinf(conformal_interval("tortuosity", [1.0] * 8, r[:8]).half_width)
    assert conformal_interval("vessel_density", [0.1], [0.1]).kind == "relative"
    # A model value that swings twice as much as the tracing's (log scale): slope -0.5,
    # and a value beyond the calibration range is not extrapolated.
    m = np.exp(np.linspace(-1, 1, 30))
    iv = conformal_interval("calibre_mean_um", list(m), list(2 * np.sqrt(m)))
    assert iv.slope == pytest.approx(-0.5) and iv.half_width == pytest.approx(0, abs=1e-9)
    assert iv.apply(1.0)[0] == pytest.approx(2.0)
    assert iv.apply(math.e)[0] == pytest.approx(2 * math.exp(0.5))
    assert iv.apply(math.e ** 3)[0] == pytest.approx(math.e ** 3 * 2 * math.exp(-0.5))
    # Exchangeable photos: the interval covers >= 90% of new tracings (and not far more).
    rng = np.random.default_rng(1)
    cal = fit(_records(300, rng, 0.3, 0.2), NAMES, SHA)
    new = _records(4000, rng, 0.3, 0.2)
    hits = []
    for rec in new:
        out = cal.apply(rec["mask"], 1.0)
        hits.append(out["vessel_density"]["lo"] <= rec["tracing"]["vessel_density"]
                    <= out["vessel_density"]["hi"])
    assert 0.88 <= np.mean(hits) <= 0.93


def test_reported_value_lies_inside_its_own_interval_on_constructed_maps() -> None:
    rng = np.random.default_rng(0)
    # A bias far larger than the spread: an estimate left at the model value falls outside.
    cal = fit(_records(60, rng, 0.5, 0.05), NAMES, SHA)
    for name in NAMES:  # model values far outside the calibration's 0.5-2: clamped, still
        v, lo, hi = cal.interval(name, 1.0).apply(40.0)  # centred and inside
        assert lo < v < hi
    wavy = np.zeros((80, 200), bool)
    x = np.arange(10, 190)
    for dy in range(3):
        wavy[(40 + dy + 15 * np.sin(x / 12)).astype(int), x] = True
    for m in (_bar(), _bar(8), _cross(), wavy):
        fov = np.ones(m.shape, bool)
        rep = biomarker_report(m, [m, np.roll(m, 1, 0)], fov, UNIT, calibration=cal,
                               analysis_scale=1.0)
        row = rep.row()
        for name in NAMES:
            v, lo, hi = row[name], row[f"{name}_pi90_lo"], row[f"{name}_pi90_hi"]
            if not math.isfinite(rep.mask[name]) or (name in ("branch_point_density",
                                                               "end_point_density")
                                                     and rep.mask[name] == 0):
                continue
            assert lo <= v <= hi, name
            assert not lo <= rep.mask[name] <= hi, name  # the raw value is its own column
            assert row[f"{name}_model"] == rep.mask[name]
        assert "model_uncertainty" in "".join(row) and SHA[:12] in rep.calibration
    # Uncalibrated: the model value, no interval, and the reason says so.
    rep = biomarker_report(_bar(), None, np.ones((80, 160), bool), UNIT,
                           uncalibrated_reason="no file")
    assert rep.row()["vessel_density"] == rep.mask["vessel_density"]
    assert math.isnan(rep.row()["vessel_density_pi90_lo"]) and "no file" in rep.calibration


def test_calibration_round_trips_from_json_with_the_model_sha(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    cal = fit(_records(40, rng, 0.2, 0.1) + _records(30, rng, -0.4, 0.2, scale=1.5), NAMES,
              SHA, meta={"command": "x"})
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(cal.to_dict()))
    back = BiomarkerCalibration.load(tmp_path, SHA)
    values = {k: 1.3 for k in NAMES}
    for scale in (1.0, 1.5, 2.0):
        assert back.apply(values, scale) == cal.apply(values, scale)
    # Strata: photos at scale > 1 get their own (negative) bias.
    assert back.apply(values, 1.5)["vessel_density"]["estimate"] < 1.3 < \
        back.apply(values, 1.0)["vessel_density"]["estimate"]
    with pytest.raises(CalibrationMismatch, match="calibrated for weights abababababab"):
        BiomarkerCalibration.load(tmp_path, "cd" * 32)

    class Loaded:
        path, sha256 = tmp_path, "cd" * 32

    got, why = load_for(Loaded)
    assert got is None and "not calibrated" in why
    Loaded.path = tmp_path / "missing"
    assert load_for(Loaded)[0] is None and "missing" in load_for(Loaded)[1]


def test_shipped_calibrations_match_their_weights() -> None:
    from vesselflow.vessel.models import load_model

    for name in ("cnf-drive", "factored-drive"):
        loaded = load_model(name)
        if not (loaded.path / CALIBRATION_FILE).is_file():
            pytest.skip(f"{name}: not calibrated yet")
        cal, why = load_for(loaded)
        assert cal is not None, why
        assert cal.meta["hrf_calibration_ids"] and cal.strata["pooled"]["tortuosity"].n > 20


def test_hrf_split_is_stratified_seeded_and_disjoint() -> None:
    sys.path.insert(0, str(ROOT / "scripts"))
    from calibrate_biomarkers import hrf_split

    ids = [f"{k:02d}_{g}" for g, n in (("h", 12), ("dr", 15), ("g", 15))
           for k in range(1, n + 1)]
    cal, rep = hrf_split(ids)
    assert hrf_split(ids) == (cal, rep) and not set(cal) & set(rep)
    assert sorted(cal + rep) == sorted(ids)
    count = {g: sum(i.endswith(f"_{g}") for i in cal) for g in ("h", "dr", "g")}
    assert count == {"h": 6, "dr": 8, "g": 7}
