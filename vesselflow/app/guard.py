"""The pages' error guard: a friendly message for the user, details to the console."""

from __future__ import annotations

import logging
from collections.abc import Callable

import streamlit as st

from vesselflow.io.errors import ImageReadError

LOG = logging.getLogger("vesselflow.app")


class AppError(Exception):
    """A problem with a friendly message for the user (shown as-is, no traceback)."""


def run_page(body: Callable[[], None]) -> None:
    """Run a page body; any error becomes a short ``st.error`` (details go to the log).

    Streamlit's own control flow (``st.stop``, ``st.rerun``, a widget change interrupting a
    run) derives from BaseException and passes through untouched.
    """
    try:
        body()
    except (AppError, ImageReadError) as exc:
        st.error(str(exc), icon=":material/error:")
    except Exception as exc:
        LOG.exception("unexpected error on a vesselflow app page")
        st.error(f"Something went wrong ({type(exc).__name__}: {_short(exc)}). The details "
                 "were written to the console where the app was started. Try another image "
                 "or other settings; if it persists, please report it.", icon=":material/error:")


def _short(exc: BaseException, limit: int = 200) -> str:
    text = " ".join(str(exc).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
