"""Super-resolution: enlarge an image 2×, see several plausible versions and where they differ."""

from __future__ import annotations

import numpy as np
import streamlit as st

from vesselflow.app import config, guard, inputs, models, segmenting, upscaling
from vesselflow.io.errors import ImageReadError
from vesselflow.vessel.visualize import colorize, thumbnail

SOURCES = {"upload": "Upload an image", "example": "Example image"}
MODES = {
    "upscale": "Upscale this image (2×)",
    "simulate": "Simulate: shrink it 2× first, then compare with the original",
}
CROPS = (0, 64, 128, 256, 512)
ZOOM_SIDE = 64  # output pixels in a detail crop
ZOOM = 4  # detail crops are enlarged this much by pixel repetition
CAVEAT = ("Samples are plausible detail, not measured detail: the model invents fine texture "
          "that fits the input. Never read it as information that was in the image.")


def show(slot, picture, caption: str, alt: str) -> None:
    slot.image(thumbnail(picture, config.DISPLAY_SIDE), caption=caption, width="stretch",
               alt=alt)


def nearest(picture: np.ndarray, k: int) -> np.ndarray:
    """Enlarge by repeating pixels (no smoothing): what the input really holds."""
    return np.repeat(np.repeat(picture, k, axis=0), k, axis=1)


def not_available(problems: dict[str, str | None]) -> None:
    st.warning("**Super-resolution is not available: no super-resolution model is "
               "installed.** The page opens as soon as one is.", icon=":material/hourglass_top:")
    for label, problem in problems.items():
        st.markdown(f"- *{label}*: {problem}")
    st.subheader("What this page does")
    st.markdown(
        "- **Upload** a photograph (any RGB image; fundus photographs included) or open an "
        "example.\n"
        "- **Enlarge** it 2×, or **simulate**: shrink it 2× first and compare the "
        "enlargement with the original (PSNR/SSIM on the luminance channel).\n"
        "- **Sample** several plausible enlargements at a chosen **temperature** and see "
        "where they differ as a per-pixel uncertainty map, next to **bicubic** interpolation "
        "and the model's temperature-0 point estimate.\n"
        "- **Download** the results as PNG with a `run.json` for reproducibility.")


def model_picker():
    """Sidebar model choice; None (with an explanation on the page) when none is installed."""
    choices = config.sr_model_choices()
    problems = {label: models.sr_model_problem(src) for label, src in choices.items()}
    available = [label for label, p in problems.items() if p is None]
    if not available:
        not_available(problems)
        return None
    label = st.sidebar.selectbox(
        "Model", available, key="sr_model",
        help="Conditional flow: draws whole, coherent enlargements. Factored baseline: every "
             "output pixel independent given the input (its temperature-0 output is the "
             "per-pixel mean).")
    missing = [lb for lb in choices if lb not in available]
    if missing:
        st.sidebar.caption("Not installed: " + ", ".join(missing))
    return models.get_sr_model(choices[label])


def controls() -> upscaling.SRParams:
    sb = st.sidebar
    temperature = sb.slider(
        "Temperature", 0.0, 1.0, 0.8, 0.05, key="sr_temperature",
        help="Spread of the random draws. 0 gives the point estimate (smooth, best PSNR); "
             "higher values give sharper, more varied samples with more invented detail. "
             "0.8 is the usual choice for flow-based super-resolution.")
    n = sb.slider("Samples", 1, 8, 4, 1, key="sr_samples",
                  help="Number of enlargements drawn at this temperature. Their spread is "
                       "the uncertainty map (needs at least 2).")
    with sb.expander("Advanced"):
        seed = st.number_input("Random seed", 0, 2**31 - 1, 0, 1, key="sr_seed",
                               help="Same image, settings and seed give the same samples.")
        crop = st.selectbox(
            "Region", CROPS, key="sr_crop",
            format_func=lambda c: f"Central {c}×{c} px crop" if c else "Whole image",
            help="Work on the centre of the image only: faster, and the way to use images "
                 "above the size limit.")
    return upscaling.SRParams(float(temperature), int(n), int(seed), int(crop))


