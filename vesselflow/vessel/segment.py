"""``vesselflow segment``: batch vessel segmentation that never loses work.

Inputs (``-i``): one image file, a folder (searched recursively, image types only), a glob
(``'data/**/*.png'``), or a CSV file with ``path[,id]`` rows (paths relative to the CSV; an
optional header row ``path,id``). Each image gets an id: its file stem, or, when two inputs
share a stem, its path relative to the input root with ``/`` written as ``__``; a CSV may give
ids explicitly.

Per image ``<id>``: the files of :mod:`vesselflow.vessel.outputs` (probability, mask,
uncertainty, overlay, FOV, optionally the samples), at the input's original size, and its
per-image summary (:mod:`vesselflow.vessel.analysis.summary`: vessel density, mean uncertainty
and the review verdict at the analysis scale) as its row of ``metrics.csv``.

Per run: ``run.json`` (model, parameters, preprocessing, review calibration and files, as
:func:`vesselflow.vessel.outputs.run_record` builds them for the app too; seed, device, package
versions, times, counts, failures), ``metrics.csv`` (one row per input) and
``biomarkers.csv`` (one row per image: each vessel biomarker's calibrated estimate of a
grader's tracing and its 90% prediction interval, the model's value on the mask, and the
samples' spread as "model uncertainty", :mod:`vesselflow.vessel.biomarkers`;
``--no-biomarkers`` skips it, ``--pixel-size UM`` sets the micrometres per input pixel),
written by the batch runner
(:mod:`vesselflow.batch.runner`), which also gives ``--continue``/``--overwrite``, progress,
failure records, sharding and signal handling; bookkeeping lives in ``OUT/.vesselflow/``.

Large images: the FOV is detected and the image is resized so that its FOV diameter matches
DRIVE's (``vesselflow.vessel.preprocess.scale``), segmented at the training scale, and the maps
are resized back to the original size (bilinear for the probability and the uncertainty, the
mask cut there, nearest neighbour for the samples). A 3504x2336 photograph is therefore sampled
at ~840x560. ``--fov-degrees`` (default 45, DRIVE's) tells it another camera's field of view:
the target diameter becomes ``537.7 * degrees / 45`` px, so a degree of retina spans DRIVE's
pixels (run.json records it).

Sharding: ``torchrun --nproc_per_node=N -m vesselflow segment ...``; each image's seed is
derived from ``--seed`` and its id (:mod:`vesselflow.vessel.analysis.pipeline`), so results do
not depend on the sharding.

Heavy libraries (torch, numpy, Pillow, ...) are imported inside functions: ``vesselflow
--help`` stays fast.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vesselflow.batch.inputs import BatchError, InputItem, collect_inputs

if TYPE_CHECKING:  # heavy: imported inside the functions, so --help stays fast
    from vesselflow.batch.runner import BatchTask
    from vesselflow.io.weights import LoadedModel
    from vesselflow.runtime import Dist
    from vesselflow.vessel.biomarker_calibration import BiomarkerCalibration
    from vesselflow.vessel.review.verdict import ReviewCalibration

STATE_DIR = ".vesselflow"
METRIC_FIELDS = ("id", "input", "status", "review", "reasons", "predicted_f1",
                 "predicted_f1_low", "predicted_f1_high", "vessel_density",
                 "mean_uncertainty", "seconds", "height", "width", "scale_factor",
                 "analysis_scale", "error")


def segment_one(loaded: LoadedModel, item: InputItem, out: Path, *, samples: int,
                temperature: float, threshold: float, seed: int, batch_size: int,
                save_samples: bool, device: str, fov_degrees: float,
                calibration: ReviewCalibration | None,
                on_progress: Callable[[float], None] | None = None, biomarkers: bool = False,
                pixel_size: float | None = None,
                analysis_scale: str | float = 1.0,
                biomarker_calibration: tuple[BiomarkerCalibration | None, str] | None = None,
                ) -> dict[str, Any]:
    """Segment one image and write its outputs; returns its metrics row.

    The row is the image's per-image summary (:meth:`vesselflow.vessel.analysis.summary.
    ImageSummary.row`): vessel density and mean uncertainty at the analysis scale, and the
    review verdict against the model's ``calibration``: ``review`` ("ok", "review" or "not
    assessed"), ``reasons`` (codes joined by ``;``), ``predicted_f1`` with its 90% interval
    (``predicted_f1_low``, ``predicted_f1_high``) and ``review_messages`` (in plain words).

    With ``biomarkers`` the row carries the image's biomarker row (mask value and sample
    mean / sd / interval, :mod:`vesselflow.vessel.biomarkers`), for the run's biomarkers.csv.

    Raises whatever reading or sampling raises; the caller records it and goes on.
    """
    from vesselflow.io.images import read_image
    from vesselflow.vessel.analysis.pipeline import segment_image
    from vesselflow.vessel.analysis.summary import summarise
    from vesselflow.vessel.outputs import write_outputs

    image = read_image(item.path)  # (H, W, 3) float32 in [0, 1]; ImageReadError names the file
    h, w = image.shape[:2]
    if min(h, w) < 8:
        raise ValueError(f"{item.path}: image is {w}x{h} pixels, too small to segment")
    callback = (lambda done, _m: on_progress(done / samples)) if on_progress else None
    result = segment_image(loaded.model, image, n=samples, temperature=temperature, seed=seed,
                           batch_size=batch_size,
                           keep=samples if save_samples or biomarkers else 0, device=device,
                           name=str(item.path), image_id=item.id, fov_degrees=fov_degrees,
                           callback=callback, analysis_scale=analysis_scale)
    summary = summarise(result, threshold, calibration)
    write_outputs(out, item.id, image, result, threshold, save_samples=save_samples)
    row = {"status": "ok", **summary.row()}
    if biomarkers:
        from vesselflow.vessel.biomarker_calibration import load_for
        from vesselflow.vessel.biomarkers import segmentation_report

        t_bio = time.perf_counter()
        try:
            # the model's own (a run loads it once and passes it), or None and why not
            cal, why = biomarker_calibration or load_for(loaded)
            row["biomarkers"] = segmentation_report(result, summary, loaded.config.kind,
                                                    pixel_size, cal, why).row()
        except Exception as e:  # the maps are written: a measurement problem must not undo them
            row["biomarkers"] = {"error": f"{item.path}: biomarkers failed: "
                                          f"{type(e).__name__}: {e}"}
        row["biomarker_seconds"] = round(time.perf_counter() - t_bio, 3)
    return row


def _settings(loaded: LoadedModel, samples: int, temperature: float, threshold: float,
              seed: int, save_samples: bool, biomarkers: bool, pixel_size: float | None,
              fov_degrees: float, analysis_scale: str | float) -> dict[str, Any]:
    """What decides an image's outputs: a --continue must use the same."""
    from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DEGREES

    settings = {"model_sha256": loaded.sha256, "samples": samples, "temperature": temperature,
                "threshold": threshold, "seed": seed, "save_samples": save_samples,
                "biomarkers": biomarkers, "pixel_size_um": pixel_size,
                "analysis_scale": str(analysis_scale)}
    if fov_degrees != DRIVE_FOV_DEGREES:  # only when set: earlier runs (no key) still continue
        settings["fov_degrees"] = fov_degrees
    if biomarkers:  # the CSV's columns: one run's rows must share them
        settings["biomarker_columns"] = "calibrated"
    return settings


# Settings of runs from before they existed: runs from before biomarkers made none (they
# resume with --no-biomarkers); runs from before the analysis scale analysed at scale 1;
# runs from before the calibrated biomarkers wrote the samples' intervals as the columns.
SETTINGS_BEFORE = {"biomarkers": False, "pixel_size_um": None, "analysis_scale": "1.0",
                   "biomarker_columns": "samples"}


def parse_threshold(text: str | float) -> str | float:
    """``"auto"`` (any case) or a number in (0, 1]; raises :class:`BatchError` otherwise."""
    if isinstance(text, str) and text.strip().lower() == "auto":
        return "auto"
    try:
        value = float(text)
    except ValueError:
        raise BatchError(f"threshold must be 'auto' or a number in (0, 1], got {text!r}") from None
    if not 0 < value <= 1:  # also refuses NaN
        raise BatchError(f"threshold must be in (0, 1], got {value}")
    return value


def segment_inputs(inputs: str | Path, out: str | Path, *, model: str = "cnf-drive",
                   samples: int = 16, temperature: float = 1.0,
                   threshold: str | float = "auto", seed: int = 0, device: str = "auto",
                   resume: bool = False, overwrite: bool = False, save_samples: bool = False,
                   progress: bool = True, batch_size: int = 8, biomarkers: bool = True,
                   pixel_size: float | None = None,
                   log: Callable[[str], None] | None = None,
                   fov_degrees: float | None = None,
                   analysis_scale: str | float = "auto") -> dict[str, Any]:
    """Segment every input image into ``out``; the Python form of ``vesselflow segment``.

    ``fov_degrees``: the camera's field of view (None: DRIVE's,
    :data:`vesselflow.vessel.preprocess.scale.DRIVE_FOV_DEGREES`), folded into the rescale to
    DRIVE's scale (:func:`vesselflow.vessel.preprocess.scale.target_fov_diameter`).
    ``analysis_scale``: ``"auto"`` (default) or a fixed scale relative to that
    (:mod:`vesselflow.vessel.analysis.scale_rule`); each image's is in metrics.csv.

    Failed images are recorded (run.json, metrics.csv) and the batch goes on. Under torchrun
    (RANK/WORLD_SIZE set) each rank segments its share and rank 0 writes the merged run files.

    Returns:
        The run record as written to run.json (``counts``: total/ok/failed/skipped over all
        ranks; ``failures``: id, input, error).

    Raises:
        BatchError: bad arguments, no inputs, a refused output folder, a model that cannot
            be loaded. KeyboardInterrupt passes through after finished work is recorded.
    """
    from vesselflow.batch.runner import open_run
    from vesselflow.runtime import now, sigterm_as_interrupt
    from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DEGREES

    fov_degrees = DRIVE_FOV_DEGREES if fov_degrees is None else fov_degrees
    say = log or (lambda s: print(s, flush=True))
    out = Path(out).expanduser()
    if resume and overwrite:
        raise BatchError("--continue and --overwrite exclude each other")
    if samples < 1:
        raise BatchError(f"--samples must be >= 1, got {samples}")
    if pixel_size is not None and not (math.isfinite(pixel_size) and pixel_size > 0):
        raise BatchError(f"--pixel-size must be a positive number of um, got {pixel_size}")
    if batch_size < 1:
        raise BatchError(f"--batch-size must be >= 1, got {batch_size}")
    if not math.isfinite(temperature) or temperature < 0:
        raise BatchError(f"--temperature must be >= 0, got {temperature}")
    if not (math.isfinite(fov_degrees) and 0 < fov_degrees < 180):
        raise BatchError(f"--fov-degrees must be in (0, 180), got {fov_degrees}")
    thr_arg = parse_threshold(threshold)
    from vesselflow.vessel.analysis.scale_rule import parse_scale

    try:
        analysis_scale = parse_scale(analysis_scale)
    except ValueError as e:
        raise BatchError(f"--analysis-scale: {e}") from None
    started, t_start = now(), time.perf_counter()
    items = collect_inputs(inputs, exclude=out)

    dist = open_run()
    try:
        with sigterm_as_interrupt():
            task = _task(dist, model=model, samples=samples, temperature=temperature,
                         thr_arg=thr_arg, seed=seed, device=device, resume=resume,
                         overwrite=overwrite, save_samples=save_samples, progress=progress,
                         batch_size=batch_size, out=out, n_items=len(items),
                         biomarkers=biomarkers, pixel_size=pixel_size,
                         fov_degrees=fov_degrees, analysis_scale=analysis_scale)
            from vesselflow.batch.runner import run_batch

            return run_batch(task, dist, items, inputs, out, resume=resume,
                             overwrite=overwrite, progress=progress, say=say,
                             started=started, t_start=t_start)
    finally:
        dist.close()


def _task(dist: Dist, *, model: str, samples: int, temperature: float, thr_arg: str | float,
          seed: int, device: str, resume: bool, overwrite: bool, save_samples: bool,
          progress: bool, batch_size: int, out: Path, n_items: int, biomarkers: bool,
          pixel_size: float | None, fov_degrees: float,
          analysis_scale: str | float) -> BatchTask:
    """Load the model and describe the segment run to the batch runner."""
    from vesselflow.batch.runner import BatchTask
    from vesselflow.runtime import pick_device
    from vesselflow.vessel.models import load_model, threshold_for
    from vesselflow.vessel.outputs import (
        BIOMARKERS_FILE,
        OUTPUT_SUFFIXES,
        SAMPLES_SUFFIX,
        analysis_parameters,
        output_names,
        run_record,
    )
    from vesselflow.vessel.review.verdict import ReviewCalibration

    try:
        dev = pick_device(device)
    except ValueError as e:
        raise BatchError(str(e)) from None
    if dev == "cuda" and dist.world > 1:
        dev = f"cuda:{dist.local_rank}"  # one GPU per process on a multi-GPU machine
    try:
        loaded = load_model(model, device=dev)
    except (FileNotFoundError, ValueError, KeyError, RuntimeError) as e:
        raise BatchError(f"cannot load model {model!r}: {e}") from None
    threshold = threshold_for(loaded, samples) if thr_arg == "auto" else float(thr_arg)
    try:
        calibration = ReviewCalibration.load(loaded.path, loaded.sha256)
    except ValueError as e:
        raise BatchError(f"model {model!r}: {e}") from None
    bio_calibration = None
    if biomarkers:
        from vesselflow.vessel.biomarker_calibration import load_for

        bio_calibration = load_for(loaded)
    settings = _settings(loaded, samples, temperature, threshold, seed, save_samples,
                         biomarkers, pixel_size, fov_degrees, analysis_scale)
    parameters = {**analysis_parameters(
        samples=samples, temperature=temperature, seed=seed, batch_size=batch_size,
        threshold=threshold, threshold_from="model" if thr_arg == "auto" else "given",
        fov_degrees=fov_degrees, analysis_scale=analysis_scale),
        "device": device, "save_samples": save_samples, "biomarkers": biomarkers,
        "pixel_size_um": pixel_size, "continue": resume, "overwrite": overwrite,
        "no_progress": not progress}
    record = {**run_record(loaded, parameters, calibration=calibration,
                           samples_written=samples if save_samples else None),
              "seed": seed, "device": dev}

    def process(item: InputItem, out: Path, on_progress: Callable[[float], None]) -> dict:
        return segment_one(loaded, item, out, samples=samples, temperature=temperature,
                           threshold=threshold, seed=seed, batch_size=batch_size,
                           save_samples=save_samples, device=dev, on_progress=on_progress,
                           biomarkers=biomarkers, pixel_size=pixel_size,
                           fov_degrees=fov_degrees, calibration=calibration,
                           analysis_scale=analysis_scale, biomarker_calibration=bio_calibration)

    def finish(out: Path, rows: list[dict[str, Any]]) -> dict[str, Any]:
        flagged = [{"id": r["id"], "input": r["input"], "reasons": r["reasons"].split(";"),
                    "messages": r.get("review_messages", [])}
                   for r in rows if r.get("review") == "review"]
        review = {"review": {
            "flagged": len(flagged), "images": flagged,
            "not_assessed": sum(r.get("review") == "not assessed" for r in rows),
            "note": "review = the map's predicted F1 (its expected agreement with a human "
                    "grader) is below this model's calibrated threshold, or no fundus field "
                    "of view was found (vesselflow.vessel.review.verdict)"}}
        if not biomarkers:
            return review
        from vesselflow.vessel.biomarkers import FACTORED_NOTE, RETINA_MM_45_DEG
        from vesselflow.vessel.outputs import write_biomarkers
        from vesselflow.vessel.preprocess.scale import DRIVE_FOV_DEGREES

        span = RETINA_MM_45_DEG * fov_degrees / DRIVE_FOV_DEGREES
        return {**review, "biomarkers": {
            "file": BIOMARKERS_FILE, "images": write_biomarkers(out / BIOMARKERS_FILE, rows),
            "pixel_size_um": pixel_size,
            "scale": "measured at the analysis scale (DRIVE's FOV diameter); calibre in px "
                     "of the input image; um from --pixel-size, else from the FOV assuming a "
                     f"{fov_degrees:g} degree field spans {span:.1f} mm across its diameter",
            "note": FACTORED_NOTE if loaded.config.kind == "factored" else ""}}

    shards = f" on {dist.world} processes" if dist.world > 1 else ""
    return BatchTask(
        command="segment", state_dir=STATE_DIR,
        output_suffixes=(*OUTPUT_SUFFIXES, SAMPLES_SUFFIX), metric_fields=METRIC_FIELDS,
        output_names=lambda i: output_names(i, save_samples),
        all_output_names=lambda i: output_names(i, True), process=process,
        settings=settings, record=record, run_files=(BIOMARKERS_FILE,),
        settings_defaults=SETTINGS_BEFORE, finish=finish, summary=review_summary,
        outputs=[s.lstrip("_") for s in OUTPUT_SUFFIXES]
        + ([SAMPLES_SUFFIX.lstrip("_")] if save_samples else []),
        start_line=f"segment: {n_items} image(s){shards} with {loaded.name} "
        f"({loaded.config.kind}, sha256 {loaded.sha256[:12]}), {samples} samples, "
        f"threshold {threshold:.3f}, device {dev} -> {out}",
        ok_line=lambda r: f"ok in {r['seconds']:.1f} s, vessel density "
                          f"{r['vessel_density']:.3f}"
                          + (f", REVIEW: {r['reasons']}" if r.get("review") == "review" else ""))


def review_summary(rows: list[dict[str, Any]]) -> list[str]:
    """"3 of 40 images flagged for review: a (reason; ...), ..." and one line per image."""
    done = [r for r in rows if r.get("status") == "ok"]
    flagged = [r for r in done if r.get("review") == "review"]
    if not done:
        return []
    unassessed = [r for r in done if r.get("review") == "not assessed"]
    if unassessed and not flagged:
        return [f"  review: not assessed ({unassessed[0].get('review_messages', [''])[0]})"]
    if not flagged:
        return [f"  review: none of {len(done)} image(s) flagged"]
    head = ", ".join(f"{r['id']} ({r['reasons']})" for r in flagged[:5])
    more = f", and {len(flagged) - 5} more" if len(flagged) > 5 else ""
    lines = [f"  {len(flagged)} of {len(done)} image(s) flagged for review: {head}{more}"]
    for r in flagged:
        for m in r.get("review_messages", []):
            lines.append(f"    {r['id']}: {m}")
    return lines
