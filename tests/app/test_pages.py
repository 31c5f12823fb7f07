"""The web app's pages with ``streamlit.testing.v1.AppTest`` on tiny untrained models.

Every page: upload, sample, change the threshold, downloads offered, bad uploads answered with
a friendly message and never an exception. Plus the non-UI helpers the pages rely on
(download builders, run.json, in-memory scoring and figures).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY_SR
from conftest import TINY_VESSEL as TINY
from conftest import data_dir as _data_dir
from PIL import Image

from vesselflow.vessel.biomarkers import NAMES as BIOMARKER_NAMES

REPO = Path(__file__).resolve().parents[2]
APP = REPO / "vesselflow" / "app" / "main.py"

TIMEOUT = 90  # seconds per script run; generous for a loaded 2-core machine




@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import torch

    from vesselflow.vessel.models import VesselConfig, build_model, save_model

    folder = tmp_path_factory.mktemp("app_models")
    torch.manual_seed(0)
    out = {}
    for kind, label in (("cnf", "Tiny CNF"), ("factored", "Tiny factored")):
        model = build_model(VesselConfig(kind=kind, **TINY))
        meta: dict = {"threshold": 0.5}
        if kind == "cnf":  # as ship_model.py stores them; the About page shows them
            meta["test_metrics"] = {"max_f1": 0.8123, "f1": 0.8012, "bpd": 0.0712,
                                    "bpd_fov": 0.0913, "bpd_canvas": 0.0229, "canvas": 1024,
                                    "n_images": 20, "n_samples": 100,
                                    "ci95": {"bpd": [0.0701, 0.0725],
                                             "max_f1": [0.8011, 0.8222]}}
        save_model(model, folder / kind, meta=meta)
        out[label] = str(folder / kind)
    return out




@pytest.fixture(scope="module")
def tiny_sr_models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    import torch

    from vesselflow.io.weights import save_model
    from vesselflow.sr.models import SRConfig, build_sr_model

    folder = tmp_path_factory.mktemp("app_sr_models")
    torch.manual_seed(0)
    out = {}
    for kind, label in (("cnf", "Tiny SR flow"), ("factored", "Tiny SR factored")):
        save_model(build_sr_model(SRConfig(kind=kind, **TINY_SR)), folder / kind,
                   meta={"name": f"tiny-sr-{kind}"})
        out[label] = str(folder / kind)
    return out


@pytest.fixture(autouse=True)
def app_env(tiny_models: dict[str, str], tiny_sr_models: dict[str, str],
            monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VESSELFLOW_APP_MODELS", json.dumps(tiny_models))
    monkeypatch.setenv("VESSELFLOW_DRIVE", str(tmp_path / "no-drive-here"))
    monkeypatch.setenv("VESSELFLOW_APP_SR_MODELS", json.dumps(tiny_sr_models))
    monkeypatch.setenv("VESSELFLOW_SR_DATA", str(tmp_path / "no-sr-data-here"))


def run_app(page: str | None = None):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT).run()
    if page:
        at.switch_page(page).run()
    return at


def assert_clean(at, errors_ok: bool = False) -> None:
    assert not at.exception, [e.value for e in at.exception]
    if not errors_ok:
        assert not at.error, [e.value for e in at.error]


def png(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def fundus(size: int = 176, seed: int = 1) -> dict[str, np.ndarray]:
    from vesselflow.vessel.data.synthetic import synthetic_fundus

    return synthetic_fundus((size, size), seed=seed)


def fundus_png(size: int = 176, seed: int = 1) -> bytes:
    return png(np.round(fundus(size, seed)["image"] * 255).astype(np.uint8))


def captions(at) -> list[str]:
    return [c for img in at.image for c in img.captions]


def alts(at) -> set[str]:
    return {i.alt for img in at.image for i in img.proto.imgs}


def threshold_slider(at):
    return next(s for s in at.slider if str(s.key).startswith(("threshold:",
                                                                "eval_threshold:")))


# ----------------------------------------------------------------------------- Segment
def test_segment_upload_sample_threshold_and_downloads() -> None:
    at = run_app()
    assert_clean(at)
    assert any("Research use only" in w.value for w in at.info)
    assert at.select_slider(key="n_samples").value == 16
    assert at.slider(key="temperature").value == 1.0
    at.select_slider(key="n_samples").set_value(4)
    at.file_uploader(key="uploads").set_value(("eye.png", fundus_png(), "image/png")).run()
    assert_clean(at)
    assert {"input image", "vessel probability map", "uncertainty map", "binary vessel mask",
            "overlay", "sample 1"} <= alts(at)
    assert any("mean of 4 samples" in c for c in captions(at))
    # A model without a review calibration: not assessed, with the command that calibrates it.
    assert any("not assessed" in w.value and "vesselflow calibrate-review" in w.value
               for w in at.info)
    assert not any("Review this map" in w.value for w in at.warning)
    slider = threshold_slider(at)
    assert slider.value == pytest.approx(0.5)  # the model's a-priori threshold
    area = at.metric[0].value
    slider.set_value(0.2).run()
    assert_clean(at)
    assert any("threshold 0.200" in c for c in captions(at))
    assert at.metric[0].value != area
    labels = [b.label for b in at.download_button]
    assert labels == ["Mask PNG", "Probability PNG", "Probability TIFF", "Uncertainty PNG",
                      "All (zip)"]


def test_segment_examples_with_the_factored_model() -> None:
    at = run_app()
    at.selectbox(key="model").set_value("Tiny factored")
    at.select_slider(key="n_samples").set_value(2)
    at.radio(key="source").set_value("synthetic").run()
    assert_clean(at)
    assert "vessel probability map" in alts(at)
    assert any("known vessel map" in i.value for i in at.info)
    at.radio(key="source").set_value("retina").run()
    assert_clean(at)
    assert any("1411×1411" in c for c in captions(at))
    scale = next(m for m in at.metric if m.label == "Analysis scale")
    assert scale.value != "×1.00"  # the large photo is analysed at DRIVE's scale


def test_segment_vessel_measurements_table_with_intervals_and_download() -> None:
    at = run_app()
    at.select_slider(key="n_samples").set_value(4)
    at.radio(key="source").set_value("synthetic").run()
    assert_clean(at)
    assert "Measurements CSV" not in [b.label for b in at.download_button]  # off by default
    at.toggle(key="biomarkers").set_value(True).run()
    assert_clean(at)
    [table] = at.dataframe
    df = table.value
    assert list(df["biomarker"]) == list(BIOMARKER_NAMES)
    assert {"unit", "estimate (a grader's tracing)", "90% prediction interval",
            "model value (mask)", "model uncertainty (samples 2.5–97.5%)"} <= set(df)
    assert {"µm (estimate, assumed field)", "px", "1/mm²"} <= set(df["unit"])
    assert any("the 4 samples" in c.value for c in at.caption)
    assert "Measurements CSV" in [b.label for b in at.download_button]


def test_threshold_and_review_calibration_come_from_the_model(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    from vesselflow.vessel.models import VesselConfig, build_model, load_model, save_model
    from vesselflow.vessel.review.predictor import F1Model
    from vesselflow.vessel.review.verdict import CALIBRATION_FILE, ReviewCalibration

    torch.manual_seed(0)
    save_model(build_model(VesselConfig(kind="cnf", **TINY)), tmp_path / "m",
               meta={"threshold": 0.3125})
    sha = load_model(tmp_path / "m").sha256

    def calibrate(coef: float) -> None:
        """Predicted F1 0.8 + coef * (log density - log 0.12), flat at coef 0."""
        fm = F1Model(["log_density"], [float(np.log(0.121))], [1.0], [-10.0], [10.0], [coef],
                     0.8, -0.04, 0.03)
        cal = ReviewCalibration(fm, fm, 0.6, {"model_sha256": sha})
        (tmp_path / "m" / CALIBRATION_FILE).write_text(json.dumps(cal.to_dict()))

    calibrate(0.0)
    monkeypatch.setenv("VESSELFLOW_APP_MODELS", json.dumps({"Calibrated": str(tmp_path / "m")}))
    at = run_app()
    at.select_slider(key="n_samples").set_value(2)
    at.radio(key="source").set_value("synthetic").run()
    assert_clean(at)
    assert threshold_slider(at).value == pytest.approx(0.3125)
    assert any("No reason for review" in x.value and "about 0.80 (0.76-0.83)" in x.value
               for x in at.success)
    assert not any("Review this map" in w.value for w in at.warning)
    # The verdict follows the threshold: at 0 every FOV pixel is vessel, far above DRIVE's.
    calibrate(-0.5)
    from vesselflow.app import segmenting

    segmenting._calibration.clear()
    threshold_slider(at).set_value(0.0).run()
    assert any("Review this map" in w.value and "Expected agreement with a human grader (F1) "
               "about 0.00" in w.value for w in at.warning)


def _bad_files() -> dict[str, bytes]:
    rgb = np.round(fundus(176)["image"] * 255).astype(np.uint8)
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    sixteen = (rgb[..., 1].astype(np.uint16) * 257)
    huge = io.BytesIO()
    Image.new("1", (7000, 7000)).save(huge, format="PNG")
    return {
        "notes.png": b"patient notes, definitely not an image\n" * 20,
        "corrupt.png": fundus_png(176)[:300],
        "huge.png": huge.getvalue(),
        "gray.png": png(rgb[..., 1]),
        "rgba.png": png(rgba),
        "sixteen.png": png(sixteen),
    }


def test_bad_uploads_get_friendly_messages() -> None:
    files = _bad_files()
    at = run_app()
    at.select_slider(key="n_samples").set_value(1)
    with_advanced = at.checkbox(key="rescale")
    with_advanced.set_value(False)  # keep the tiny images tiny: this test is about decoding
    at.file_uploader(key="uploads").set_value(
        [(name, data, "image/png") for name, data in files.items()]).run()
    assert_clean(at, errors_ok=True)
    errors = " ".join(e.value for e in at.error)
    assert "**notes.png** cannot be used: not a recognised image format" in errors
    assert "**corrupt.png** cannot be used" in errors
    assert "**huge.png** cannot be used: image is too large" in errors
    assert "Traceback" not in errors
    view = at.selectbox(key="view")
    assert view.options == ["gray.png", "rgba.png", "sixteen.png"]
    expected = {0: "Grayscale image", 1: "alpha (transparency) channel", 2: "16-bit image"}
    for index, note in expected.items():
        at.selectbox(key="view").set_value(index).run()
        assert_clean(at, errors_ok=True)
        assert any(note in i.value for i in at.info), (index, [i.value for i in at.info])
        assert "vessel probability map" in alts(at)


def test_segment_all_uploaded_images() -> None:
    at = run_app()
    at.select_slider(key="n_samples").set_value(1)
    at.checkbox(key="rescale").set_value(False)
    at.file_uploader(key="uploads").set_value(
        [("a.png", fundus_png(176, 1), "image/png"), ("b.png", fundus_png(176, 2),
                                                      "image/png")]).run()
    assert_clean(at)
    at.button(key="batch_run").click().run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert list(table["image"]) == ["a.png", "b.png"]
    assert set(table["review"]) <= {"review", "ok", "not assessed"} and "reasons" in table
    assert "All results (zip)" in [b.label for b in at.download_button]


# ----------------------------------------------------------------------------- models
def test_missing_or_misconfigured_models_give_a_clear_message(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VESSELFLOW_APP_MODELS", json.dumps({"Gone": str(tmp_path / "gone")}))
    at = run_app()
    assert_clean(at, errors_ok=True)
    assert any("No vessel model is available" in e.value for e in at.error)
    assert any("No model found at" in m.value for m in at.markdown)
    monkeypatch.setenv("VESSELFLOW_APP_MODELS", "{not json")
    at = run_app("views/about.py")
    assert_clean(at, errors_ok=True)
    assert any("is not valid JSON" in e.value for e in at.error)


def test_missing_shipped_weights_are_explained(monkeypatch: pytest.MonkeyPatch,
                                               tmp_path: Path) -> None:
    import vesselflow.io.weights as model_io
    from vesselflow.app import models

    monkeypatch.setattr(model_io, "WEIGHTS_DIR", tmp_path)
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path)
    message = models.model_problem("cnf-drive")
    assert "shipped model **cnf-drive** is not installed" in message
    assert "VESSELFLOW_APP_MODELS" in message


# ----------------------------------------------------------------------------- Evaluate
def test_evaluate_with_uploaded_tracings() -> None:
    d = fundus(176, seed=4)
    label2 = d["label"].copy()
    label2[::7] = False  # a second grader who misses some pixels
    at = run_app("views/evaluate.py")
    assert_clean(at)
    assert at.radio(key="eval_source").options == ["Synthetic fundus (known vessels)",
                                                   "Upload image and tracing"]
    at.select_slider(key="n_samples").set_value(4)
    at.radio(key="eval_source").set_value("upload").run()
    assert_clean(at)
    image = png(np.round(d["image"] * 255).astype(np.uint8))
    at.file_uploader(key="eval_image").set_value(("eye.png", image, "image/png"))
    at.file_uploader(key="eval_label").set_value(("eye_manual.png", png(d["label"]),
                                                  "image/png"))
    at.file_uploader(key="eval_label2").set_value(("eye_manual2.png", png(label2),
                                                   "image/png"))
    at.file_uploader(key="eval_fov").set_value(("eye_fov.png", png(d["fov"]), "image/png"))
    at.run()
    assert_clean(at)
    metrics = {m.label: m.value for m in at.metric}
    assert {"F1 at threshold", "Max F1 (oracle)", "AUC-ROC", "2nd observer F1"} <= set(metrics)
    human_f1 = float(metrics["2nd observer F1"])
    assert 0.8 < human_f1 < 1.0
    table = at.dataframe[0].value
    assert "Sample F1 (mean)" in list(table["metric"])
    threshold_slider(at).set_value(0.25).run()
    assert_clean(at)
    assert any("threshold 0.250" in c for c in captions(at))
    assert [b.label for b in at.download_button] == ["Metrics (JSON)"]
    # A tracing of another size is refused politely.
    at.file_uploader(key="eval_label").set_value(("small.png", png(d["label"][:100, :100]),
                                                  "image/png")).run()
    assert_clean(at, errors_ok=True)
    assert any("does not match the image size" in e.value for e in at.error)


def test_evaluate_synthetic_case_and_bad_image() -> None:
    at = run_app("views/evaluate.py")
    at.select_slider(key="n_samples").set_value(2)
    at.radio(key="eval_source").set_value("synthetic").run()
    assert_clean(at)
    assert "ECE" in {m.label for m in at.metric}
    at.radio(key="eval_source").set_value("upload").run()
    at.file_uploader(key="eval_image").set_value(("x.png", b"\x89PNG\r\n\x1a\nbroken",
                                                  "image/png"))
    at.file_uploader(key="eval_label").set_value(("y.png", png(fundus(64)["label"]),
                                                  "image/png")).run()
    assert_clean(at, errors_ok=True)
    assert any("corrupt PNG file" in e.value for e in at.error)


def test_evaluate_on_a_drive_test_image(monkeypatch: pytest.MonkeyPatch) -> None:
    drive = _data_dir() / "DRIVE"
    if not (drive / "test" / "images").is_dir():
        pytest.skip(f"DRIVE not found at {drive} (set VESSELFLOW_DATA)")
    monkeypatch.setenv("VESSELFLOW_DRIVE", str(drive))
    at = run_app("views/evaluate.py")
    at.select_slider(key="n_samples").set_value(2)
    at.selectbox(key="drive_id").set_value("02_test").run()
    assert_clean(at)
    assert at.radio(key="eval_source").value == "drive"
    assert any("02_test.tif" in c for c in captions(at))
    human = float(next(m.value for m in at.metric if m.label == "2nd observer F1"))
    assert 0.7 < human < 0.85  # DRIVE's second observer scores ~0.79 against the first


# ----------------------------------------------------------------------------- other pages
def test_about_and_superres_pages(tiny_models: dict[str, str]) -> None:
    from vesselflow.io.files import sha256_file

    at = run_app("views/about.py")
    assert_clean(at)
    text = " ".join(m.value for m in at.markdown)
    assert "Not intended for" in text
    for folder in tiny_models.values():
        assert sha256_file(Path(folder) / "model.safetensors") in text
    # bpd per image pixel is the headline; the canvas figure says what it is
    assert ("0.0712 (95% CI 0.0701–0.0725) bits per image pixel, 0.0913 per FOV pixel; max F1 "
            "0.8123 (95% CI 0.8011–0.8222), F1 at the a-priori threshold 0.8012" in text)
    assert ("0.0229 bits per pixel if the paper divided by its 1024² canvas, which it does not "
            "state" in text)
    assert text.count("**DRIVE test**") == 1  # the factored tiny model has no test results
    at.switch_page("views/superres.py").run()
    assert_clean(at)
    assert any("Upload an image to enlarge it" in i.value for i in at.info)


# ----------------------------------------------------------------------------- Super-resolution
def test_superres_simulate_an_example_with_metrics_and_downloads() -> None:
    at = run_app("views/superres.py")
    assert_clean(at)
    assert at.slider(key="sr_temperature").value == 0.8
    assert at.slider(key="sr_samples").value == 4
    assert at.selectbox(key="sr_model").value == "Tiny SR flow"
    at.radio(key="sr_source").set_value("example")
    at.selectbox(key="sr_crop").set_value(64).run()  # the synthetic example's centre
    assert_clean(at)
    assert at.selectbox(key="sr_example").value == "synthetic"  # no SR data folder here
    assert at.radio(key="sr_mode").value == "upscale"
    assert any("No original to compare with" in c.value for c in at.caption)
    assert not at.dataframe
    at.radio(key="sr_mode").set_value("simulate").run()
    assert_clean(at)
    assert {"input image", "bicubic enlargement", "original image", "point estimate",
            "sample 1", "uncertainty map", "sample 4", "mean of the 4 samples"} <= alts(at)
    assert any("Half-size input (32×32 px)" in c for c in captions(at))
    assert any("Original (64×64 px)" in c for c in captions(at))
    table = at.dataframe[0].value
    assert list(table["output"]) == ["Bicubic (MATLAB imresize)", "Model, temperature 0",
                                     "Mean of the 4 samples", "Single samples (average of 4)"]
    assert np.isfinite(table["PSNR-Y (dB)"]).all() and (table["SSIM-Y"] <= 1).all()
    assert [b.label for b in at.download_button] == ["Temperature 0 PNG", "Samples (zip)",
                                                     "run.json"]
    assert any("not measured detail" in c.value for c in at.caption)
    at.slider(key="sr_zoom_x").set_value(0).run()  # the detail view follows the sliders
    assert_clean(at)
    assert any("detail of the 2× outputs at (0, 0)" in c.value for c in at.caption)


def test_superres_factored_model_on_a_set5_image(monkeypatch: pytest.MonkeyPatch,
                                                 tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    (tmp_path / "SR" / "Set5").mkdir(parents=True)
    bird = (rng.random((36, 40, 3)) * 255).astype(np.uint8)
    (tmp_path / "SR" / "Set5" / "bird.png").write_bytes(png(bird))
    monkeypatch.setenv("VESSELFLOW_SR_DATA", str(tmp_path / "SR"))
    at = run_app("views/superres.py")
    at.selectbox(key="sr_model").set_value("Tiny SR factored")
    at.slider(key="sr_samples").set_value(1)
    at.radio(key="sr_source").set_value("example").run()
    assert_clean(at)
    assert at.selectbox(key="sr_example").options == ["Set5: bird",
                                                      "Synthetic fundus (256×256, drawn by "
                                                      "vesselflow)"]
    assert any("Set5 *bird* (40×36 px)" in i.value for i in at.info)
    assert any("Input (40×36 px)" in c for c in captions(at))
    assert any("mixture mean" in c for c in captions(at))
    assert "uncertainty map" not in alts(at)  # one sample: no spread to show
    assert any("draw two or more samples" in c.value for c in at.caption)
    at.slider(key="sr_temperature").set_value(0.0)
    at.slider(key="sr_samples").set_value(2).run()
    assert_clean(at)
    assert any("every sample is the point estimate" in c.value for c in at.caption)


def test_superres_without_models_explains_why(monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:
    import vesselflow.io.weights as model_io
    from vesselflow.app import models

    monkeypatch.setattr(model_io, "WEIGHTS_DIR", tmp_path)  # no shipped sr-cnf / sr-factored
    monkeypatch.setattr(models, "WEIGHTS_DIR", tmp_path)
    monkeypatch.delenv("VESSELFLOW_APP_SR_MODELS")
    at = run_app("views/superres.py")
    assert_clean(at)
    assert any("Super-resolution is not available" in w.value for w in at.warning)
    text = " ".join(m.value for m in at.markdown)
    assert "shipped model **sr-cnf** is not installed" in text
    assert "shipped model **sr-factored** is not installed" in text
    assert "VESSELFLOW_APP_SR_MODELS" in text
    monkeypatch.setenv("VESSELFLOW_APP_SR_MODELS", str(tmp_path / "gone"))
    at = run_app("views/superres.py")
    assert_clean(at)
    assert any("No model found at" in m.value for m in at.markdown)
    monkeypatch.setenv("VESSELFLOW_APP_SR_MODELS", "{broken")
    at = run_app("views/superres.py")
    assert_clean(at, errors_ok=True)
    assert any("VESSELFLOW_APP_SR_MODELS is not valid JSON" in e.value for e in at.error)


def test_superres_bad_and_oversized_uploads(tiny_sr_models: dict[str, str]) -> None:
    from vesselflow.sr.upscale import MAX_LR_PIXELS

    at = run_app("views/superres.py")
    at.file_uploader(key="sr_upload").set_value(
        ("notes.png", b"patient notes, definitely not an image\n" * 20, "image/png")).run()
    assert_clean(at, errors_ok=True)
    assert any("**notes.png** cannot be used: not a recognised image format" in e.value
               for e in at.error)
    big = io.BytesIO()
    side = int(MAX_LR_PIXELS**0.5) + 10
    picture = Image.new("1", (side, side))
    picture.putpixel((5, 5), 1)  # not blank: blank images are refused for another reason
    picture.save(big, format="PNG")
    at.file_uploader(key="sr_upload").set_value(("big.png", big.getvalue(), "image/png")).run()
    assert_clean(at, errors_ok=True)
    errors = " ".join(e.value for e in at.error)
    assert "too large to enlarge here" in errors and "central crop" in errors
    assert "Traceback" not in errors
    dot = (np.random.default_rng(0).random((6, 6, 3)) * 255).astype(np.uint8)
    at.file_uploader(key="sr_upload").set_value(("dot.png", png(dot), "image/png")).run()
    assert_clean(at, errors_ok=True)
    assert any("too small to enlarge" in e.value for e in at.error)


def test_superres_helpers(tiny_models: dict[str, str], tiny_sr_models: dict[str, str],
                          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import torch

    from vesselflow.app import config, guard, inputs, models, upscaling
    from vesselflow.sr.data import to_image, to_tensor
    from vesselflow.sr.inference import batch_size_for, draw_samples, point_estimate
    from vesselflow.sr.weights import load_sr_model

    # The factored model's point estimate is predict() at temperature 0 (its mixture mean).
    factored = load_sr_model(tiny_sr_models["Tiny SR factored"])
    lr = (np.random.default_rng(1).random((12, 10, 3)) * 255).astype(np.uint8)
    point = point_estimate(factored.model, lr)
    expected = to_image(factored.model.predict(to_tensor(lr)[None], 0.0)[0])
    assert np.array_equal(point, expected) and point.shape == (24, 20, 3)
    # Samples: batched, reproducible from the seed, the same in one batch or several.
    flow = load_sr_model(tiny_sr_models["Tiny SR flow"])
    steps: list[int] = []
    a = draw_samples(flow.model, lr, 3, 0.8, torch.Generator().manual_seed(5), batch=2,
                     callback=steps.append)
    b = draw_samples(flow.model, lr, 3, 0.8, torch.Generator().manual_seed(5), batch=2)
    assert a.shape == (3, 24, 20, 3) and a.dtype == np.uint8 and np.array_equal(a, b)
    assert steps == [2, 3]
    assert batch_size_for((12, 10), 8) == 8
    assert batch_size_for((1000, 1000), 8) == 1
    # Case, result, metrics, zip and run.json.
    item = inputs.InputImage("photo.jpeg", "abc", np.random.default_rng(2).random(
        (50, 41, 3)).astype(np.float32))
    case = upscaling.sr_case(item, "simulate", crop=30)
    assert case.lr.shape == (15, 15, 3) and case.hr.shape == (30, 30, 3)
    assert case.crop == (10, 5, 30, 30) and case.bicubic.shape == (30, 30, 3)
    params = upscaling.SRParams(temperature=0.5, n=2, seed=7, crop=30)
    samples = draw_samples(flow.model, case.lr, 2, 0.5, torch.Generator().manual_seed(7))
    mean = samples.astype(np.float32).mean(0)
    result = upscaling.SRResult(point_estimate(flow.model, case.lr), samples, mean,
                                np.zeros((30, 30), np.float32), 2, {"samples": 0.1})
    metrics = upscaling.sr_metrics(case, result)
    assert metrics[0]["output"] == "Bicubic (MATLAB imresize)"
    with zipfile.ZipFile(io.BytesIO(upscaling.sr_zip(flow, item, case, params, result,
                                                  metrics))) as z:
        names = set(z.namelist())
        run = json.loads(z.read("run.json"))
        x2 = np.asarray(Image.open(io.BytesIO(z.read("photo_t0_x2.png"))))
        s01 = np.asarray(Image.open(io.BytesIO(z.read("photo_x2_s01.png"))))
    # the files of `vesselflow sr upscale` (samples, and the point estimate) + comparisons
    assert {"photo_t0_x2.png", "photo_x2.png", "photo_x2_mean.png", "photo_x2_std.png",
            "photo_x2_s00.png", "photo_x2_s01.png", "photo_bicubic_x2.png",
            "photo_model_input.png", "photo_original.png", "run.json"} == names
    assert np.array_equal(x2, result.point) and np.array_equal(s01, samples[1])
    assert run["model"] == {"name": "cnf", "kind": "cnf", "sha256": flow.sha256, "scale": 2}
    assert run["parameters"]["temperature"] == 0.5 and run["parameters"]["seed"] == 7
    assert run["parameters"]["samples"] == 2
    assert run["sizes"] == {"model_input": [15, 15], "output": [30, 30]}
    assert run["region"] == {"top": 10, "left": 5, "height": 30, "width": 30,
                             "central_crop": 30}
    assert run["image"] == {"name": "photo.jpeg", "sha256": "abc", "height": 50, "width": 41}
    assert run["mode"] == "simulate" and len(run["metrics"]["rows"]) == 4
    assert "not measured detail" in run["notice"]
    with pytest.raises(guard.AppError, match="too small"):
        upscaling.sr_case(item, "simulate", crop=12)
    # The models variable also takes a comma-separated list of folders.
    monkeypatch.setenv("VESSELFLOW_APP_SR_MODELS", f"{tmp_path / 'a' / 'run'}, sr-cnf,"
                                                   f"{tmp_path / 'b' / 'run'}")
    assert config.sr_model_choices() == {"run": str(tmp_path / "a" / "run"),
                                         "sr-cnf": "sr-cnf",
                                         "run (2)": str(tmp_path / "b" / "run")}
    # A vessel model is not an SR model: a clear message, not a crash.
    with pytest.raises(guard.AppError, match=r"could not be loaded: .*not an SR model"):
        models.get_sr_model(tiny_models["Tiny CNF"])


# ----------------------------------------------------------------------------- helpers
def _fake_result():
    from vesselflow.vessel.analysis.pipeline import Segmentation
    from vesselflow.vessel.preprocess.scale import ScaleInfo

    rng = np.random.default_rng(0)
    mean = rng.random((40, 50)).astype(np.float32)
    fov = np.ones((40, 50), bool)
    return Segmentation(
        image=rng.random((40, 50, 3)).astype(np.float32), fov=fov, mean=mean,
        std=np.sqrt(mean * (1 - mean)), samples=rng.random((2, 40, 50)) < 0.5, n=8,
        scale=ScaleInfo((80, 100), (40, 50), 0.5, 200.0), fov_source="detected", seconds=0.1,
        input_features={}, original_fov=np.ones((80, 100), bool))


def test_download_files_are_at_the_original_size_with_run_json(tiny_models) -> None:
    import tifffile

    from vesselflow.app import config, inputs, segmenting
    from vesselflow.vessel.models import load_model
    from vesselflow.vessel.outputs import output_names

    loaded = load_model(tiny_models["Tiny CNF"])
    item = inputs.InputImage("eye.jpg", "abc123", np.zeros((80, 100, 3), np.float32))
    result = _fake_result()
    params = segmenting.SamplingParams(n=8, temperature=0.7, seed=3, rescale=True)
    summary = segmenting.summary(loaded, result, 0.4)
    zipped = segmenting.results_zip(loaded, item, result, params, summary)
    with zipfile.ZipFile(io.BytesIO(zipped)) as z:
        names = z.namelist()
        run = json.loads(z.read("run.json"))
        mask = np.asarray(Image.open(io.BytesIO(z.read("eye_mask.png"))))
        mean = tifffile.imread(io.BytesIO(z.read("eye_prob.tif")))
        unc = np.asarray(Image.open(io.BytesIO(z.read("eye_uncertainty.png"))))
        one = segmenting.result_file(loaded, item, result, params, summary, "_mask.png")
    # exactly the files `vesselflow segment --save-samples` writes, and run.json
    assert set(names) == {*output_names("eye", True), "run.json"}
    assert one == segmenting.result_files(loaded, item, result, params, summary)["eye_mask.png"]
    assert unc.dtype == np.uint8 and unc.shape == (80, 100)  # value / 510 = std
    assert mask.shape == (80, 100) and set(np.unique(mask)) <= {0, 255}
    assert mean.dtype == np.float32 and mean.shape == (80, 100)
    assert run["model"]["sha256"] == loaded.sha256
    assert run["parameters"] == {"samples": 8, "temperature": 0.7, "seed": 3,
                                 "batch_size": config.BATCH_SIZE, "match_drive_scale": True,
                                 "threshold": 0.4, "threshold_from": "given",
                                 "fov_degrees": 45.0, "analysis_scale": "auto"}
    assert run["image"] == {"name": "eye.jpg", "id": "eye", "sha256": "abc123", "height": 80,
                            "width": 100}
    assert {"vesselflow", "torch", "numpy", "python"} <= set(run["environment"])
    assert run["summary"]["review"] == "not assessed"  # the tiny model has no calibration
    assert run["summary"]["reasons"] == [] and run["summary"]["predicted_f1"] is None
    assert run["summary"]["vessel_density"] == summary.vessel_density
    assert run["review_calibration"] is None
    assert inputs.stem("scan.nii.gz") == "scan" and inputs.stem("a.b.PNG") == "a.b"


def test_segment_and_the_app_report_the_same_numbers(tiny_models, tmp_path: Path) -> None:
    """The same photo, model, seed and samples: ``vesselflow segment``'s metrics.csv,
    biomarkers.csv, files and run.json and the app's numbers and downloads agree exactly."""
    import csv

    from vesselflow.app import inputs, segmenting
    from vesselflow.vessel.models import load_model
    from vesselflow.vessel.outputs import OUTPUT_SUFFIXES
    from vesselflow.vessel.segment import segment_inputs

    data = fundus_png(176, seed=5)
    (tmp_path / "my eye.png").write_bytes(data)  # segment names it my_eye, as the app must
    model, out, n, seed = tiny_models["Tiny CNF"], tmp_path / "out", 8, 7
    segment_inputs(tmp_path / "my eye.png", out, model=model, samples=n, seed=seed,
                   progress=False, log=lambda _: None)
    with open(out / "metrics.csv", newline="") as f:
        [row] = list(csv.DictReader(f))
    with open(out / "biomarkers.csv", newline="") as f:
        [bio] = list(csv.DictReader(f))

    loaded = load_model(model)
    item = inputs.decode_upload(data, "my eye.png")
    params = segmenting.SamplingParams(n=n, seed=seed)
    result = segmenting.segment(loaded, item, params, keep=n)  # the Segment page's call
    summary = segmenting.summary(loaded, result, loaded.threshold)
    app_row = summary.row()
    assert row["id"] == segmenting.image_id(item) == "my_eye"
    for key in ("vessel_density", "mean_uncertainty", "scale_factor"):
        assert float(row[key]) == app_row[key], key
    assert (row["review"], row["reasons"]) == (summary.verdict.status, summary.verdict.codes)
    assert (row["review"], row["reasons"]) == ("not assessed", "")
    # One density: the biomarkers' is the summary's; the measurements are the same.
    report = segmenting.biomarkers(loaded, item, result, summary, params)
    assert float(bio["vessel_density"]) == summary.vessel_density
    for name in ("length_density", "calibre_mean_px", "tortuosity"):
        assert float(bio[name]) == pytest.approx(report.mask[name], rel=1e-12, nan_ok=True)
    # The same files, byte for byte, and the same run.json entries.
    files = segmenting.result_files(loaded, item, result, params, summary)
    for suffix in OUTPUT_SUFFIXES:
        assert files[f"my_eye{suffix}"] == (out / f"my_eye{suffix}").read_bytes(), suffix
    app_run = json.loads(files["run.json"])
    cli_run = json.loads((out / "run.json").read_text())
    for block in ("model", "preprocessing", "review_calibration"):
        assert app_run[block] == cli_run[block], block
    shared = [k for k in app_run["parameters"] if k != "threshold_from"]
    assert {k: app_run["parameters"][k] for k in shared} == {
        k: cli_run["parameters"][k] for k in shared}


