"""Segment: upload fundus photographs (or open an example), see the vessel maps, judge them."""

from __future__ import annotations

import streamlit as st

from vesselflow.app import config, guard, inputs, models, segmenting
from vesselflow.app.segmenting import SamplingParams, Segmentation
from vesselflow.io.encoders import zip_bytes
from vesselflow.io.errors import ImageReadError
from vesselflow.io.weights import LoadedModel
from vesselflow.vessel.analysis.summary import ImageSummary
from vesselflow.vessel.biomarker_table import display_table, report_csv
from vesselflow.vessel.biomarkers import um_note
from vesselflow.vessel.models import threshold_for
from vesselflow.vessel.visualize import colorize, gray, overlay, thumbnail, to_uint8

SHOWN_SAMPLES = 4
SOURCES = {
    "upload": "Upload images",
    "retina": "Example: fundus photograph",
    "synthetic": "Example: synthetic fundus",
}


def show(slot, picture, caption: str, alt: str) -> None:
    slot.image(thumbnail(picture, config.DISPLAY_SIDE), caption=caption, width="stretch",
               alt=alt)


def choose_inputs() -> list[inputs.InputImage]:
    """The images to work on, from the uploader or an example; bad files are reported."""
    source = st.radio("Image source", list(SOURCES), format_func=SOURCES.get, horizontal=True,
                      key="source", label_visibility="collapsed")
    if source != "upload":
        return [inputs.example_image(source)]
    files = st.file_uploader(
        "Fundus photographs", type=config.IMAGE_TYPES, accept_multiple_files=True,
        key="uploads",
        help="Colour fundus photographs: PNG, JPEG, TIFF, BMP, GIF, DICOM or NIfTI, up to "
             "50 MB each. Files are decoded in memory and never stored.")
    items = []
    for f in files or []:
        try:
            items.append(inputs.decode_upload(f.getvalue(), f.name))
        except ImageReadError as exc:
            st.error(f"**{f.name}** cannot be used: {exc.problem}.", icon=":material/error:")
    if not files:
        st.info("Upload one or more colour fundus photographs to segment their vessels, or "
                "open one of the examples above.", icon=":material/upload:")
    return items


def batch_section(items: list[inputs.InputImage], loaded: LoadedModel, params: SamplingParams,
                  threshold: float) -> None:
    """Segment every uploaded image and list which ones need expert review."""
    sig = (tuple(it.key for it in items), params, loaded.sha256)
    with st.expander(f"All {len(items)} images: segment and screen for review"):
        if st.button("Segment all images", icon=":material/play_arrow:", key="batch_run"):
            results = {}
            for i, it in enumerate(items, start=1):
                results[it.key] = segmenting.segment(
                    loaded, it, params, keep=params.n,
                    label=f"Image {i} of {len(items)} ({it.name})")
            st.session_state["batch"] = {"sig": sig, "results": results}
        batch = st.session_state.get("batch")
        if not batch or batch["sig"] != sig:
            st.caption("Runs the model on every uploaded image with the settings in the "
                       "sidebar and flags those whose map is expected to agree poorly with a "
                       "human grader.")
            return
        rows, summaries = [], {}
        for it in items:
            s = summaries[it.key] = segmenting.summary(loaded, batch["results"][it.key],
                                                       threshold)
            rows.append({"image": it.name, "size (px)": f"{it.image.shape[1]}×"
                         f"{it.image.shape[0]}", "vessel area (%)": round(
                             100 * s.vessel_density, 1),
                         "mean uncertainty": round(s.mean_uncertainty, 4),
                         "review": s.verdict.status,
                         "predicted F1": None if s.verdict.predicted_f1 is None
                         else round(s.verdict.predicted_f1, 2),
                         "reasons": s.verdict.codes.replace(";", ", ")})
        st.dataframe(rows, hide_index=True, width="stretch")
        st.download_button(
            "All results (zip)", segmenting.deferred(_batch_zip, loaded, items, batch["results"],
                                                     params, summaries),
            file_name="vesselflow_results.zip", mime="application/zip", on_click="ignore",
            icon=":material/folder_zip:", key="batch_zip")


def _batch_zip(loaded: LoadedModel, items: list[inputs.InputImage],
               results: dict[str, Segmentation], params: SamplingParams,
               summaries: dict[str, ImageSummary]) -> bytes:
    files = {}
    for i, it in enumerate(items, start=1):
        files.update(segmenting.result_files(
            loaded, it, results[it.key], params, summaries[it.key],
            prefix=f"{i:02d}_{segmenting.image_id(it)}/"))
    return zip_bytes(files)


