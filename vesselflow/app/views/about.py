"""About: the models (name, version, sha256, training data and results) and intended use."""

from __future__ import annotations

import json

import streamlit as st

from vesselflow import __version__
from vesselflow.app import config, guard, models

INTENDED_USE = """
**Intended use.** vesselflow is a research tool for exploring retinal vessel segmentation
and its uncertainty on colour fundus photographs. It shows several plausible vessel maps per
image, their mean (a vessel probability) and where they disagree.

**Not intended for** diagnosis, screening, treatment decisions or any other clinical use. It is
not a medical device and has not been clinically validated.

**Training data.** The shipped models were trained on the 20 training images of the public
DRIVE dataset (Staal et al., 2004: 565×584 px photographs from a Canon CR5 non-mydriatic camera
with a 45° field of view, diabetic-retinopathy screening in the Netherlands), 16 for training
and 4 for validation. The a-priori threshold was chosen on those 4 validation images; the 20
DRIVE test images were never used for any choice.

**Known limitations.** 20 training images from one camera and one population: performance on
other cameras, resolutions (images are rescaled to DRIVE's field-of-view diameter), ethnic
groups, children, or eyes with advanced pathology is unknown. The uncertainty map shows where
plausible maps disagree; low uncertainty does not guarantee a correct map.
"""


def _metric(meta: dict, *keys: str) -> float | None:
    node = meta
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            return None
        node = node[k]
    return node if isinstance(node, int | float) else None


def model_card(label: str, source: str) -> None:
    problem = models.model_problem(source)
    with st.container(border=True):
        st.subheader(label)
        if problem:
            st.warning(problem, icon=":material/warning:")
            return
        loaded = models.get_model(source)
        meta = loaded.meta
        c = st.columns(4)
        c[0].metric("A-priori threshold", f"{loaded.threshold:.3f}",
                    help="Chosen on DRIVE's validation images")
        f1 = _metric(meta, "val_f1_at_threshold")
        c[1].metric("Validation F1", "–" if f1 is None else f"{f1:.3f}",
                    help="F1 at the a-priori threshold on DRIVE's 4 validation images")
        bpd = _metric(meta, "val", "bpd")
        c[2].metric("Validation bpd", "–" if bpd is None else f"{bpd:.4f}",
                    help="Bits per pixel of the manual tracings under the model (lower is "
                         "better)")
        c[3].metric("Review calibration", _calibration_value(loaded),
                    help="DRIVE training maps (clean and degraded, harmless to destroying) "
                         "on which the review's predicted F1 was fitted, and the predicted F1 "
                         "below which a map is sent for review")
        st.markdown(
            f"- **Name:** `{loaded.name}` — {_kind(loaded.config)}\n"
            f"- **Weights sha256:** `{loaded.sha256}`\n"
            f"- **Location:** `{loaded.path}`\n"
            f"- **Training step of the kept checkpoint:** {meta.get('step', '–')}"
            f"{_test_line(meta)}")
        with st.expander("Architecture and full metadata"):
            st.json({"config": loaded.config.to_dict(), "meta": meta}, expanded=False)


def _calibration_value(loaded) -> str:
    """The model's review calibration in a few words, or why there is none."""
    from vesselflow.vessel.review.verdict import ReviewCalibration

    try:
        calibration = ReviewCalibration.load(loaded.path, loaded.sha256)
    except ValueError:
        return "unreadable"
    if calibration is None:
        return "none"
    if calibration.stale:
        return "stale"
    maps = (calibration.meta.get("calibration") or {}).get("n_maps")
    return f"{maps} maps, review < {calibration.threshold:.2f}"


def _kind(config) -> str:
    if config.kind == "cnf":
        return "conditional normalizing flow (`cnf`)"
    if getattr(config, "likelihood", "weighted") == "bernoulli":
        return "factored per-pixel baseline, plain Bernoulli likelihood (`factored`)"
    return "factored per-pixel baseline, weighted Bernoulli likelihood (`factored`)"


def _ci(t: dict, key: str) -> str:
    ci = (t.get("ci95") or {}).get(key)
    return f" (95% CI {ci[0]:.4f}–{ci[1]:.4f})" if isinstance(ci, list) else ""


