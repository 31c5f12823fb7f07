"""``vesselflow app``: start the installed Streamlit app on this computer only.

The server settings (loopback address, headless, no usage statistics, upload limit, error
details hidden, theme) are read from ``vesselflow/app/streamlit.toml``, shipped in the
package, and passed to Streamlit as command-line flags, so they hold wherever it is started.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
from pathlib import Path

APP_DIR = Path(__file__).resolve().parents[1] / "app"
SETTINGS = APP_DIR / "streamlit.toml"


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("app", help="start the web app (local only)",
                       description="Start the Streamlit app on this computer: it listens on "
                       "127.0.0.1 only, opens no browser and sends no usage statistics. "
                       "Open the printed URL in a browser; Ctrl-C stops it.")
    p.add_argument("--port", type=int, default=8501, help="port to listen on (default 8501)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this computer only)")
    p.set_defaults(func=_cmd_app)


def streamlit_command(port: int, host: str = "127.0.0.1") -> list[str]:
    """The ``python -m streamlit run`` command line with the shipped settings as flags."""
    flags: dict[str, object] = {}
    for section, values in tomllib.loads(SETTINGS.read_text()).items():
        for key, value in values.items():
            flags[f"{section}.{key}"] = value
    flags.update({"server.address": host, "server.port": port, "server.headless": True,
                  "browser.gatherUsageStats": False})
    cmd = [sys.executable, "-m", "streamlit", "run", str(APP_DIR / "main.py")]
    for key, value in flags.items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        cmd += [f"--{key}", text]
    return cmd


def _cmd_app(a: argparse.Namespace) -> int:
    if not 0 < a.port < 65536:
        print(f"vesselflow app: error: --port must be in 1..65535, got {a.port}",
              file=sys.stderr)
        return 2
    import importlib.util

    if importlib.util.find_spec("streamlit") is None:  # the web app is the [app] extra
        print("vesselflow app: error: the web app needs Streamlit, which is not installed: "
              "pip install 'vesselflow[app]'", file=sys.stderr)
        return 2
    cmd = streamlit_command(a.port, a.host)
    print(f"vesselflow app: starting on http://{a.host}:{a.port} (Ctrl-C stops it)", flush=True)
    if os.name == "posix":
        os.execv(cmd[0], cmd)  # Streamlit becomes this process: signals reach it directly
    return subprocess.call(cmd)
