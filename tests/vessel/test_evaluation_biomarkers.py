"""evaluate's biomarker comparison: bias, correlation, coverage, observer spread (known answers)."""

from __future__ import annotations

import numpy as np
import pytest

from vesselflow.vessel.biomarkers import NAMES
from vesselflow.vessel.evaluation.biomarker_agreement import analysis_label, compare
from vesselflow.vessel.preprocess.scale import ScaleInfo


def record(tracing: float, mask: float, lo: float, hi: float, obs2: float | None) -> dict:
    def vals(v: float) -> dict[str, float]:
        return dict.fromkeys(NAMES, v)

    stats = {n: {"mean": (lo + hi) / 2, "sd": 1.0, "lo": lo, "hi": hi} for n in NAMES}
    return {"id": "x", "tracing": vals(tracing), "mask": vals(mask), "samples": stats,
            "observer2": vals(obs2) if obs2 is not None else None, "scale_factor": 1.0,
            "um_per_input_px": 24.0}


def test_bias_correlation_coverage_and_observer_spread() -> None:
    # Model = tracing + 1 exactly (bias 1, r 1); intervals cover images 0 and 1 only.
    tr = [1.0, 2.0, 3.0, 4.0]
    recs = [record(t, t + 1, lo, hi, t + d) for t, (lo, hi), d in
            zip(tr, [(0.5, 1.5), (1.9, 2.1), (3.5, 4.5), (0.0, 1.0)], [0.1, -0.1, 0.3, -0.3],
                strict=True)]
    e = compare(recs)["vessel_density"]
    assert e["bias"] == pytest.approx(1.0) and e["pearson_r"] == pytest.approx(1.0)
    assert e["coverage"] == pytest.approx(0.5)
    assert e["interval_width"] == pytest.approx(np.mean([1.0, 0.2, 1.0, 1.0]))
    d = np.array([0.1, -0.1, 0.3, -0.3])
    assert e["observer"]["bias"] == pytest.approx(0.0)
    assert e["observer"]["loa_width"] == pytest.approx(2 * 1.96 * d.std(ddof=1))
    assert e["intervals_vs_observer"] == ("narrower" if e["interval_width"] <
                                          2 * 1.96 * d.std(ddof=1) else "wider")
    # Without a second observer there is no human row.
    assert "observer" not in compare([record(1, 2, 0, 3, None)] * 3)["tortuosity"]


def test_nan_values_are_left_out() -> None:
    recs = [record(1.0, 2.0, 0.0, 3.0, None), record(float("nan"), 2.0, 0.0, 3.0, None)]
    e = compare(recs)["calibre_mean_um"]
    assert e["n"] == 1 and e["coverage"] == 1.0 and e["bias"] == pytest.approx(1.0)


def test_analysis_label_keeps_thin_vessels_when_shrunk() -> None:
    label = np.zeros((600, 600), bool)
    label[:, 300:306] = True  # 6 px wide vessel, shrunk by 0.25 -> 1.5 px
    info = ScaleInfo((600, 600), (150, 150), 0.25, 600.0)
    small = analysis_label(label, info)
    assert small.shape == (150, 150) and small.dtype == bool
    assert small[:, 74:78].any(axis=1).all()  # the vessel is continuous
    assert small.sum() == pytest.approx(label.sum() * 0.25**2, rel=0.4)
    same = ScaleInfo((600, 600), (600, 600), 1.0, 600.0)
    assert analysis_label(label, same) is not None and (analysis_label(label, same) == label).all()