def test_a_tiny_field_of_view_is_not_blown_up(tiny_models) -> None:
    from vesselflow.app import guard, segmenting
    from vesselflow.vessel.models import load_model

    image = np.full((1200, 1600, 3), 0.5, np.float32)
    fov = np.zeros((1200, 1600), bool)
    fov[600:630, 800:830] = True  # an uploaded FOV mask 30 px across: refused outright
    loaded = load_model(tiny_models["Tiny CNF"])
    with pytest.raises(guard.AppError, match=r"only 3\d px across.*150 px"):
        segmenting.segment_image(loaded.model, image, segmenting.SamplingParams(n=1), fov=fov)
    yy, xx = np.mgrid[:1200, :1600]
    fov = (yy - 600) ** 2 + (xx - 800) ** 2 <= 80**2  # 160 px: enough, but a 3.4x enlargement
    with pytest.raises(guard.AppError, match="would enlarge the image"):
        segmenting.segment_image(loaded.model, image, segmenting.SamplingParams(n=1), fov=fov)


def test_visualize_helpers() -> None:
    import tifffile

    from vesselflow.io.encoders import png_bytes, tiff_bytes
    from vesselflow.vessel.visualize import agreement_map, colorize, gray, overlay, thumbnail

    image = np.zeros((4, 5, 3), np.float32)
    mask = np.zeros((4, 5), bool)
    mask[1, 2] = True
    out = overlay(image, mask, color=(0.0, 1.0, 0.0), alpha=0.5)
    assert out.dtype == np.uint8 and tuple(out[1, 2]) == (0, 128, 0) and out[0, 0].sum() == 0
    assert gray(np.array([[0.0, 0.5, 1.0]])).tolist() == [[0, 128, 255]]
    assert colorize(np.zeros((2, 2)), "magma").shape == (2, 2, 3)
    agree = agreement_map(np.array([[1, 1, 0, 0]], bool), np.array([[1, 0, 1, 0]], bool))
    assert agree[0].tolist() == [[255, 255, 255], [255, 51, 51], [51, 128, 255], [0, 0, 0]]
    assert thumbnail(np.zeros((3000, 1500), np.uint8), 600).shape == (600, 300)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png_bytes(mask)))) > 0, mask)
    values = np.linspace(0, 1, 20, dtype=np.float32).reshape(4, 5)
    assert np.array_equal(tifffile.imread(io.BytesIO(tiff_bytes(values))), values)
    with pytest.raises(TypeError):
        png_bytes(values)