def choose_input() -> inputs.InputImage | None:
    """The image to work on, from the uploader or an example; a bad file is reported."""
    source = st.radio("Image source", list(SOURCES), format_func=SOURCES.get, horizontal=True,
                      key="sr_source", label_visibility="collapsed")
    if source == "example":
        examples = config.sr_examples()
        keys = list(examples)
        key = st.selectbox("Example", keys, format_func=examples.get, key="sr_example",
                           index=keys.index("set5:butterfly") if "set5:butterfly" in keys
                           else 0)
        return inputs.sr_example_image(key)
    f = st.file_uploader(
        "Image", type=config.IMAGE_TYPES, key="sr_upload",
        help="Any RGB photograph: PNG, JPEG, TIFF, BMP, GIF, DICOM or NIfTI. Files are "
             "decoded in memory and never stored.")
    if f is None:
        st.info("Upload an image to enlarge it 2×, or open an example above.",
                icon=":material/upload:")
        return None
    try:
        return inputs.decode_sr_upload(f.getvalue(), f.name)
    except ImageReadError as exc:
        st.error(f"**{f.name}** cannot be used: {exc.problem}.", icon=":material/error:")
        return None


def uncertainty_panel(slot, result: upscaling.SRResult, params: upscaling.SRParams) -> None:
    if result.y_std is None:
        slot.caption("**Uncertainty**: draw two or more samples (sidebar) to see where they "
                     "differ.")
        return
    show(slot, colorize(result.y_std, "magma", 0.0, config.SR_STD_VMAX),
         f"Uncertainty: per-pixel std of the {params.n} samples' brightness (Y); black 0, "
         f"yellow ≥ {config.SR_STD_VMAX:g} grey levels", "uncertainty map")


def metrics_section(rows: list[dict]) -> None:
    st.subheader("Compared with the original")
    st.dataframe(rows, hide_index=True, width="stretch", column_config={
        "PSNR-Y (dB)": st.column_config.NumberColumn(format="%.2f"),
        "SSIM-Y": st.column_config.NumberColumn(format="%.4f")})
    st.caption("Standard super-resolution protocol: luminance Y (BT.601), 2 pixels cropped "
               "from every border; higher is better for both. Averaging (temperature 0, the "
               "mean of samples) scores higher than single samples even when it looks "
               "blurrier: PSNR rewards the safe average, not plausible texture.")


def zoom_section(panels: list[tuple[str, np.ndarray]]) -> None:
    h, w = panels[0][1].shape[:2]
    side = min(ZOOM_SIDE, h, w)
    with st.expander("Zoom in on a detail", icon=":material/zoom_in:"):
        c_x, c_y = st.columns(2)
        x = c_x.slider("Horizontal position (%)", 0, 100, 50, key="sr_zoom_x")
        y = c_y.slider("Vertical position (%)", 0, 100, 50, key="sr_zoom_y")
        top, left = round((h - side) * y / 100), round((w - side) * x / 100)
        for col, (name, picture) in zip(st.columns(len(panels)), panels, strict=True):
            crop = picture[top : top + side, left : left + side]
            show(col, nearest(crop, ZOOM), name, f"detail: {name.lower()}")
        st.caption(f"A {side}×{side} px detail of the 2× outputs at ({left}, {top}), each "
                   f"pixel shown as a {ZOOM}×{ZOOM} block.")


