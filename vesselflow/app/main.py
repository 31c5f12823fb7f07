"""vesselflow's web app: ``vesselflow app`` (``make app``), or ``streamlit run
app/streamlit_app.py`` from a checkout.

The entry file only configures the page, shows the research-use notice on every page and
routes; the pages live in ``views/`` and call the ``vesselflow`` library. (Not
``pages/``: Streamlit treats a folder of that name as old-style automatic pages, so
opening or reloading a page's URL directly would bypass this file.)
"""

from pathlib import Path

import streamlit as st

from vesselflow.app.config import RESEARCH_NOTICE

# Absolute: Streamlit resolves relative page paths against the script it was started with,
# which is app/streamlit_app.py when run through that.
VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="vesselflow · retinal vessels", page_icon=":material/visibility:",
                   layout="wide", initial_sidebar_state="expanded")

page = st.navigation([
    st.Page(VIEWS / "segment.py", title="Segment", icon=":material/blur_on:", default=True),
    st.Page(VIEWS / "evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    st.Page(VIEWS / "superres.py", title="Super-resolution", icon=":material/zoom_in:"),
    st.Page(VIEWS / "about.py", title="About", icon=":material/info:"),
])
st.info(RESEARCH_NOTICE, icon=":material/science:")
st.sidebar.caption("vesselflow runs on this computer only: images stay in memory and nothing "
                   "is sent anywhere.")
page.run()
