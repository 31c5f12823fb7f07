"""vesselflow's web app where Streamlit's tooling and hosting look for one:
``streamlit run app/streamlit_app.py`` from a checkout (with ``pip install -e '.[app]'``).

The app ships inside the package (``vesselflow/app/main.py`` and its pages, what ``vesselflow
app`` starts); this file only runs it, so both ways serve the same app. Streamlit reads this
folder's ``.streamlit/config.toml`` (its script-level config): the packaged
``vesselflow/app/streamlit.toml``, which ``vesselflow app`` passes as flags; a test keeps the
two equal. Not in the wheel: installed users run ``vesselflow app``.
"""

import runpy
from pathlib import Path

import vesselflow.app

# Run, not imported: Streamlit reruns this script on every interaction, and an imported module
# would run only on the first.
runpy.run_path(str(Path(vesselflow.app.__file__).with_name("main.py")), run_name="__main__")
