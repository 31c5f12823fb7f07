"""vesselflow.vessel.data.drive on the real DRIVE copy in ../shared/data: splits, MONAI loading,
second-observer sanity figure, verification and prepare_drive from folders and zips."""

from __future__ import annotations

import importlib.util
import json
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vesselflow.io.errors import DatasetLayoutError, ImageReadError
from vesselflow.vessel.data.drive import (
    ALL_TRAINING_IDS,
    TEST_IDS,
    TRAIN_IDS,
    VAL_IDS,
    DriveDataset,
    drive_records,
    find_drive_root,
    load_drive_transform,
)
from vesselflow.vessel.data.prepare import prepare_drive, verify_drive

REPO = Path(__file__).resolve().parents[2]


def _link_tree(src: Path, dst: Path, skip: Callable[[str], bool] = lambda rel: False) -> Path:
    """Mirror src's training/ and test/ files into dst as symlinks (cheap, editable copy)."""
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src).as_posix()
        if path.is_file() and rel.startswith(("training/", "test/")) and not skip(rel):
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.symlink_to(path.resolve())
    return dst


def _zip_tree(
    src: Path, archive: Path, prefix: str, top: str, replace: dict[str, bytes] | None = None
) -> Path:
    """Zip src/top/** as prefix + top/** (stored: the TIFFs/GIFs are compressed already),
    with the contents of the relative paths in ``replace`` swapped for the given bytes."""
    replace = replace or {}
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        for path in sorted((src / top).rglob("*")):
            rel = path.relative_to(src).as_posix()
            if rel in replace:
                zf.writestr(prefix + rel, replace[rel])
            elif path.is_file():
                zf.write(path, prefix + rel)
    return archive


# ----------------------------------------------------------------------------- splits, records
def test_split_ids() -> None:
    assert len(VAL_IDS) == 4 and len(TRAIN_IDS) == 16 and TEST_IDS == tuple(range(1, 21))
    assert not set(VAL_IDS) & set(TRAIN_IDS)
    assert sorted(VAL_IDS + TRAIN_IDS) == list(ALL_TRAINING_IDS)


@pytest.mark.parametrize(
    ("split", "count"), [("train", 16), ("val", 4), ("trainval", 20), ("test", 20)]
)
def test_records(drive_dir: Path, split: str, count: int) -> None:
    records = drive_records(drive_dir, split)
    assert len(records) == count
    keys = {"id", "image", "label", "fov"} | ({"label2"} if split == "test" else set())
    for rec in records:
        assert set(rec) == keys
        assert all(Path(rec[k]).is_file() for k in keys - {"id"})
    assert (
        records[0]["id"]
        == {
            "train": "22_training",
            "val": "21_training",
            "trainval": "21_training",
            "test": "01_test",
        }[split]
    )


def test_val_disjoint_from_train(drive_dir: Path) -> None:
    train = {r["id"] for r in drive_records(drive_dir, "train")}
    val = {r["id"] for r in drive_records(drive_dir, "val")}
    assert not train & val
    assert train | val == {r["id"] for r in drive_records(drive_dir, "trainval")}


def test_unknown_split(drive_dir: Path) -> None:
    with pytest.raises(ValueError, match="split must be one of"):
        drive_records(drive_dir, "validation")


def test_find_drive_root_with_top_folder(drive_dir: Path, tmp_path: Path) -> None:
    _link_tree(drive_dir, tmp_path / "download" / "DRIVE")
    assert find_drive_root(tmp_path / "download") == tmp_path / "download" / "DRIVE"
    assert find_drive_root(drive_dir) == drive_dir
    assert len(drive_records(tmp_path / "download", "test")) == 20
    with pytest.raises(DatasetLayoutError, match="no DRIVE training/ or test/ folder"):
        find_drive_root(tmp_path / "download" / "DRIVE" / "training" / "images")


def test_records_missing_file_is_clear(drive_dir: Path, tmp_path: Path) -> None:
    root = _link_tree(drive_dir, tmp_path / "d", skip=lambda rel: rel.endswith("27_manual1.gif"))
    assert len(drive_records(root, "train")) == 16  # 27 is a validation image
    with pytest.raises(DatasetLayoutError, match=r"27_manual1"):
        drive_records(root, "val")


