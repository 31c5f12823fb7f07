"""vesselflow's Streamlit app (``vesselflow app``): pages in ``views/``, calling the library."""
