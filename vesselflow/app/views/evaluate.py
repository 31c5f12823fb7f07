"""Evaluate: score the vessel maps against a manual tracing, as ``vesselflow evaluate`` does."""

from __future__ import annotations

import json
import math

import numpy as np
import streamlit as st

from vesselflow.app import config, guard, inputs, models, segmenting
from vesselflow.io.errors import ImageReadError
from vesselflow.vessel.evaluation.figures import (
    pr_curve_figure,
    reliability_diagram,
    sample_scatter_figure,
)
from vesselflow.vessel.evaluation.metrics import score_case
from vesselflow.vessel.models import threshold_for
from vesselflow.vessel.visualize import AGREEMENT_COLORS, agreement_map, gray, thumbnail, to_uint8

SOURCES = {
    "drive": "DRIVE test image",
    "synthetic": "Synthetic fundus (known vessels)",
    "upload": "Upload image and tracing",
}


def _drive_ids() -> tuple[str | None, list[str]]:
    root = config.drive_root()
    if root is None:
        return None, []
    try:
        return str(root), inputs.drive_test_ids(str(root))
    except ImageReadError as exc:  # DatasetLayoutError: an incomplete copy
        st.warning(f"The DRIVE folder is not usable: {exc.problem}", icon=":material/warning:")
        return None, []


def choose_case() -> inputs.InputImage | None:
    """The labelled case: a DRIVE test image, the synthetic example, or uploads."""
    root, ids = _drive_ids()
    options = [k for k in SOURCES if k != "drive" or ids]
    source = st.radio("Case", options, format_func=SOURCES.get, horizontal=True,
                      key="eval_source", label_visibility="collapsed")
    if source == "drive":
        case_id = st.selectbox("DRIVE test image", ids, key="drive_id",
                               help=f"From {root}. Reference: the first observer's tracing; "
                                    "the second observer is shown as the human benchmark; "
                                    "the official FOV mask is used.")
        return inputs.drive_case(root, case_id)
    if source == "synthetic":
        return inputs.example_image("synthetic")
    c1, c2, c3, c4 = st.columns(4)
    up_image = c1.file_uploader("Fundus image", type=config.IMAGE_TYPES, key="eval_image")
    up_label = c2.file_uploader("Manual tracing (reference)", type=config.IMAGE_TYPES,
                                key="eval_label", help="Binary vessel map of the same size: "
                                "white (or any non-zero value) = vessel.")
    up_label2 = c3.file_uploader("Second grader (optional)", type=config.IMAGE_TYPES,
                                 key="eval_label2", help="Another person's tracing of the "
                                 "same image: scored against the reference as a human "
                                 "benchmark.")
    up_fov = c4.file_uploader("Field-of-view mask (optional)", type=config.IMAGE_TYPES,
                              key="eval_fov", help="Detected automatically when absent.")
    if up_image is None or up_label is None:
        st.info("Upload a fundus image and its manual vessel tracing, or choose a case above.",
                icon=":material/upload:")
        return None
    item = inputs.decode_upload(up_image.getvalue(), up_image.name)
    shape = tuple(item.image.shape[:2])

    def mask(upload):
        return None if upload is None else inputs.decode_mask(upload.getvalue(), upload.name,
                                                             shape)

    return inputs.InputImage(item.name, item.key, item.image, item.notes,
                             label=mask(up_label), fov=mask(up_fov), label2=mask(up_label2))


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    return f"{v:.4f}"


def metrics_table(s: dict, threshold: float, a_priori: float, mean_uncertainty: float
                  ) -> list[dict]:
    which = "a-priori" if threshold == a_priori else "chosen"
    rows = [
        ("F1 at threshold", s["f1"], f"Dice/F1 of the mask at {threshold:.3f} ({which})"),
        ("Precision at threshold", s["precision"], "share of marked pixels that are vessel"),
        ("Recall at threshold", s["recall"], "share of vessel pixels that are marked"),
        ("Accuracy at threshold", s["accuracy"], "share of FOV pixels classified correctly"),
        ("Max F1 (oracle)", s["max_f1"],
         f"best F1 over all thresholds (at {s['max_f1_threshold']:.3f}); the paper's number, "
         "optimistic"),
        ("AUC-ROC", s["auc_roc"], "ranking quality of the probability map"),
        ("Average precision", s["average_precision"], "area under the PR curve"),
        ("ECE", s["ece"], "calibration error of the probabilities (0 = perfect)"),
        ("Sample precision (mean)", s["sample_precision"], "individual samples, averaged"),
        ("Sample recall (mean)", s["sample_recall"], "individual samples, averaged"),
        ("Sample F1 (mean)", s["sample_f1"], "individual samples, averaged"),
        ("Mean uncertainty", mean_uncertainty,
         "sample std averaged inside the FOV, at the analysis scale (as vesselflow segment)"),
    ]
    if s["human"]:
        h = s["human"]
        rows += [("2nd observer F1", h["f1"], "a second person's tracing vs the reference"),
                 ("2nd observer precision", h["precision"], ""),
                 ("2nd observer recall", h["recall"], "")]
    return [{"metric": m, "value": _fmt(v), "meaning": d} for m, v, d in rows]


def _scatter_limits(s: dict) -> tuple[float, float]:
    values = [0.4]
    if s["sample_points"] is not None:
        values.append(float(np.min(s["sample_points"])))
    if s["human"]:
        values += [s["human"]["precision"], s["human"]["recall"]]
    lo = max(0.0, math.floor(min(values) * 10) / 10 - 0.05 * (min(values) < 0.4))
    return lo, 1.0