def _test_line(meta: dict) -> str:
    """The DRIVE test results stored with shipped weights, as one Markdown list item.

    bpd per image pixel is the headline; per FOV pixel next to it; the canvas figure only
    says what it is (the paper does not state that it divided by its 1024² canvas)."""
    t = meta.get("test_metrics")
    if not isinstance(t, dict) or _metric(t, "max_f1") is None:
        return ""
    line = (f"\n- **DRIVE test** ({t.get('n_images')} images, {t.get('n_samples')} samples, "
            f"first observer, 95% bootstrap intervals over images):")
    if _metric(t, "bpd") is not None:
        line += f" {t['bpd']:.4f}{_ci(t, 'bpd')} bits per image pixel"
    if _metric(t, "bpd_fov") is not None:
        line += f", {t['bpd_fov']:.4f} per FOV pixel"
    line += f"; max F1 {t['max_f1']:.4f}{_ci(t, 'max_f1')}"
    if _metric(t, "f1") is not None:
        line += f", F1 at the a-priori threshold {t['f1']:.4f}{_ci(t, 'f1')}"
    if _metric(t, "bpd_canvas") is not None:
        line += (f". {t['bpd_canvas']:.4f} bits per pixel if the paper divided by its "
                 f"{t.get('canvas')}² canvas, which it does not state")
    return line


def sr_model_card(label: str, source: str) -> None:
    problem = models.sr_model_problem(source)
    with st.container(border=True):
        st.subheader(label)
        if problem:
            st.warning(problem, icon=":material/warning:")
            return
        loaded = models.get_sr_model(source)
        meta = loaded.meta
        sets = meta.get("benchmark_metrics") or {}
        c = st.columns(max(1, len(sets)) + 1)
        bpd = _metric(meta, "val", "bpd")
        c[0].metric("Validation bpd", "–" if bpd is None else f"{bpd:.3f}",
                    help="Bits per sub-pixel of 8 held-out BSD200 crops given their 2x "
                         "downscale (lower is better)")
        for col, (name, m) in zip(c[1:], sets.items(), strict=False):
            t0 = m.get("temperatures", {}).get("0")
            if t0:
                col.metric(f"{name} Y-PSNR (T=0)", f"{t0['psnr_y']:.2f} dB",
                           delta=f"{t0['psnr_y'] - m['bicubic']['psnr_y']:+.2f} dB vs bicubic")
        kind = ("conditional normalizing flow" if loaded.config.kind == "cnf"
                else "factored logistic-mixture baseline")
        st.markdown(f"- **Name:** `{loaded.name}` — x{loaded.config.scale} super-resolution, "
                    f"{kind} (`{loaded.config.kind}`)\n"
                    f"- **Weights sha256:** `{loaded.sha256}`\n"
                    f"- **Trained on** T91 + BSD200 patches (8 BSD200 images held out)")
        with st.expander("Architecture and full metadata"):
            st.json({"config": loaded.config.to_dict(), "meta": meta}, expanded=False)


def body() -> None:
    st.title("About vesselflow")
    st.caption(f"vesselflow {__version__}: retinal vessel segmentation with conditional "
               "normalizing flows, with uncertainty from many samples per image.")
    st.markdown(INTENDED_USE)
    st.header("Models")
    for label, source in config.model_choices().items():
        model_card(label, source)
    st.caption(f"Other models: set `{config.MODELS_ENV}` to a JSON object of display name → "
               'model folder before starting the app, e.g. `{"My CNF": "runs/cnf-drive"}`.')
    st.header("Super-resolution models")
    for label, source in config.sr_model_choices().items():
        sr_model_card(label, source)
    st.header("Privacy")
    st.markdown("The app listens on this computer only (127.0.0.1). Uploaded images are "
                "decoded in memory, never written to disk and never sent anywhere; usage "
                "statistics are off. Closing the browser tab and stopping the app discards "
                "everything.")
    with st.expander("Software versions"):
        from vesselflow.runtime import environment

        env = environment()
        env["streamlit"] = st.__version__
        st.code(json.dumps(env, indent=2), language="json")


guard.run_page(body)