# ----------------------------------------------------------------------------- MONAI loading
def test_dataset_shapes_and_values(drive_dir: Path) -> None:
    ds = DriveDataset(drive_dir, "val")
    assert len(ds) == 4
    for item in ds:
        assert item["id"].endswith("_training")
        assert item["image"].shape == (3, 584, 565) and item["image"].dtype == torch.float32
        assert 0.0 <= item["image"].min() and item["image"].max() <= 1.0
        for key in ("label", "fov"):
            assert item[key].shape == (1, 584, 565) and item[key].dtype == torch.float32
            assert set(item[key].unique().tolist()) == {0.0, 1.0}
        assert 0.6 < item["fov"].mean() < 0.75  # ~227k of 330k pixels
        assert 0.05 < item["label"].mean() < 0.2


def test_transform_matches_direct_reading(drive_dir: Path) -> None:
    """Not transposed, 0..255 -> 0..1, {0,255} labels and mode-P 2nd_manual binarised right."""
    rec = drive_records(drive_dir, "test")[0]
    out = load_drive_transform(rec.keys() - {"id"})(rec)
    rgb = np.asarray(Image.open(rec["image"]), dtype=np.float32) / 255.0
    np.testing.assert_allclose(out["image"].numpy(), rgb.transpose(2, 0, 1), atol=1e-6)
    label = np.asarray(Image.open(rec["label"])) > 127
    np.testing.assert_array_equal(out["label"][0].numpy() > 0.5, label)
    second = Image.open(rec["label2"])
    assert second.mode == "P"
    np.testing.assert_array_equal(out["label2"][0].numpy() > 0.5, np.asarray(second) > 0)
    assert out["id"] == "01_test"


def test_second_observer_agreement(drive_dir: Path) -> None:
    """Published DRIVE sanity figure: 94.73% accuracy of observer 2 vs 1 inside the FOV."""
    ds = DriveDataset(drive_dir, "test", cache=False)
    agree = total = 0
    for item in ds:
        fov = item["fov"] > 0.5
        agree += int(((item["label"] == item["label2"]) & fov).sum())
        total += int(fov.sum())
    accuracy = agree / total
    assert abs(accuracy - 0.9473) < 0.0005, f"2nd observer accuracy {accuracy:.5f}"


def test_dataset_with_train_augment(drive_dir: Path) -> None:
    from vesselflow.vessel.data.augment import TrainAugment

    ds = DriveDataset(drive_dir, "val", transform=TrainAugment(patch_size=64, seed=0))
    a, b = ds[0], ds[0]
    assert a["image"].shape == (3, 64, 64) and a["label"].shape == (1, 64, 64)
    assert not torch.equal(a["image"], b["image"])  # augmentation runs after the cache
    full = ds._cache[0]  # the cache holds the deterministic full-size load
    assert full["image"].shape == (3, 584, 565)


# ----------------------------------------------------------------------------- verification
def test_verify_drive_manifest_matches_sha256sums(drive_dir: Path) -> None:
    manifest = verify_drive(drive_dir)
    assert manifest["n_files"] == 140
    assert set(manifest["counts"].values()) == {20} and len(manifest["counts"]) == 7
    assert manifest["image_size"] == {"height": 584, "width": 565}
    sums = drive_dir / "SHA256SUMS"
    if sums.is_file():
        expected = {
            line.split()[1].removeprefix("./"): line.split()[0]
            for line in sums.read_text().splitlines()
            if line.strip()
        }
        got = {rel: entry["sha256"] for rel, entry in manifest["files"].items()}
        assert got == expected


def test_verify_drive_reports_bad_files(drive_dir: Path, tmp_path: Path) -> None:
    root = _link_tree(
        drive_dir,
        tmp_path / "d",
        skip=lambda rel: rel in ("test/images/05_test.tif", "training/mask/30_training_mask.gif"),
    )
    with pytest.raises(DatasetLayoutError, match=r"missing .*30_training_mask.*05_test"):
        verify_drive(root)
    # Put back a wrong-size image and an unreadable mask: both are reported, by name.
    Image.new("RGB", (100, 80), "red").save(root / "test/images/05_test.tif")
    (root / "training/mask/30_training_mask.gif").write_bytes(b"GIF89a broken")
    with pytest.raises(ImageReadError) as info:
        verify_drive(root)
    message = str(info.value)
    assert "2 bad DRIVE file(s)" in message
    assert "05_test.tif: size 100x80, expected DRIVE's 565x584" in message
    assert "30_training_mask.gif" in message


# ----------------------------------------------------------------------------- prepare_drive
def _check_prepared(dest: Path, manifest: dict) -> None:
    for sub in (
        "training/images",
        "training/1st_manual",
        "training/mask",
        "test/images",
        "test/1st_manual",
        "test/2nd_manual",
        "test/mask",
    ):
        assert len(list((dest / sub).iterdir())) == 20, sub
    on_disk = json.loads((dest / "manifest.json").read_text())
    assert on_disk == manifest
    assert on_disk["n_files"] == 140 and "source" in on_disk
    assert verify_drive(dest)["files"] == manifest["files"]
    assert not [p for p in dest.parent.iterdir() if p.name.startswith(".")]  # temp removed


