"""vesselflow's web app: ``vesselflow app`` (``make app``).

The entry file only configures the page, shows the research-use notice on every page and
routes; the pages live in ``views/`` and call the ``vesselflow`` library. (Not
``pages/``: Streamlit treats a folder of that name as old-style automatic pages, so
opening or reloading a page's URL directly would bypass this file.)
"""

import streamlit as st

from vesselflow.app.config import RESEARCH_NOTICE

st.set_page_config(page_title="vesselflow · retinal vessels", page_icon=":material/visibility:",
                   layout="wide", initial_sidebar_state="expanded")

page = st.navigation([
    st.Page("views/segment.py", title="Segment", icon=":material/blur_on:", default=True),
    st.Page("views/evaluate.py", title="Evaluate", icon=":material/fact_check:"),
    st.Page("views/superres.py", title="Super-resolution", icon=":material/zoom_in:"),
    st.Page("views/about.py", title="About", icon=":material/info:"),
])
st.info(RESEARCH_NOTICE, icon=":material/science:")
st.sidebar.caption("vesselflow runs on this computer only: images stay in memory and nothing "
                   "is sent anywhere.")
page.run()
