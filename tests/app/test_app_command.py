"""``vesselflow app``: the installed Streamlit app starts on localhost and answers its health
check; the shipped settings become Streamlit flags (local only, no usage statistics). And the
checkout's ``app/streamlit_app.py`` serves the same app with the same settings."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import tomllib
import urllib.request
from pathlib import Path

import pytest

from vesselflow.cli.app import streamlit_command

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_command_is_local_only_without_usage_statistics() -> None:
    cmd = streamlit_command(8765)
    flags = dict(zip(cmd[5::2], cmd[6::2], strict=True))
    assert cmd[1:4] == ["-m", "streamlit", "run"] and cmd[4].endswith("vesselflow/app/main.py")
    assert flags["--server.address"] == "127.0.0.1" and flags["--server.port"] == "8765"
    assert flags["--server.headless"] == "true"
    assert flags["--browser.gatherUsageStats"] == "false"
    assert flags["--client.showErrorDetails"] == "none"  # from the shipped streamlit.toml
    assert Path(cmd[4]).is_file()


@pytest.mark.slow
def test_vesselflow_app_serves_the_health_check(tmp_path: Path) -> None:
    port = _free_port()
    env = {**os.environ, "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    log = open(tmp_path / "app.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "vesselflow", "app", "--port", str(port)],
                            cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline, body = time.monotonic() + 90, ""
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health",
                                            timeout=2) as r:
                    body = r.read().decode()
                    break
            except OSError:
                time.sleep(0.5)
        assert body == "ok", (tmp_path / "app.log").read_text()[-2000:]
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    assert proc.returncode is not None


def test_streamlit_app_file_serves_the_packaged_app_on_every_rerun(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # app/streamlit_app.py, the file `streamlit run` and hosting expect, runs the packaged app:
    # pages found from there, and the app drawn again on a rerun (a plain import would not).
    # The shipped models: a missing one stops the page, which would hide a cached import.
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("VESSELFLOW_DRIVE", str(tmp_path / "no-drive-here"))
    at = AppTest.from_file(str(REPO / "app" / "streamlit_app.py"), default_timeout=90)
    for _ in range(2):
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert any("Research use only" in w.value for w in at.info)
        assert at.title and at.title[0].value.startswith("Segment")


def test_streamlit_app_file_gets_the_shipped_settings() -> None:
    # `streamlit run app/streamlit_app.py` reads app/.streamlit/config.toml (Streamlit's
    # script-level config): it must say what the packaged settings say.
    copy = tomllib.loads((REPO / "app" / ".streamlit" / "config.toml").read_text())
    assert copy == tomllib.loads((REPO / "vesselflow" / "app" / "streamlit.toml").read_text())
