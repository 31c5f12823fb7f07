"""The analysis-scale rule: small photos keep scale 1, large ones are clamped by their own pixels
and the trained range, narrow-field views are not enlarged past the vessel size, and the
narrow-field views themselves."""

from __future__ import annotations

import numpy as np
import pytest

from vesselflow.vessel.analysis.scale_rule import (
    AUTO,
    TARGET_VESSEL_WIDTH,
    choose_scale,
    main_vessel_calibre,
    needs_first_pass,
    parse_scale,
    pixel_limit,
    vessel_widths,
)
from vesselflow.vessel.data.narrow_field import narrow_field_view


def test_small_photo_keeps_scale_one() -> None:
    limit = pixel_limit(300.0, 537.7)  # a thumbnail: enlarged to scale 1, as ever
    assert limit == 1.0 and not needs_first_pass(AUTO, limit)
    assert choose_scale(AUTO, limit=limit, trained_range=(0.75, 2.0)).scale == 1.0
    # a fixed scale cannot invent pixels either
    choice = choose_scale(2.0, limit=limit, trained_range=(0.75, 2.0))
    assert choice.scale == 1.0 and "pixels" in choice.note


def test_large_photo_is_clamped_by_its_pixels_and_the_trained_range() -> None:
    assert pixel_limit(2000.0, 537.7) == pytest.approx(2000 / 537.7)
    assert needs_first_pass(AUTO, 3.7) and not needs_first_pass(1.5, 3.7)
    # DRIVE-like vessels (ratio 1) on a photo with pixels to spare: the target width
    auto = choose_scale(AUTO, limit=3.7, trained_range=(0.75, 2.0), calibre_ratio=1.0)
    assert auto.scale == pytest.approx(TARGET_VESSEL_WIDTH)
    # ... but never past the photo's own pixels
    assert choose_scale(AUTO, limit=1.2, trained_range=(0.75, 2.0),
                        calibre_ratio=1.0).scale == pytest.approx(1.2)
    # a fixed 2 on a model trained up to 1.5 is clamped, with a note naming the range
    fixed = choose_scale(2.0, limit=3.7, trained_range=(0.75, 1.5))
    assert fixed.scale == 1.5 and "0.75-1.5" in fixed.note
    assert choose_scale(1.5, limit=3.7, trained_range=(0.75, 2.0)).note == ""


def test_narrow_field_vessels_are_not_enlarged_past_drive_size() -> None:
    # a 30-degree camera: vessels 1.5x DRIVE's at scale 1 -> auto does not enlarge
    narrow = choose_scale(AUTO, limit=4.2, trained_range=(0.75, 2.0), calibre_ratio=1.5)
    assert narrow.scale == 1.0
    # a photo whose vessels are already at auto's target width is not enlarged either
    at_target = choose_scale(AUTO, limit=4.2, trained_range=(0.75, 2.0),
                             calibre_ratio=TARGET_VESSEL_WIDTH)
    assert at_target.scale == 1.0
    # vessels beyond the trained range at scale 1 are brought back into it
    wide = choose_scale(AUTO, limit=4.2, trained_range=(0.75, 2.0), calibre_ratio=2.4)
    assert wide.scale * 2.4 == pytest.approx(2.0)
    # ... but not below the trained range's bottom
    assert choose_scale(AUTO, limit=4.2, trained_range=(0.75, 2.0),
                        calibre_ratio=5.0).scale == pytest.approx(0.75)
    # thin (or speckled) maps never push the scale past the trained range's top
    assert choose_scale(AUTO, limit=4.2, trained_range=(0.75, 2.0),
                        calibre_ratio=0.2).scale == pytest.approx(2.0)


def test_parse_scale() -> None:
    assert parse_scale("auto") == AUTO and parse_scale(" AUTO ") == AUTO
    assert parse_scale("1.5") == 1.5
    for bad in ("big", "0", "10"):
        with pytest.raises(ValueError):
            parse_scale(bad)


