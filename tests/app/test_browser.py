"""End to end in a real browser: the Streamlit app driven by Debian's Chromium.

Starts the app on a free localhost port, uploads a DRIVE test image on the Segment page, waits
for the vessel probability map, checks it is shown (and the research notice, and no error),
downloads the zip, and saves a screenshot under the test's output folder and, when
``VESSELFLOW_SCREENSHOT`` is set, to that path too (the README's screenshot).

The app runs on tiny untrained models (fast) unless ``VESSELFLOW_APP_REAL=1`` and the shipped
weights are installed. Skips when /usr/bin/chromium (``apt-get install chromium``), Playwright
or the DRIVE data are missing.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import data_dir as _data_dir

from vesselflow.vessel.outputs import OUTPUT_SUFFIXES

pytestmark = pytest.mark.browser

REPO = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1400, "height": 2700}  # tall: Streamlit scrolls inside its own container




def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _use_real_models() -> bool:
    from vesselflow.io.weights import WEIGHTS_DIR
    from vesselflow.vessel.models import SHIPPED

    return os.environ.get("VESSELFLOW_APP_REAL") == "1" and all(
        (WEIGHTS_DIR / name / "model.safetensors").exists() for name in SHIPPED)


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory):
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y "
                    "chromium); .ci/run does this in CI")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    folder = tmp_path_factory.mktemp("browser_app")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none"}
    if not _use_real_models():
        import torch

        from vesselflow.vessel.models import VesselConfig, build_model, save_model

        torch.manual_seed(0)
        model = build_model(VesselConfig(kind="cnf", width=4, steps=1, hidden=(4, 4),
                                         deq_steps=1, deq_hidden=4, deq_width=4))
        save_model(model, folder / "tiny-cnf", meta={"threshold": 0.5})
        env["VESSELFLOW_APP_MODELS"] = json.dumps({"Tiny CNF (test)": str(folder / "tiny-cnf")})
    port = _free_port()
    log = open(folder / "streamlit.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "vesselflow", "app", "--port", str(port)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail("streamlit did not start:\n" + (folder / "streamlit.log").read_text())
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def test_segment_page_on_a_drive_image(app_url: str, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    image = _data_dir() / "DRIVE" / "test" / "images" / "01_test.tif"
    if not image.exists():
        pytest.skip(f"DRIVE test image not found at {image} (set VESSELFLOW_DATA)")
    timeout_ms = 600_000 if _use_real_models() else 120_000
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport=VIEWPORT, accept_downloads=True)
            page.goto(app_url)
            page.get_by_text("Segment retinal vessels").wait_for(timeout=60_000)
            page.locator("input[type=file]").first.set_input_files(str(image))

            mean_map = page.locator('img[alt="vessel probability map"]')
            mean_map.wait_for(timeout=timeout_ms)
            page.locator('img[alt="uncertainty map"]').wait_for(timeout=timeout_ms)
            page.get_by_text("Download", exact=True).wait_for(timeout=30_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('img')].every(i => i.complete)",
                timeout=30_000)
            assert mean_map.is_visible()
            size = mean_map.evaluate("img => [img.naturalWidth, img.naturalHeight]")
            assert size[0] > 100 and size[1] > 100, f"mean map not rendered: {size}"
            assert page.get_by_text("Research use only").first.is_visible()
            assert page.locator('[data-testid="stException"]').count() == 0
            assert page.locator('[data-testid="stAlertContentError"]').count() == 0

            shot = tmp_path / "segment_page.png"
            page.screenshot(path=str(shot))
            assert shot.stat().st_size > 20_000
            if os.environ.get("VESSELFLOW_SCREENSHOT"):
                target = Path(os.environ["VESSELFLOW_SCREENSHOT"]).expanduser()
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(shot, target)

            with page.expect_download(timeout=60_000) as info:
                page.get_by_role("button", name="All (zip)").click()
            with zipfile.ZipFile(io.BytesIO(Path(info.value.path()).read_bytes())) as zf:
                names = set(zf.namelist())
                run = json.loads(zf.read("run.json"))
            # The zip holds the CLI's own output files (one writer), named as `segment` names them.
            stem = Path(image.name).stem
            assert {f"{stem}{s}" for s in OUTPUT_SUFFIXES} | {"run.json"} <= names
            assert run["image"]["name"] == image.name
            assert (run["image"]["height"], run["image"]["width"]) == (584, 565)
        finally:
            browser.close()