def test_prepare_from_folder(drive_dir: Path, tmp_path: Path) -> None:
    messages: list[str] = []
    manifest = prepare_drive(drive_dir, tmp_path / "out" / "DRIVE", log=messages.append)
    _check_prepared(tmp_path / "out" / "DRIVE", manifest)
    assert any("verified 140/140" in m for m in messages)
    with pytest.raises(DatasetLayoutError, match="not empty"):
        prepare_drive(drive_dir, tmp_path / "out" / "DRIVE")
    again = prepare_drive(drive_dir, tmp_path / "out" / "DRIVE", overwrite=True)
    assert again["files"] == manifest["files"]


def test_prepare_from_folder_with_top_drive(drive_dir: Path, tmp_path: Path) -> None:
    _link_tree(drive_dir, tmp_path / "download" / "DRIVE")
    manifest = prepare_drive(tmp_path / "download", tmp_path / "out")
    _check_prepared(tmp_path / "out", manifest)


def test_prepare_from_training_and_test_zips(drive_dir: Path, tmp_path: Path) -> None:
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    train_zip = _zip_tree(drive_dir, downloads / "training.zip", "", "training")
    test_zip = _zip_tree(drive_dir, downloads / "test.zip", "", "test")
    manifest = prepare_drive([train_zip, test_zip], tmp_path / "out1")
    _check_prepared(tmp_path / "out1", manifest)
    # The folder holding both zips works too.
    manifest = prepare_drive(downloads, tmp_path / "out2")
    _check_prepared(tmp_path / "out2", manifest)


def test_prepare_from_single_drive_zip(drive_dir: Path, tmp_path: Path) -> None:
    archive = _zip_tree(drive_dir, tmp_path / "DRIVE.zip", "DRIVE/", "training")
    with zipfile.ZipFile(archive, "a") as zf:
        for path in sorted((drive_dir / "test").rglob("*")):
            if path.is_file():
                zf.write(path, "DRIVE/" + path.relative_to(drive_dir).as_posix())
        zf.writestr("__MACOSX/DRIVE/training/._junk", b"resource fork")
    manifest = prepare_drive(archive, tmp_path / "out")
    _check_prepared(tmp_path / "out", manifest)


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data:UserWarning")  # the fake TIFF below
def test_prepare_bad_source_fails_clearly(drive_dir: Path, tmp_path: Path) -> None:
    src = _link_tree(drive_dir, tmp_path / "src", skip=lambda rel: rel.startswith("test/images/"))
    (src / "test" / "images").mkdir()
    with pytest.raises(DatasetLayoutError) as info:
        prepare_drive(src, tmp_path / "out")
    message = str(info.value)
    assert "missing test/images/01_test" in message and "test/images: 0" in message
    assert not (tmp_path / "out").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # temp removed
    # From archives: the message names the archive, not the temporary extraction folder.
    train_zip = _zip_tree(drive_dir, tmp_path / "training.zip", "", "training")
    with pytest.raises(DatasetLayoutError, match=r"training\.zip.*no DRIVE test/ folder"):
        prepare_drive(train_zip, tmp_path / "out")
    test_zip = _zip_tree(
        drive_dir, tmp_path / "test.zip", "", "test", {"test/images/01_test.tif": b"II*\0 bad"}
    )
    with pytest.raises(DatasetLayoutError) as info:
        prepare_drive([train_zip, test_zip], tmp_path / "out")
    message = str(info.value)
    assert "training.zip + test.zip:test/images/01_test.tif" in message, message
    assert ".tmp-" not in message
    assert not (tmp_path / "out").exists()
    not_zip = tmp_path / "notzip.zip"
    not_zip.write_text("not a zip")
    with pytest.raises(DatasetLayoutError, match="not a folder or a zip"):
        prepare_drive(not_zip, tmp_path / "out")


def test_prepare_cli(drive_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location(
        "prepare_drive_cli", REPO / "data_prep" / "prepare_drive.py"
    )
    assert spec is not None and spec.loader is not None
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    assert cli.main([str(drive_dir), "--out", str(tmp_path / "DRIVE")]) == 0
    out = capsys.readouterr().out
    assert "DRIVE ready" in out and "test/2nd_manual" in out
    assert cli.main([str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")]) == 2
    assert "error:" in capsys.readouterr().err
