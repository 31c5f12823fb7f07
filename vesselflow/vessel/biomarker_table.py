"""The vessel biomarkers for people: the app's table and its CSV download
(:class:`vesselflow.vessel.biomarkers.BiomarkerReport` rounded and labelled)."""

from __future__ import annotations

import math
from typing import Any

from vesselflow.vessel.biomarkers import BiomarkerReport, um_note


def display_table(report: BiomarkerReport, digits: int = 3) -> list[dict[str, Any]]:
    """The app's biomarker table: values rounded, intervals as one "lo – hi" column each; um
    values marked as estimates unless the pixel size was given."""

    def fmt(x: float) -> str:
        return "n/a" if not math.isfinite(x) else f"{x:.{digits}g}" if abs(x) < 1e-2 or abs(
            x) >= 1e4 else f"{x:.{digits}f}"

    pretty = {"1/mm^2": "1/mm²", "1/mm": "mm/mm²",
              "um": "µm" if report.scale.source == "given" else "µm (estimate, assumed field)"}
    return [{"biomarker": r["biomarker"], "unit": pretty.get(r["unit"], r["unit"]),
             "estimate (a grader's tracing)": fmt(r["estimate"]),
             "90% prediction interval": f"{fmt(r['pi90_lo'])} – {fmt(r['pi90_hi'])}",
             "model value (mask)": fmt(r["model"]),
             "model uncertainty (samples 2.5–97.5%)":
                 f"{fmt(r['model_uncertainty_2.5%'])} – {fmt(r['model_uncertainty_97.5%'])}",
             "what": r["description"]} for r in report.table()]


def report_csv(report: BiomarkerReport, image: str = "image") -> bytes:
    """One image's biomarker table as CSV bytes (the app's download); the calibration, the
    um values' basis and a note as last ``#`` lines."""
    from vesselflow.io.files import csv_bytes

    rows = [{"image": image, **r, "n_samples": report.n_samples,
             "um_per_input_px": round(report.scale.input_um_per_px, 3),
             "pixel_size_source": report.scale.source} for r in report.table()]
    notes = [report.calibration, f"um values: {um_note(report.scale)}", report.note]
    return csv_bytes(rows) + "".join(f"# {n}\n" for n in notes if n).encode()