@pytest.mark.parametrize("width", [3, 4, 7, 8])
def test_vessel_widths_of_a_bar(width: int) -> None:
    from skimage.morphology import skeletonize

    mask = np.zeros((40, 80), bool)
    mask[20 - width // 2: 20 - width // 2 + width, 5:75] = True
    widths = vessel_widths(mask, skeletonize(mask))
    assert np.median(widths) == pytest.approx(width, abs=0.5)
    assert main_vessel_calibre(mask) == pytest.approx(width, abs=1.0)
    assert main_vessel_calibre(np.zeros((40, 80), bool)) is None


def test_narrow_field_view_is_the_central_disc_unresized() -> None:
    h, w = 300, 320
    yy, xx = np.mgrid[:h, :w]
    fov = (yy - 150) ** 2 + (xx - 160) ** 2 <= 140 ** 2
    image = np.full((h, w, 3), 0.5, np.float32) * fov[..., None]
    label = np.zeros((h, w), bool)
    label[150, :] = True  # a horizontal vessel through the centre
    view = narrow_field_view(image, label, fov)
    side = view.fov.shape
    diameter = 2 * 140 + 1
    assert abs(side[0] - diameter * 2 / 3) <= 3 and abs(side[1] - diameter * 2 / 3) <= 3
    assert view.image.shape[:2] == side and view.label.shape == side
    assert not view.image[~view.fov].any()  # black outside the disc
    assert view.label.sum() <= view.fov.shape[1]  # the vessel keeps its 1 px width
    with pytest.raises(ValueError):
        narrow_field_view(image, label[:-1], fov)


def test_auto_measures_vessels_only_on_a_photo_with_pixels_to_spare(monkeypatch) -> None:
    """A DRIVE-sized photo takes no first pass; a 2x photo takes one, and a fixed scale none."""
    from conftest import TINY_VESSEL

    from vesselflow.vessel.analysis import pipeline
    from vesselflow.vessel.data.synthetic import synthetic_fundus
    from vesselflow.vessel.models import VesselConfig, build_model

    calls = []
    real = pipeline.sample_stats

    def counting(model, x, **kw):
        calls.append(np.asarray(x).shape[:2])
        return real(model, x, **kw)

    monkeypatch.setattr(pipeline, "sample_stats", counting)
    model = build_model(VesselConfig(kind="factored", scale_range=(0.75, 2.0),
                                     **TINY_VESSEL)).eval()
    small = synthetic_fundus((300, 300), seed=1)
    pipeline.segment_image(model, small["image"], n=1, fov=small["fov"], analysis_scale=AUTO)
    assert len(calls) == 1  # enlarged to scale 1 as ever, one pass
    big = synthetic_fundus((1200, 1200), seed=2)
    calls.clear()
    seg = pipeline.segment_image(model, big["image"], n=1, fov=big["fov"],
                                 analysis_scale=AUTO)
    assert len(calls) == 2 and seg.scale_choice is not None
    assert 1.0 <= seg.scale_choice.scale <= TARGET_VESSEL_WIDTH
    calls.clear()
    seg = pipeline.segment_image(model, big["image"], n=1, fov=big["fov"], analysis_scale=2.0)
    assert len(calls) == 1 and seg.scale_choice.scale == pytest.approx(2.0)
    assert seg.scale_choice.note == ""


def test_drive_main_calibre_constant(drive_dir) -> None:
    """DRIVE_MAIN_CALIBRE_PX is what the tracings of DRIVE's training folder measure."""
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.analysis.scale_rule import DRIVE_MAIN_CALIBRE_PX
    from vesselflow.vessel.data.drive import drive_records

    calibres = [main_vessel_calibre(read_mask(r["label"]))
                for split in ("train", "val") for r in drive_records(drive_dir, split)]
    assert len(calibres) == 20
    assert float(np.median(calibres)) == pytest.approx(DRIVE_MAIN_CALIBRE_PX, abs=0.1)


def test_the_target_width_users_read_is_the_rule_s() -> None:
    """The CLI help, the app's help and docs/CLI.md state auto's target width: the constant's."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    said = f"{TARGET_VESSEL_WIDTH:g}x"
    for rel in ("vesselflow/cli/segment.py", "vesselflow/app/segmenting.py", "docs/CLI.md"):
        assert said in (root / rel).read_text(), f"{rel} does not state {said}"