def test_score_case_matches_the_pooled_metrics(tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    from vesselflow.vessel.evaluation import figures
    from vesselflow.vessel.evaluation.metrics import (
        binary_scores,
        in_fov,
        max_f1,
        score_case,
    )

    rng = np.random.default_rng(1)
    label = rng.random((30, 40)) < 0.2
    fov = np.zeros((30, 40), bool)
    fov[2:-2, 3:-3] = True
    samples = (rng.random((5, 30, 40)) < 0.3) | (label & (rng.random((5, 30, 40)) < 0.7))
    mean = samples.mean(0)
    label2 = label ^ (rng.random((30, 40)) < 0.05)
    s = score_case(mean, label, fov, 0.4, samples=samples, label2=label2)
    truth = in_fov(label, fov)
    assert s["max_f1"] == pytest.approx(max_f1(in_fov(mean, fov), truth)[0])
    assert s["f1"] == pytest.approx(binary_scores(in_fov(mean, fov) >= 0.4, truth)["f1"])
    assert s["sample_points"].shape == (5, 2)
    assert s["sample_precision"] == pytest.approx(np.mean([
        binary_scores(in_fov(x, fov), truth)["precision"] for x in samples]))
    assert s["human"] == binary_scores(in_fov(label2, fov), truth)
    curve = {**s["curve"], "max_f1": s["max_f1"]}
    for fig in (figures.pr_curve_figure({"m": curve}, s["human"], marks={"t": (0.5, 0.5)}),
                figures.sample_scatter_figure({"m": s["sample_points"]}, None),
                figures.reliability_diagram(s["reliability"], s["ece"])):
        assert isinstance(fig, Figure)
    figures.pr_figure({"m": curve}, s["human"], tmp_path / "pr.png")  # file writers unchanged
    figures.scatter_figure({"m": s["sample_points"]}, None, tmp_path / "scatter.png")
    figures.reliability_figure(s["reliability"], s["ece"], tmp_path / "rel.png")
    assert all((tmp_path / f).stat().st_size > 1000 for f in ("pr.png", "scatter.png",
                                                              "rel.png"))