def body() -> None:
    st.title("Super-resolution (2×)")
    st.caption("The model enlarges an image 2× by drawing several plausible high-resolution "
               "versions of it. Where they differ, the **uncertainty** is high. " + CAVEAT)
    loaded = model_picker()
    if loaded is None:
        return
    params = controls()
    item = choose_input()
    if item is None:
        return
    for note in item.notes:
        st.info(note, icon=":material/info:")
    mode = st.radio("Mode", list(MODES), format_func=MODES.get, key="sr_mode", horizontal=True,
                    help="Upscale: enlarge the image itself (nothing to compare with). "
                         "Simulate: shrink it 2× with bicubic interpolation, enlarge that and "
                         "measure how close each method gets to the original.")
    case = upscaling.sr_case(item, mode, params.crop)
    result = upscaling.sr_run(loaded, case, params, st.empty())

    lh, lw = case.lr.shape[:2]
    oh, ow = result.point.shape[:2]
    simulate = case.hr is not None
    c_in, c_bic, c_ref = st.columns(3)
    show(c_in, nearest(case.lr, config.SR_SCALE),
         f"{'Half-size input' if simulate else 'Input'} ({lw}×{lh} px), pixels repeated 2×",
         "input image")
    show(c_bic, case.bicubic, f"Bicubic 2× ({ow}×{oh} px)", "bicubic enlargement")
    if simulate:
        show(c_ref, case.hr, f"Original ({ow}×{oh} px): the ground truth", "original image")
    else:
        c_ref.caption("**No original to compare with**: this enlargement goes beyond the "
                      "image's own resolution. Choose *Simulate* above to measure how close "
                      "the model gets on a shrunk copy.")
    c_point, c_sample, c_unc = st.columns(3)
    point_what = ("mixture mean of every pixel" if loaded.config.kind == "factored"
                  else "the flow's most probable latent")
    show(c_point, result.point, f"Model, temperature 0 ({point_what})", "point estimate")
    show(c_sample, result.samples[0], f"Sample 1 at temperature {params.temperature:g}",
         "sample 1")
    uncertainty_panel(c_unc, result, params)
    device = str(next(loaded.model.parameters()).device)
    st.caption(f"{loaded.name} ({loaded.config.kind}) on {device}: point estimate in "
               f"{result.seconds['point_estimate']:.1f} s, {params.n} sample(s) in "
               f"{result.seconds['samples']:.1f} s (times of the first run; results are "
               "reused while the image and settings stay the same).")

    metrics = upscaling.sr_metrics_cached(loaded, case, params, result)
    if metrics:
        metrics_section(metrics)

    st.subheader("Samples")
    st.caption(CAVEAT)
    pictures = [(f"Sample {i}", s) for i, s in enumerate(result.samples, start=1)]
    if params.n > 1:
        pictures.append((f"Mean of the {params.n} samples", result.mean_uint8))
    per_row = 3
    for start in range(0, len(pictures), per_row):
        cols = st.columns(per_row)
        for col, (name, picture) in zip(cols, pictures[start : start + per_row], strict=False):
            show(col, picture, name, name.lower())
    if params.temperature == 0:
        st.caption("At temperature 0 every sample is the point estimate.")

    panels = [("Input", nearest(case.lr, config.SR_SCALE)), ("Bicubic", case.bicubic),
              ("Temperature 0", result.point), ("Sample 1", result.samples[0])]
    if simulate:
        panels.append(("Original", case.hr))
    zoom_section(panels)

    st.subheader("Download")
    st.caption("The zip holds the point estimate, the bicubic enlargement, every sample, their "
               "mean, the uncertainty maps, the model's input and `run.json` (model, sha256, "
               "settings, sizes, metrics, versions).")
    name = inputs.stem(item.name)
    args = (loaded, item, case, params, result, metrics)
    d = st.columns(3)
    d[0].download_button("Temperature 0 PNG", segmenting.deferred(upscaling.point_png, result),
                         f"{name}_x2.png", "image/png", on_click="ignore", key="sr_dl_point",
                         icon=":material/download:",
                         help=f"The model's point estimate, {ow}×{oh} px.")
    d[1].download_button("Samples (zip)", segmenting.deferred(upscaling.sr_zip, *args),
                         f"{name}_x2_vesselflow.zip", "application/zip", on_click="ignore",
                         key="sr_dl_zip", type="primary", icon=":material/folder_zip:")
    d[2].download_button("run.json", segmenting.deferred(upscaling.sr_run_json, *args),
                         f"{name}_x2_run.json", "application/json", on_click="ignore",
                         key="sr_dl_json", icon=":material/data_object:",
                         help="How this result was made: model name and sha256, temperature, "
                              "seed, sizes.")

    with st.expander("How to read these results"):
        st.markdown(
            "- **Bicubic**: the classic smooth enlargement, no learning involved.\n"
            "- **Temperature 0**: the model's single best guess; sharper than bicubic where "
            "the input makes the detail clear, smooth where it does not.\n"
            "- **Samples**: complete enlargements the model considers plausible. At higher "
            "temperature they are sharper and more varied; the detail that differs between "
            "them is invented, not recovered.\n"
            "- **Uncertainty**: the standard deviation of the samples' brightness at each "
            "pixel. Bright areas (edges, texture) are where plausible enlargements disagree; "
            "dark areas are where the input fixes the result.\n"
            "- **Simulate** measures PSNR and SSIM against the original on a shrunk copy; "
            "real low-resolution photographs (blur, noise, JPEG) may differ from this "
            "bicubic shrinking, and the model then does less well.")


guard.run_page(body)