def review_banner(summary: ImageSummary) -> None:
    """``segment``'s verdict for this image: its expected agreement with a human grader, and
    ok, review (with the reasons in plain words) or not assessed."""
    v = summary.verdict
    expected = v.expected()
    lines = "\n".join(f"- {m}" for m in v.sentences())
    if v.status == "review":
        st.warning(f"**Review this map before using it.** {expected[:1].upper()}{expected[1:]}"
                   f"{'.' if expected else ''}\n{lines}", icon=":material/flag:")
    elif v.status == "ok":
        st.success(f"No reason for review: {expected}." + (f"\n{lines}" if lines else ""),
                   icon=":material/check_circle:")
    else:
        st.info(f"**Quality not assessed.**\n{lines}", icon=":material/info:")
    st.caption("The expected agreement (F1 against a human grader's tracing, with a 90% "
               "interval) is predicted from the map's own evidence: how much the samples agree "
               "with each other and with the mask, the map's vessel density and fragmentation, "
               "and the photo's noise, blur and clipping relative to its own contrast "
               "(vesselflow.vessel.review). The photo's colour is not used. The prediction was "
               "calibrated on DRIVE's training images, clean and degraded; maps predicted "
               "below the calibrated threshold are sent for review.")


def measurements(loaded: LoadedModel, item: inputs.InputImage, result: Segmentation,
                 summary: ImageSummary, params: SamplingParams) -> None:
    """Vessel biomarkers of the mask, with the spread over the samples, and a CSV download."""
    st.subheader("Vessel measurements")
    on = st.toggle("Measure the vessels", key="biomarkers",
                   help="Density, length, branching, fractal dimension, tortuosity and "
                        "calibre: an estimate of what a grader's tracing would "
                        "measure with a calibrated 90% prediction interval, the model's own "
                        "value, and the spread over the samples. About 2 s for 16 samples.")
    if not on:
        st.caption("Vessel biomarkers with calibrated intervals (off: turn on above).")
        return
    um = st.number_input("Pixel size (µm per pixel of the uploaded image; 0 = estimate)", 0.0,
                         1000.0, 0.0, 0.1, key="pixel_size",
                         help="Used for the calibre in µm and the per-mm² densities. 0 "
                              "estimates it from the field of view, assuming a 45° field "
                              "spans about 13 mm of retina across its diameter.")
    report = segmenting.biomarkers(loaded, item, result, summary, params, um or None)
    if report.note:
        st.warning(f"{report.note[0].upper()}{report.note[1:]}.", icon=":material/warning:")
    st.dataframe(display_table(report), hide_index=True, width="stretch")
    st.caption(f"Estimate = what a grader's tracing would measure, from the model value on "
               f"the mask (threshold {summary.threshold:.3f}) corrected for its bias; "
               f"{report.calibration}. Model uncertainty = 2.5–97.5 % of the values of the "
               f"{report.n_samples} samples (narrower than how tracings differ). Pixel size "
               f"{report.scale.input_um_per_px:.2f} µm per uploaded pixel; µm values: "
               f"{um_note(report.scale)}. Measured at the analysis scale (×"
               f"{report.scale.factor:.2f}); calibre in px is in the uploaded image's pixels.")
    st.download_button("Measurements CSV", segmenting.deferred(report_csv, report, item.name),
                       f"{segmenting.image_id(item)}_biomarkers.csv", "text/csv",
                       on_click="ignore", key="dl_biomarkers", icon=":material/download:")


