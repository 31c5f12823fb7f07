"""Vessel biomarkers: known answers on drawn shapes, sample summaries, pixel scales."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.draw import disk

from vesselflow.vessel.biomarker_table import display_table, report_csv
from vesselflow.vessel.biomarkers import (
    FACTORED_NOTE,
    NAMES,
    PixelScale,
    biomarker_report,
    box_counting_dimension,
    measure,
    pixel_scale,
    summarize_samples,
)

UNIT = PixelScale(factor=1.0, um_per_px=1000.0, source="test")  # 1 px = 1 mm


def bar(width: float, angle: float, length: float = 120, size: int = 200) -> np.ndarray:
    """A rasterised strip (pixel centres within width / 2 of the axis), off the pixel grid."""
    y, x = np.mgrid[:size, :size].astype(float)
    c = size / 2 + 0.3
    t = np.deg2rad(angle)
    u = (x - c) * np.cos(t) + (y - c) * np.sin(t)
    v = -(x - c) * np.sin(t) + (y - c) * np.cos(t)
    return (np.abs(v) < width / 2) & (np.abs(u) < length / 2)


def full(m: np.ndarray) -> np.ndarray:
    return np.ones_like(m, dtype=bool)


def test_straight_line_has_tortuosity_one_and_its_length() -> None:
    m = np.zeros((100, 200), bool)
    m[50, 20:180] = True  # 160 pixels: 159 px long
    b = measure(m, full(m), UNIT)
    area = m.size  # px^2 = mm^2 here
    assert b["tortuosity"] == pytest.approx(1.0, abs=1e-9)
    assert b["length_density"] * area == pytest.approx(159.0, abs=1e-6)
    assert b["end_point_density"] * area == pytest.approx(2.0)
    assert b["branch_point_density"] == 0.0
    assert b["vessel_density"] == pytest.approx(160 / area)


@pytest.mark.parametrize("angle", [20.0, 45.0])
def test_oblique_straight_line_is_not_tortuous(angle: float) -> None:
    # The 8-connected pixel path of an oblique line is longer than the line: the smoothing
    # must remove that, or every oblique vessel reads as tortuous.
    b = measure(bar(1.5, angle), full(bar(1.5, angle)), UNIT)
    assert b["tortuosity"] == pytest.approx(1.0, abs=0.01)


@pytest.mark.parametrize(("radius", "sweep"), [(60, math.pi), (80, math.pi / 2)])
def test_circular_arc_has_its_known_tortuosity(radius: float, sweep: float) -> None:
    m = np.zeros((200, 200), bool)
    th = np.linspace(0, sweep, 4000)
    m[np.round(100 + radius * np.sin(th)).astype(int),
      np.round(100 + radius * np.cos(th)).astype(int)] = True
    b = measure(m, full(m), UNIT)
    expected = sweep / (2 * math.sin(sweep / 2))  # arc / chord
    assert b["tortuosity"] == pytest.approx(expected, rel=0.01)


@pytest.mark.parametrize("width", [2, 3, 4, 5, 6, 8, 9, 12])
@pytest.mark.parametrize("angle", [0.0, 90.0])
def test_axis_aligned_bar_calibre(width: int, angle: float) -> None:
    m = bar(width, angle)
    b = measure(m, full(m), UNIT)
    assert b["calibre_median_px"] == pytest.approx(width, abs=0.5)
    assert b["calibre_mean_px"] == pytest.approx(width, abs=0.5)


@pytest.mark.parametrize("width", [3, 4, 5, 6, 8, 9, 12])
@pytest.mark.parametrize("angle", [30.0, 45.0])
def test_oblique_bar_calibre(width: int, angle: float) -> None:
    m = bar(width, angle)
    b = measure(m, full(m), UNIT)
    assert b["calibre_median_px"] == pytest.approx(width, abs=0.7)


@pytest.mark.parametrize("radius", [3, 4, 5, 7, 10])
def test_disc_calibre_is_its_diameter(radius: int) -> None:
    m = np.zeros((60, 60), bool)
    m[disk((30, 30), radius)] = True  # centres strictly inside: 2 * radius - 1 pixels across
    b = measure(m, full(m), UNIT)
    assert b["calibre_median_px"] == pytest.approx(2 * radius - 1, abs=0.5)


def test_calibre_units_follow_the_scale() -> None:
    m = bar(6, 0.0)
    b = measure(m, full(m), PixelScale(factor=0.5, um_per_px=20.0, source="test"))
    # 6 analysis px = 12 input px (the input was shrunk by 2) = 120 um.
    assert b["calibre_median_px"] == pytest.approx(12.0, abs=1.0)
    assert b["calibre_median_um"] == pytest.approx(120.0, abs=10.0)


def test_branch_points_of_a_cross() -> None:
    m = np.zeros((101, 101), bool)
    m[50, 10:91] = True
    m[10:91, 50] = True
    b = measure(m, full(m), UNIT)
    assert b["branch_point_density"] * m.size == pytest.approx(1.0)
    assert b["end_point_density"] * m.size == pytest.approx(4.0)


def test_a_junction_of_adjacent_pixels_is_one_branch_point() -> None:
    # Branches leaving a line one pixel apart (up at column 50, down at 51): skan marks two
    # adjacent junction pixels; they are one branch point, as a crossing is.
    m = np.zeros((101, 101), bool)
    m[50, 10:91] = True
    m[10:50, 50] = True
    m[51:91, 51] = True
    b = measure(m, full(m), UNIT)
    assert b["branch_point_density"] * m.size == pytest.approx(1.0)
    assert b["end_point_density"] * m.size == pytest.approx(4.0)


def sierpinski_carpet(depth: int) -> np.ndarray:
    c = np.ones((1, 1), bool)
    for _ in range(depth):
        z = np.zeros_like(c)
        c = np.block([[c, c, c], [c, z, c], [c, c, c]])
    return c


def test_fractal_dimension_known_answers() -> None:
    assert box_counting_dimension(np.ones((256, 256), bool)) == pytest.approx(2.0, abs=0.05)
    line = np.zeros((256, 256), bool)
    line[100, :] = True
    assert box_counting_dimension(line) == pytest.approx(1.0, abs=0.05)
    carpet = sierpinski_carpet(6)  # 729 x 729
    assert box_counting_dimension(carpet) == pytest.approx(math.log(8) / math.log(3), abs=0.05)
    assert math.isnan(box_counting_dimension(np.zeros((64, 64), bool)))


def test_empty_map_and_outside_fov() -> None:
    m = np.zeros((80, 80), bool)
    fov = np.zeros_like(m)
    fov[10:70, 10:70] = True
    m[0:5, :] = True  # outside the FOV: ignored
    b = measure(m, fov, UNIT)
    assert b["vessel_density"] == 0.0 and b["length_density"] == 0.0
    assert math.isnan(b["tortuosity"]) and math.isnan(b["calibre_mean_px"])
    with pytest.raises(ValueError, match="empty"):
        measure(m, np.zeros_like(m), UNIT)


def test_sample_summary_and_report() -> None:
    rng = np.random.default_rng(0)
    fov = np.ones((100, 200), bool)
    samples = []
    for k in range(8):
        s = np.zeros_like(fov)
        s[40:40 + 2 + k % 3, 20:180] = True  # widths 2, 3, 4
        samples.append(s)
    mask = samples[1]
    rep = biomarker_report(mask, samples, fov, UNIT)
    cal = rep.samples["calibre_median_px"]
    assert rep.n_samples == 8 and cal["lo"] <= 3 <= cal["hi"]
    assert 2 <= cal["lo"] < cal["hi"] <= 4 and cal["sd"] > 0
    assert rep.mask["calibre_median_px"] == pytest.approx(3.0, abs=0.5)
    row = rep.row()
    assert {f"{n}_model_uncertainty_{s}" for n in NAMES for s in ("mean", "sd", "lo", "hi")
            } <= set(row)
    table = display_table(rep)
    assert len(table) == len(NAMES)
    assert "–" in table[0]["model uncertainty (samples 2.5–97.5%)"]
    # Rows, header, and two "#" lines: the calibration (here none) and the um values' basis.
    text = report_csv(rep, "x.png").decode()
    assert text.count("\n") == len(NAMES) + 3 and "# uncalibrated" in text
    assert "# um values: estimates" in report_csv(biomarker_report(
        mask, None, fov, pixel_scale(500.0)), "x.png").decode()
    # The factored model's samples carry the warning.
    assert biomarker_report(mask, samples, fov, UNIT, kind="factored").note == FACTORED_NOTE
    s = summarize_samples([{n: float(rng.normal()) for n in NAMES} for _ in range(4000)])
    assert s["tortuosity"]["lo"] == pytest.approx(-1.96, abs=0.15)
    assert s["tortuosity"]["hi"] == pytest.approx(1.96, abs=0.15)
    assert s["tortuosity"]["sd"] == pytest.approx(1.0, abs=0.05)


def test_pixel_scale_given_or_estimated() -> None:
    est = pixel_scale(fov_diameter=537.7, factor=1.0)
    assert est.um_per_px == pytest.approx(13000 / 537.7) and "13.0 mm" in est.source
    # A 3504-px camera shrunk by 0.17: an analysis pixel is 1 / 0.17 input pixels.
    given = pixel_scale(fov_diameter=3200, factor=0.17, pixel_size_um=4.0)
    assert given.um_per_px == pytest.approx(4.0 / 0.17) and given.input_um_per_px == 4.0
    with pytest.raises(ValueError, match="pixel-size"):
        pixel_scale(500, 1.0, pixel_size_um=-1)
