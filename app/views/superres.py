"""Super-resolution: not available yet (the module exists, no trained weights are shipped)."""

from __future__ import annotations

import common
import streamlit as st


def body() -> None:
    st.title("Super-resolution (2×)")
    st.info("**Not available yet: no trained super-resolution model is shipped.** The "
            "models and their tests exist in `vesselflow.sr`; this page will open once "
            "trained weights are released with vesselflow.", icon=":material/hourglass_top:")
    st.subheader("What this page will do")
    st.markdown(
        "- **Upload** a photograph (any RGB image; fundus photographs included).\n"
        "- **Sample** several 2× enlargements from the conditional flow (`SRFlow`) at a chosen "
        "**temperature**: lower temperatures give smoother, more conservative detail, 1.0 "
        "the full learned variety.\n"
        "- **Compare** side by side with **bicubic** interpolation (MATLAB-compatible "
        "`imresize`) and with the factored baseline's mean (`SRFactored`).\n"
        "- **Measure** the spread between samples as a per-pixel uncertainty map, and report "
        "PSNR/SSIM on the luminance channel when a high-resolution reference is uploaded.\n"
        "- **Download** the samples and bicubic result as PNG, with a `run.json` for "
        "reproducibility.")
    st.caption("As for the vessel maps: every run stays on this computer, and the samples are "
               "plausible detail, not measured detail — they must never be read as findings.")


common.run_page(body)
