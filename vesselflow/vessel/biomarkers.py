"""Vessel biomarkers from a binary vessel map and its field of view, with sample intervals.

One map (H, W) bool and its FOV (H, W) bool give (:data:`BIOMARKERS`):

* ``vessel_density``: vessel pixels / FOV pixels;
* ``length_density``: skeleton length per FOV area (mm / mm^2);
* ``branch_point_density`` / ``end_point_density``: skeleton junctions (connected clusters of
  pixels with >= 3 skeleton neighbours) and end pixels (1 neighbour) per mm^2 of FOV;
* ``fractal_dimension``: box counting on the vessel MAP (not the skeleton): the slope of
  log N(s) against log(1 / s) for square boxes of s = 2, 4, ..., 2^k pixels;
* ``tortuosity``: per skeleton segment (path between junctions / ends, chord >= 10 px,
  loops excluded) arc length / chord length, the arc measured on the path smoothed by a
  5-point moving average (the 8-connected pixel path of a straight oblique line is up to 8 %
  longer than the line); reported as the length-weighted mean over segments;
* ``calibre_mean`` / ``calibre_median`` (px of the input image, and um): per skeleton pixel
  p, EDT(p) + max EDT over p's 4-neighbours off the skeleton, with EDT the Euclidean
  distance transform of the map: the two half-widths of the cross-section either side of
  the ridge. Exact for axis-aligned bars of any width (odd or even) and for discs (pixel
  span); oblique bars within about 0.5 px (median).

The skeleton is ``skimage.morphology.skeletonize`` and its graph skan's, built without numba
(:mod:`vesselflow.vessel.analysis.skeleton_graph`).
The mask's skeleton comes from the per-image summary
(:class:`vesselflow.vessel.analysis.summary.ImageSummary`), which the review shares.

Scale: maps are measured at the analysis scale (DRIVE's FOV diameter, where the samples
live; :func:`vesselflow.vessel.analysis.pipeline.segment_image`). Pixel lengths are
converted to the input image's pixels with the scale factor, and to micrometres with the
pixel size: given by the user (``--pixel-size UM``, um per input pixel), or estimated
from the FOV on the stated assumption (:data:`RETINA_MM_45_DEG`) that a 45 degree field
spans about 13 mm of retina across the FOV diameter.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from scipy import ndimage as ndi

from vesselflow.vessel.analysis.scale_rule import vessel_widths
from vesselflow.vessel.preprocess.fov import fov_box
from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DEGREES

if TYPE_CHECKING:
    from vesselflow.vessel.analysis.pipeline import Segmentation
    from vesselflow.vessel.analysis.summary import ImageSummary

RETINA_MM_45_DEG = 13.0
"""Assumed retinal span (mm) of a 45 degree field across the FOV diameter."""

MIN_CHORD_PX = 10.0
"""Segments with a shorter chord (px, analysis scale) are left out of the tortuosity."""

SMOOTH_HALF_WINDOW = 2
"""Half window (points) of the moving average applied to a path before its arc length."""

BIOMARKERS: dict[str, tuple[str, str]] = {
    "vessel_density": ("fraction", "vessel area / FOV area"),
    "length_density": ("1/mm", "skeleton length per FOV area (mm per mm^2)"),
    "branch_point_density": ("1/mm^2", "skeleton junctions per FOV area"),
    "end_point_density": ("1/mm^2", "skeleton end points per FOV area"),
    "fractal_dimension": ("-", "box-counting dimension of the vessel map"),
    "tortuosity": ("-", "arc / chord per segment, length-weighted mean"),
    "calibre_mean_px": ("px", "mean vessel width along the skeleton (input-image pixels)"),
    "calibre_median_px": ("px", "median vessel width along the skeleton (input-image pixels)"),
    "calibre_mean_um": ("um", "mean vessel width along the skeleton"),
    "calibre_median_um": ("um", "median vessel width along the skeleton"),
}
"""Name -> (unit, what it is), in table order."""

NAMES: tuple[str, ...] = tuple(BIOMARKERS)
STATS = ("mean", "sd", "lo", "hi")
"""Per-biomarker sample statistics: mean, sd (ddof 1) and the 2.5 / 97.5 % percentiles."""

FACTORED_NOTE = ("factored model: its samples are independent-pixel Bernoulli draws, not "
                 "vessel maps; biomarkers of such samples (skeleton, branches, calibre) are "
                 "far off and their intervals do not describe vessel uncertainty")


@dataclass(frozen=True)
class PixelScale:
    """How analysis-scale pixels convert to input pixels and micrometres.

    Attributes:
        factor: analysis px per input px (``ScaleInfo.factor``; 1.0 when not resized).
        um_per_px: micrometres per ANALYSIS pixel.
        source: "given" (``--pixel-size``) or the estimate's assumption.
    """

    factor: float
    um_per_px: float
    source: str

    @property
    def input_um_per_px(self) -> float:
        """Micrometres per input-image pixel."""
        return self.um_per_px * self.factor


def pixel_scale(fov_diameter: float, factor: float = 1.0, pixel_size_um: float | None = None,
                fov_degrees: float = DRIVE_FOV_DEGREES) -> PixelScale:
    """The pixel scale of an analysis.

    Args:
        fov_diameter: FOV diameter in input pixels (``ScaleInfo.fov_diameter``).
        factor: analysis px per input px.
        pixel_size_um: um per INPUT pixel, if known; else estimated from the FOV, assuming
            a ``fov_degrees`` field spans ``13 mm * fov_degrees / 45`` across its diameter.
    """
    if not (factor > 0 and math.isfinite(factor)):
        raise ValueError(f"scale factor must be positive, got {factor}")
    if pixel_size_um is not None:
        if not (pixel_size_um > 0 and math.isfinite(pixel_size_um)):
            raise ValueError(f"--pixel-size must be a positive number of um, got "
                             f"{pixel_size_um}")
        return PixelScale(factor, pixel_size_um / factor, "given")
    if not fov_diameter > 0:
        raise ValueError(f"FOV diameter must be positive, got {fov_diameter}")
    span_mm = RETINA_MM_45_DEG * fov_degrees / DRIVE_FOV_DEGREES
    return PixelScale(factor, 1000.0 * span_mm / (fov_diameter * factor),
                      f"estimated: a {fov_degrees:g} degree field spans {span_mm:.1f} mm "
                      f"across the FOV diameter")


# ------------------------------------------------------------------------------ one map
def box_counting_dimension(mask: np.ndarray, max_box: int | None = None) -> float:
    """Box-counting dimension of a binary map (boxes of 2, 4, ..., ``max_box`` px).

    The map is zero-padded to a multiple of the largest box; ``max_box`` defaults to the
    largest power of 2 not above a quarter of the shorter side (>= 4 boxes across).
    """
    m = np.asarray(mask, dtype=bool)
    if not m.any():
        return float("nan")
    if max_box is None:
        max_box = 2 ** math.floor(math.log2(max(min(m.shape) / 4, 2)))
    sizes = [2**k for k in range(1, int(math.log2(max_box)) + 1)]
    if len(sizes) < 2:
        return float("nan")
    big = sizes[-1]
    h, w = (-(-m.shape[0] // big) * big, -(-m.shape[1] // big) * big)
    m = np.pad(m, ((0, h - m.shape[0]), (0, w - m.shape[1])))
    counts = []
    level = m
    for _ in sizes:  # each level halves the grid: a box of 2s is full if any of its 4 is
        level = level[0::2, 0::2] | level[1::2, 0::2] | level[0::2, 1::2] | level[1::2, 1::2]
        counts.append(int(level.sum()))
    slope = np.polyfit(np.log(1.0 / np.asarray(sizes, float)), np.log(counts), 1)[0]
    return float(slope)


def _smoothed_arc_lengths(coords: np.ndarray, indptr: np.ndarray, indices: np.ndarray,
                          half: int = SMOOTH_HALF_WINDOW) -> np.ndarray:
    """Arc length of every path after a moving average along it (ends kept).

    Vectorised over all paths: each point averages the points within ``half`` of it on its
    own path (the window shrinks symmetrically near the ends, so end points stay put).
    """
    pts = coords[indices].astype(np.float64)  # (M, 2), paths concatenated in order
    n_per = np.diff(indptr)
    pid = np.repeat(np.arange(len(n_per)), n_per)
    pos = np.arange(len(indices)) - indptr[pid]  # position within its path
    n = n_per[pid]
    r = np.minimum(np.minimum(pos, n - 1 - pos), half)  # symmetric window radius
    csum = np.vstack([np.zeros((1, 2)), np.cumsum(pts, axis=0)])
    g = np.arange(len(indices))
    smooth = (csum[g + r + 1] - csum[g - r]) / (2 * r + 1)[:, None]
    step = np.linalg.norm(np.diff(smooth, axis=0), axis=1)
    same = pid[1:] == pid[:-1]  # steps within a path, not across two paths
    return np.bincount(pid[1:][same], weights=step[same], minlength=len(n_per))


def _empty(density: float) -> dict[str, float]:
    out = dict.fromkeys(NAMES, float("nan"))
    out.update(vessel_density=density, length_density=0.0, branch_point_density=0.0,
               end_point_density=0.0)
    return out


def measure(mask: np.ndarray, fov: np.ndarray, scale: PixelScale,
            skeleton: np.ndarray | None = None) -> dict[str, float]:
    """All :data:`BIOMARKERS` of one binary map (H, W) inside its FOV (H, W), analysis scale.

    ``skeleton``: the (H, W) skeleton of ``mask & fov`` when already computed (the per-image
    summary's); else skeletonised here. Values that do not exist for the map (no skeleton,
    no segment long enough) are NaN.
    """
    from skimage.morphology import skeletonize

    fov = np.asarray(fov, dtype=bool)
    mask = np.asarray(mask, dtype=bool)
    if mask.shape != fov.shape:
        raise ValueError(f"map {mask.shape} and FOV {fov.shape} sizes differ")
    fov_px = int(fov.sum())
    if fov_px == 0:
        raise ValueError("the field of view is empty")
    box = fov_box(fov)  # nothing outside the FOV counts: measure its bounding box only
    m = mask[box] & fov[box]
    density = float(m.sum() / fov_px)
    # Skeletonising the box equals cropping the whole map's skeleton: outside is background.
    sk = skeletonize(m) if skeleton is None else np.asarray(skeleton, dtype=bool)[box]
    if not sk.any():
        return {**_empty(density), "fractal_dimension": box_counting_dimension(m)}
    mm = scale.um_per_px / 1000.0
    fov_mm2 = fov_px * mm * mm
    length_px, n_junctions, n_ends, tort = _skeleton_graph(sk)
    cal_mean, cal_median = _calibre(m, sk)  # px, analysis scale
    return {
        "vessel_density": density,
        "length_density": length_px * mm / fov_mm2,
        "branch_point_density": n_junctions / fov_mm2,
        "end_point_density": n_ends / fov_mm2,
        "fractal_dimension": box_counting_dimension(m),
        "tortuosity": tort,
        "calibre_mean_px": cal_mean / scale.factor,
        "calibre_median_px": cal_median / scale.factor,
        "calibre_mean_um": cal_mean * scale.um_per_px,
        "calibre_median_um": cal_median * scale.um_per_px,
    }


def _skeleton_graph(sk: np.ndarray) -> tuple[float, int, int, float]:
    """(length px, junctions, end points, tortuosity) of a skeleton, from its graph
    (:mod:`vesselflow.vessel.analysis.skeleton_graph`: skan's graph in numpy/scipy)."""
    from vesselflow.vessel.analysis.skeleton_graph import chain_paths, skeleton_graph

    if int(sk.sum()) < 2:  # a lone pixel: no path, no junction, no end
        return 0.0, 0, 0, float("nan")
    g = skeleton_graph(sk)
    deg = np.zeros(sk.shape, dtype=np.int32)
    deg[g.coordinates[:, 0], g.coordinates[:, 1]] = g.degrees
    # A junction is often a cluster of adjacent degree->=3 pixels: count clusters.
    n_junctions = int(ndi.label(deg >= 3, structure=np.ones((3, 3)))[1])
    n_ends = int((deg == 1).sum())

    # Tortuosity per segment: smoothed arc / chord, loops and short segments left out.
    indptr, indices = chain_paths(g)
    tort = float("nan")
    if len(indptr) > 1:
        first, last = indices[indptr[:-1]], indices[indptr[1:] - 1]
        chord = np.linalg.norm(g.coordinates[first] - g.coordinates[last], axis=1)
        ok = (chord >= MIN_CHORD_PX) & (first != last)
        if ok.any():
            arc = _smoothed_arc_lengths(g.coordinates, indptr, indices)[ok]
            t = np.maximum(arc / chord[ok], 1.0)  # smoothing can cut a hair off a straight line
            tort = float(np.sum(t * arc) / np.sum(arc))
    return g.length, n_junctions, n_ends, tort


def _calibre(m: np.ndarray, sk: np.ndarray) -> tuple[float, float]:
    """Mean and median width (px) along the skeleton
    (:func:`vesselflow.vessel.analysis.scale_rule.vessel_widths`)."""
    width = vessel_widths(m, sk)
    return float(width.mean()), float(np.median(width))


# --------------------------------------------------------------------------- samples
def summarize_samples(values: Sequence[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per biomarker over samples: mean, sd (ddof 1), lo / hi (2.5 / 97.5 % percentiles).

    NaN values (a sample without that biomarker) are left out; all-NaN gives NaN.
    """
    out: dict[str, dict[str, float]] = {}
    for name in NAMES:
        v = np.array([s[name] for s in values], dtype=np.float64)
        v = v[np.isfinite(v)]
        if len(v) == 0:
            out[name] = dict.fromkeys(STATS, float("nan"))
            continue
        lo, hi = np.percentile(v, [2.5, 97.5])
        out[name] = {"mean": float(v.mean()),
                     "sd": float(v.std(ddof=1)) if len(v) > 1 else float("nan"),
                     "lo": float(lo), "hi": float(hi)}
    return out


class Calibrator(Protocol):
    """What a report needs of a calibration (:class:`vesselflow.vessel.biomarker_calibration.
    BiomarkerCalibration`): estimate and 90% prediction interval per model value."""

    level: float
    model_sha256: str

    def apply(self, values: dict[str, float], analysis_scale: float | None
              ) -> dict[str, dict[str, float]]: ...


@dataclass
class BiomarkerReport:
    """Biomarkers of one image: on the thresholded mean map (the model value), its calibrated
    estimate of a grader's tracing with a prediction interval, and over the samples (the
    model uncertainty).

    ``calibrated``: per biomarker ``estimate``, ``lo``, ``hi`` (None: uncalibrated, for the
    reason in ``calibration``, which otherwise names the calibration).
    """

    mask: dict[str, float]
    samples: dict[str, dict[str, float]]
    n_samples: int
    scale: PixelScale
    note: str = ""
    calibrated: dict[str, dict[str, float]] | None = None
    calibration: str = ""

    def value(self, name: str) -> tuple[float, float, float]:
        """(reported value, interval lo, hi): the calibrated estimate and its prediction
        interval, or the model value and NaNs when uncalibrated."""
        if self.calibrated is None:
            return self.mask[name], float("nan"), float("nan")
        c = self.calibrated[name]
        return c["estimate"], c["lo"], c["hi"]

    def row(self) -> dict[str, Any]:
        """Flat CSV row per biomarker: ``<name>`` the reported value (calibrated estimate of
        a grader's tracing), ``<name>_pi90_lo/_hi`` its prediction interval, ``<name>_model``
        the model's value (mask), ``<name>_model_uncertainty_mean/_sd/_lo/_hi`` the samples'
        mean, sd and 2.5 / 97.5 % percentiles."""
        row: dict[str, Any] = {"n_samples": self.n_samples,
                               "scale_factor": round(self.scale.factor, 4),
                               "um_per_input_px": round(self.scale.input_um_per_px, 3),
                               "pixel_size_source": self.scale.source,
                               "um_values": um_note(self.scale),
                               "calibration": self.calibration}
        for name in NAMES:
            row[name], row[f"{name}_pi90_lo"], row[f"{name}_pi90_hi"] = self.value(name)
            row[f"{name}_model"] = self.mask[name]
            for s in STATS:
                row[f"{name}_model_uncertainty_{s}"] = self.samples[name][s]
        if self.note:
            row["note"] = self.note
        return row

    def table(self) -> list[dict[str, Any]]:
        """One row per biomarker (for display): the reported value and its interval, the
        model value, the samples' statistics (model uncertainty)."""
        rows = []
        for name, (unit, what) in BIOMARKERS.items():
            s = self.samples[name]
            v, lo, hi = self.value(name)
            rows.append({"biomarker": name, "unit": unit, "estimate": v,
                         "pi90_lo": lo, "pi90_hi": hi, "model": self.mask[name],
                         "model_uncertainty_mean": s["mean"], "model_uncertainty_sd": s["sd"],
                         "model_uncertainty_2.5%": s["lo"], "model_uncertainty_97.5%": s["hi"],
                         "description": what})
        return rows


def um_note(scale: PixelScale) -> str:
    """What the um values rest on: the given pixel size, or an estimate from the FOV."""
    if scale.source == "given":
        return "from the given pixel size"
    return (f"estimates: {scale.source.removeprefix('estimated: ')} (assumed; give "
            f"--pixel-size for measured um)")


def biomarker_report(mask: np.ndarray, samples: Iterable[np.ndarray] | None, fov: np.ndarray,
                     scale: PixelScale, kind: str = "cnf",
                     skeleton: np.ndarray | None = None, calibration: Calibrator | None = None,
                     analysis_scale: float | None = None,
                     uncalibrated_reason: str = "") -> BiomarkerReport:
    """Biomarkers of the mask and of every sample (all (H, W) bool at the analysis scale);
    ``skeleton``: the mask's, when already computed; ``calibration``: the model's (its
    estimate and interval for a photo at ``analysis_scale``), else uncalibrated for
    ``uncalibrated_reason``."""
    values = [measure(s, fov, scale) for s in (samples if samples is not None else [])]
    mask_values = measure(mask, fov, scale, skeleton)
    cal = None if calibration is None else calibration.apply(mask_values, analysis_scale)
    why = (f"{calibration.level:.0%} prediction interval of a grader's tracing, calibrated "
           f"for weights {calibration.model_sha256[:12]}" if calibration is not None
           else f"uncalibrated: {uncalibrated_reason or 'no calibration given'}")
    return BiomarkerReport(mask_values, summarize_samples(values), len(values), scale,
                           FACTORED_NOTE if kind == "factored" else "", cal, why)


def segmentation_report(seg: Segmentation, summary: ImageSummary, kind: str = "cnf",
                        pixel_size_um: float | None = None,
                        calibration: Calibrator | None = None,
                        uncalibrated_reason: str = "") -> BiomarkerReport:
    """:func:`biomarker_report` of a segmentation: its summary's mask and skeleton, its
    samples, the pixel scale of its rescale and camera field (``seg.fov_degrees``), the
    calibration's interval for its analysis scale."""
    info = seg.scale
    scale = pixel_scale(info.fov_diameter, info.factor, pixel_size_um, seg.fov_degrees)
    return biomarker_report(summary.mask, seg.samples, seg.fov, scale, kind, summary.skeleton,
                            calibration, summary.analysis_scale, uncalibrated_reason)