def body() -> None:
    st.title("Segment retinal vessels")
    st.caption("The model draws many complete, plausible vessel maps for an image. Their mean "
               "is the **vessel probability**; where they disagree, the **uncertainty** is "
               "high.")
    _, loaded = models.model_picker()
    params = segmenting.sampling_controls()
    items = choose_inputs()
    if not items:
        return
    item = items[0]
    if len(items) > 1:
        names = [it.name for it in items]
        pick = st.selectbox("Image to view", range(len(items)), format_func=names.__getitem__,
                            key="view")
        item = items[pick]
    for note in item.notes:
        st.info(note, icon=":material/info:")

    h, w = item.image.shape[:2]
    bar_slot = st.empty()
    c_in, c_mean, c_unc = st.columns(3)
    show(c_in, to_uint8(item.image), f"Input: {item.name} ({w}×{h} px)", "input image")
    mean_slot, unc_slot = c_mean.empty(), c_unc.empty()
    unc_slot.caption("The uncertainty map appears when sampling ends.")
    keep = params.n  # every sample is kept: the vessel measurements use them all
    result = segmenting.segment(loaded, item, params, keep=keep, bar_slot=bar_slot,
                                map_slot=mean_slot, label=f"Segmenting {item.name}")
    show(mean_slot, gray(result.mean),
         f"Vessel probability: mean of {result.n} samples (black 0, white 1)",
         "vessel probability map")
    show(unc_slot, colorize(result.std, "magma", 0.0, 0.5),
         "Uncertainty: per-pixel std of the samples (black 0 = all agree, yellow 0.5 = split "
         "50/50)", "uncertainty map")

    st.subheader("Vessel mask")
    default = threshold_for(loaded, result.n)  # the model's, chosen at this sample count
    threshold = st.slider(
        "Threshold (vessel probability)", 0.0, 1.0, float(default), 0.01,
        format="%.3f",
        key=f"threshold:{loaded.sha256[:16]}:{result.n}",
        help=f"A pixel is marked as vessel when its probability is at least this value. The "
             f"default, {default:.3f}, is the model's a-priori threshold, chosen on "
             "DRIVE's validation images (never on test images).")
    summary = segmenting.summary(loaded, result, threshold)  # every number shown: computed once
    review_banner(summary)
    mask = summary.mask
    c_mask, c_over, c_facts = st.columns(3)
    show(c_mask, gray(mask), f"Vessel mask at threshold {threshold:.3f} (white = vessel)",
         "binary vessel mask")
    show(c_over, overlay(result.image, mask), "Mask (green) over the image", "overlay")
    with c_facts:
        st.metric("Vessel area", f"{100 * summary.vessel_density:.1f} %", border=True,
                  help="Share of the field of view marked as vessel at this threshold "
                       "(DRIVE's manual tracings: about 12 %).")
        st.metric("Mean uncertainty", f"{summary.mean_uncertainty:.3f}", border=True,
                  help="Sample std averaged inside the field of view, at the analysis scale "
                       "(as metrics.csv of vesselflow segment). The review above uses the "
                       "samples' agreement, which does not depend on the number of samples.")
        st.metric("Samples", f"{result.n}", f"in {result.seconds:.1f} s", delta_color="off",
                  delta_arrow="off", border=True,
                  help=f"Temperature {params.temperature:g}, seed {params.seed}.")
        scale = ("as uploaded" if summary.analysis_scale is None
                 else f"{summary.analysis_scale:.2f}")
        st.metric("Analysis scale", scale,
                  f"resized ×{summary.scale_factor:.2f}; FOV {summary.fov_diameter:.0f} px "
                  f"wide ({summary.fov_source})",
                  delta_color="off", delta_arrow="off", border=True,
                  help="1 = the field of view at DRIVE's diameter (538 px for a 45 degree "
                       "camera); larger scales use more of a high-resolution photo's pixels. "
                       "Downloads are at the original size. "
                       + (summary.scale_note or ""))

    if result.samples is not None and len(result.samples):
        st.subheader("Individual samples")
        st.caption("Each sample is one complete vessel map the model considers plausible for "
                   "this image; the probability map is their average.")
        shown = result.samples[:SHOWN_SAMPLES]
        for i, (col, s) in enumerate(zip(st.columns(len(shown)), shown, strict=True), start=1):
            show(col, gray(s), f"Sample {i}", f"sample {i}")

    measurements(loaded, item, result, summary, params)

    st.subheader("Download")
    st.caption("At the uploaded image's size, the same files as `vesselflow segment` "
               "writes. The zip adds the overlay, the field of view, the samples and "
               "`run.json` (model, sha256, settings, versions).")
    name = segmenting.image_id(item)
    args = (loaded, item, result, params, summary)
    d = st.columns(5)
    for col, (label, suffix, mime, key, tip) in zip(d, (
            ("Mask PNG", "_mask.png", "image/png", "dl_mask", "8-bit PNG: 255 = vessel."),
            ("Probability PNG", "_prob.png", "image/png", "dl_mean",
             "8-bit grayscale: value / 255 = vessel probability."),
            ("Probability TIFF", "_prob.tif", "image/tiff", "dl_tiff",
             "32-bit float TIFF, probabilities in [0, 1] (ImageJ/Fiji, Python)."),
            ("Uncertainty PNG", "_uncertainty.png", "image/png", "dl_unc",
             "8-bit grayscale: value / 510 = sample std (0 to 0.5).")), strict=False):
        col.download_button(label, segmenting.deferred(segmenting.result_file, *args, suffix),
                            f"{name}{suffix}", mime, on_click="ignore", key=key,
                            icon=":material/download:", help=tip)
    d[4].download_button("All (zip)", segmenting.deferred(segmenting.results_zip, *args),
                         f"{name}_vesselflow.zip", "application/zip", on_click="ignore",
                         key="dl_zip", type="primary", icon=":material/folder_zip:")

    if len(items) > 1:
        batch_section(items, loaded, params, threshold)

    with st.expander("How to read these results"):
        st.markdown(
            "- **Vessel probability**: for every pixel, the fraction of samples that mark it "
            "as vessel.\n"
            "- **Uncertainty**: the standard deviation of the samples at each pixel, "
            "sqrt(p(1 − p)). Bright areas are where plausible maps disagree: vessel borders, "
            "thin or faint vessels, lesions, blur.\n"
            "- **Vessel mask**: the probability map cut at the threshold, inside the field of "
            "view (the bright disc of the photograph, detected automatically).\n"
            "- **Review**: shown when the map's predicted agreement with a human grader "
            "(from the samples' agreement, the map's density and fragmentation and the "
            "photo's noise, blur and clipping) is below the threshold calibrated for this "
            "model, or when no fundus field of view was found; it is about the map's "
            "quality, not a finding about the patient.")


guard.run_page(body)