def body() -> None:
    st.title("Evaluate against a manual tracing")
    st.caption("Scores the vessel probability map inside the field of view with the code of "
               "`vesselflow evaluate`: the a-priori threshold stored with the model, the "
               "oracle max-F1 threshold, and every sample on its own.")
    _, loaded = models.model_picker()
    params = segmenting.sampling_controls()
    case = choose_case()
    if case is None:
        return
    if case.label is None:
        st.info("This case has no reference tracing.", icon=":material/info:")
        return
    for note in case.notes:
        st.info(note, icon=":material/info:")

    bar_slot = st.empty()
    result = segmenting.segment(loaded, case, params, keep=params.n, fov=case.fov,
                                bar_slot=bar_slot, label=f"Sampling {case.name}")

    default = threshold_for(loaded, result.n)  # the model's, chosen at this sample count
    threshold = st.slider(
        "Threshold (vessel probability)", 0.0, 1.0, float(default), 0.01,
        format="%.3f",
        key=f"eval_threshold:{loaded.sha256[:16]}:{result.n}",
        help=f"Default {default:.3f}: the model's a-priori threshold, chosen on "
             "DRIVE's validation images. Changing it here after seeing the reference makes "
             "the scores optimistic.")
    summary = segmenting.summary(loaded, result, threshold)
    maps = result.at_original_size(threshold)  # scored at the image's size, as evaluate does
    mean, fov, samples = maps.mean, maps.fov, maps.samples
    s = score_case(mean, case.label, fov, threshold, samples=samples, label2=case.label2)

    m = st.columns(4)
    m[0].metric("F1 at threshold", _fmt(s["f1"]), help=f"Threshold {threshold:.3f}")
    m[1].metric("Max F1 (oracle)", _fmt(s["max_f1"]),
                help=f"At threshold {s['max_f1_threshold']:.3f}, chosen on this image")
    m[2].metric("AUC-ROC", _fmt(s["auc_roc"]))
    if s["human"]:
        m[3].metric("2nd observer F1", _fmt(s["human"]["f1"]),
                    help="A second person's tracing scored against the reference")
    else:
        m[3].metric("ECE", _fmt(s["ece"]), help="Expected calibration error (15 bins)")

    f1, f2 = st.columns(2)
    curve = {**s["curve"], "max_f1": s["max_f1"]}
    with f1:
        st.pyplot(pr_curve_figure({loaded.name: curve}, s["human"],
                                  marks={f"threshold {threshold:.3f}": (s["recall"],
                                                                        s["precision"])}))
        st.caption("Precision-recall curve of the probability map inside the FOV; grey "
                   "lines: equal F1. Dot: max F1; cross: the threshold above; star: second "
                   "observer.")
    with f2:
        human_pts = (np.array([[s["human"]["precision"], s["human"]["recall"]]])
                     if s["human"] else None)
        st.pyplot(sample_scatter_figure({loaded.name: s["sample_points"]}, human_pts,
                                        lims=_scatter_limits(s), marker_size=18, alpha=0.7))
        st.caption(f"Each dot is one of the {len(samples)} samples scored on its own against "
                   "the reference: the spread shows how much plausible vessel maps differ.")

    st.subheader("Maps")
    pred = maps.mask
    legend = ", ".join(f"{k}: {v}" for k, v in zip(
        AGREEMENT_COLORS, ("white", "red", "blue", "black", "grey"), strict=True))
    cols = st.columns(4)
    for col, picture, caption in zip(cols, (
            to_uint8(case.image), gray(mean), agreement_map(pred, case.label, fov),
            gray(case.label)), (
            f"Image: {case.name}", f"Vessel probability (mean of {result.n} samples)",
            f"Agreement at threshold {threshold:.3f} ({legend})", "Reference tracing"),
            strict=True):
        col.image(thumbnail(picture, config.DISPLAY_SIDE), caption=caption, width="stretch",
                  alt=caption.split(" (")[0].split(":")[0])

    st.subheader("Metrics")
    table = metrics_table(s, threshold, default, summary.mean_uncertainty)
    st.dataframe(table, hide_index=True, width="stretch", height=36 * (len(table) + 1) + 2)
    with st.expander("Calibration (reliability diagram)"):
        st.pyplot(reliability_diagram(s["reliability"], s["ece"]), width="content")
        st.caption("Bars at the diagonal: probabilities mean what they say.")

    scores = {k: v for k, v in s.items() if isinstance(v, int | float | dict) and k not in (
        "curve", "reliability")}
    scores.update(model={"name": loaded.name, "sha256": loaded.sha256,
                         "a_priori_threshold": default},
                  image={"name": case.name, "id": segmenting.image_id(case),
                         "sha256": case.key},
                  parameters={"samples": params.n, "temperature": params.temperature,
                              "seed": params.seed, "match_drive_scale": params.rescale},
                  fov="given" if case.fov is not None else "detected",
                  summary=summary.to_dict())
    st.download_button("Metrics (JSON)", json.dumps(scores, indent=2, default=float) + "\n",
                       f"{segmenting.image_id(case)}_metrics.json", "application/json",
                       on_click="ignore", icon=":material/download:", key="dl_metrics")


guard.run_page(body)
