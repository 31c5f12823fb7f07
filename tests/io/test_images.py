"""vesselflow.io.images: every supported format reads, every bad input is a clear ImageReadError."""

from __future__ import annotations

import struct
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vesselflow.io.errors import DatasetLayoutError, ImageReadError
from vesselflow.io.images import read_image, read_image_bytes
from vesselflow.io.masks import read_mask, read_mask_bytes

RNG = np.random.default_rng(0)
RGB8 = (RNG.random((40, 50, 3)) * 255).astype(np.uint8)
GRAY16 = (RNG.random((40, 50)) * 65535).astype(np.uint16)


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A valid PNG signature + IHDR claiming width x height, with a token IDAT."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", ihdr)
        + _png_chunk(b"IDAT", zlib.compress(b"\0" * 16))
        + _png_chunk(b"IEND", b"")
    )


def _write_dicom(path: Path, pixels: np.ndarray, **attrs: object) -> None:
    pytest.importorskip("pydicom", reason="pydicom not installed")
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns = pixels.shape[:2]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    for key, value in attrs.items():
        setattr(ds, key, value)
    ds.PixelData = pixels.astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _check_rgb(img: np.ndarray, shape: tuple[int, int]) -> None:
    assert img.shape == (*shape, 3)
    assert img.dtype == np.float32
    assert 0.0 <= img.min() and img.max() <= 1.0


# ----------------------------------------------------------------------------- good inputs
@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_rgb_formats(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"rgb{suffix}"
    Image.fromarray(RGB8).save(path)
    img = read_image(path)
    _check_rgb(img, (40, 50))
    tol = 0.2 if suffix == ".jpg" else 1e-6  # JPEG is lossy
    assert np.abs(img - RGB8 / 255.0).mean() < tol


def test_lzw_tiff(tmp_path: Path) -> None:
    path = tmp_path / "lzw.tif"
    Image.fromarray(RGB8).save(path, compression="tiff_lzw")
    np.testing.assert_allclose(read_image(path), RGB8 / 255.0, atol=1e-6)


def test_gif_palette(tmp_path: Path) -> None:
    path = tmp_path / "a.gif"
    Image.fromarray(RGB8).convert("P").save(path)
    _check_rgb(read_image(path), (40, 50))


def test_grayscale_replicated(tmp_path: Path) -> None:
    path = tmp_path / "gray.png"
    Image.fromarray(RGB8[..., 0]).save(path)
    img = read_image(path)
    _check_rgb(img, (40, 50))
    np.testing.assert_array_equal(img[..., 0], img[..., 1])
    np.testing.assert_allclose(img[..., 2], RGB8[..., 0] / 255.0, atol=1e-6)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_gray_full_precision(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"g16{suffix}"
    Image.fromarray(GRAY16).save(path)
    img = read_image(path)
    _check_rgb(img, (40, 50))
    np.testing.assert_allclose(img[..., 0], GRAY16 / 65535.0, atol=1e-6)


def test_sixteen_bit_rgb_tiff(tmp_path: Path) -> None:
    tifffile = pytest.importorskip("tifffile")
    rgb16 = (RNG.random((40, 50, 3)) * 65535).astype(np.uint16)
    path = tmp_path / "rgb16.tif"
    tifffile.imwrite(path, rgb16, photometric="rgb")
    img = read_image(path)
    _check_rgb(img, (40, 50))
    # Pillow keeps 8 bits per channel of 48-bit RGB: within one 8-bit step.
    np.testing.assert_allclose(img, rgb16 / 65535.0, atol=1.01 / 255)


def test_rgba_composited_on_black(tmp_path: Path) -> None:
    alpha = np.zeros((40, 50), np.uint8)
    alpha[:, 25:] = 255
    path = tmp_path / "rgba.png"
    Image.fromarray(np.dstack([RGB8, alpha])).save(path)
    img = read_image(path)
    _check_rgb(img, (40, 50))
    assert img[:, :25].max() == 0.0  # transparent -> black
    np.testing.assert_allclose(img[:, 25:], RGB8[:, 25:] / 255.0, atol=1e-6)


def test_dicom_with_rescale(tmp_path: Path) -> None:
    path = tmp_path / "x.dcm"
    _write_dicom(path, GRAY16, RescaleSlope=2, RescaleIntercept=-100)
    img = read_image(path)
    _check_rgb(img, (40, 50))
    expected = (GRAY16 - GRAY16.min()) / (GRAY16.max() - GRAY16.min())
    np.testing.assert_allclose(img[..., 0], expected, atol=1e-6)
    # Same from memory, and found by content even without the .dcm name.
    np.testing.assert_array_equal(read_image_bytes(path.read_bytes(), "upload"), img)


def test_dicom_monochrome1_inverted(tmp_path: Path) -> None:
    path = tmp_path / "m1.dcm"
    _write_dicom(path, GRAY16, PhotometricInterpretation="MONOCHROME1")
    img = read_image(path)
    expected = 1.0 - (GRAY16 - GRAY16.min()) / (GRAY16.max() - GRAY16.min())
    np.testing.assert_allclose(img[..., 0], expected, atol=1e-6)


@pytest.mark.parametrize("name", ["x.nii", "x.nii.gz"])
def test_nifti_2d(tmp_path: Path, name: str) -> None:
    nib = pytest.importorskip("nibabel")
    data = GRAY16.astype(np.float32)[:, :, None]  # singleton third axis is squeezed
    path = tmp_path / name
    nib.save(nib.Nifti1Image(data, np.eye(4)), path)
    img = read_image(path)
    _check_rgb(img, (40, 50))
    expected = (GRAY16 - GRAY16.min()) / (GRAY16.max() - GRAY16.min())
    np.testing.assert_allclose(img[..., 0], expected, atol=1e-6)
    np.testing.assert_array_equal(read_image_bytes(path.read_bytes(), name), img)


def test_read_image_bytes_png() -> None:
    import io

    buf = io.BytesIO()
    Image.fromarray(RGB8).save(buf, format="PNG")
    np.testing.assert_allclose(read_image_bytes(buf.getvalue(), "up.png"), RGB8 / 255.0)


# ----------------------------------------------------------------------------- masks
def test_mask_palette_index_space(tmp_path: Path) -> None:
    """DRIVE 2nd_manual style: mode P, indices {0, 1}, palette greys {3, 253}."""
    index = np.zeros((40, 50), np.uint8)
    index[10:20, 5:45] = 1
    img = Image.fromarray(index, mode="P")
    img.putpalette([4, 2, 4, 252, 254, 252] + [0] * 762)
    path = tmp_path / "manual2.gif"
    img.save(path)
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(read_mask(path), index > 0)


@pytest.mark.parametrize("values", [(0, 255), (0, 1), (3, 253)])
def test_mask_two_levels(tmp_path: Path, values: tuple[int, int]) -> None:
    truth = RNG.random((40, 50)) > 0.7
    path = tmp_path / "m.png"
    Image.fromarray(np.where(truth, values[1], values[0]).astype(np.uint8)).save(path)
    mask = read_mask(path, shape=(40, 50))
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, truth)
    np.testing.assert_array_equal(read_mask_bytes(path.read_bytes(), "m.png"), truth)


def test_mask_jpeg_thresholded_at_half(tmp_path: Path) -> None:
    truth = np.zeros((64, 64), bool)
    truth[16:48, 16:48] = True
    path = tmp_path / "m.jpg"
    Image.fromarray(truth.astype(np.uint8) * 255).save(path, quality=75)
    assert (read_mask(path) == truth).mean() > 0.99


def test_mask_all_background_is_allowed(tmp_path: Path) -> None:
    path = tmp_path / "empty_label.png"
    Image.fromarray(np.zeros((8, 9), np.uint8)).save(path)
    assert not read_mask(path).any()


def test_mask_size_mismatch(tmp_path: Path) -> None:
    path = tmp_path / "label.png"
    Image.fromarray(np.zeros((40, 50), np.uint8)).save(path)
    with pytest.raises(ImageReadError, match=r"label\.png.*50x40.*60x30"):
        read_mask(path, shape=(30, 60))


# ----------------------------------------------------------------------------- bad inputs
def _bad_files(tmp_path: Path) -> dict[str, Path]:
    files: dict[str, Path] = {}
    good_png, good_jpg = tmp_path / "good.png", tmp_path / "good.jpg"
    Image.fromarray(RGB8).save(good_png)
    Image.fromarray(RGB8).save(good_jpg, quality=90)
    png, jpg = good_png.read_bytes(), good_jpg.read_bytes()
    contents = {
        "truncated.png": png[: len(png) // 2],
        "truncated.jpg": jpg[: len(jpg) // 2],
        "corrupt.png": png[:60] + b"\xff" * 40 + png[100:],
        "corrupt.jpg": jpg[:2] + b"\x00" * 60 + jpg[62:],
        "notes.png": b"this is a text file, not a picture\n" * 4,
        "empty.png": b"",
        "bomb.png": _png_header_only(100_000, 100_000),
        "volume.nii.gz": b"",  # filled below
    }
    for name, data in contents.items():
        files[name] = tmp_path / name
        files[name].write_bytes(data)
    nib = pytest.importorskip("nibabel")
    nib.save(
        nib.Nifti1Image(RNG.random((10, 12, 5)).astype(np.float32), np.eye(4)),
        files["volume.nii.gz"],
    )
    black = tmp_path / "black.png"
    Image.new("RGB", (30, 20)).save(black)
    files["black.png"] = black
    files["missing.png"] = tmp_path / "missing.png"
    files["folder.png"] = tmp_path / "folder.png"
    files["folder.png"].mkdir()
    return files


_EXPECTED_PROBLEM = {
    "truncated.png": "truncated",
    "truncated.jpg": "truncated",
    "corrupt.png": "corrupt",
    "corrupt.jpg": "corrupt",
    "notes.png": "not a recognised image",
    "empty.png": "empty",
    "bomb.png": "too large",
    "volume.nii.gz": "3-D volume",
    "black.png": "blank",
    "missing.png": "not found",
    "folder.png": "directory",
}


@pytest.mark.parametrize("name", sorted(_EXPECTED_PROBLEM))
def test_bad_input_raises_image_read_error(tmp_path: Path, name: str) -> None:
    path = _bad_files(tmp_path)[name]
    with pytest.raises(ImageReadError) as info:
        read_image(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert name in str(err), str(err)
    assert err.path == str(path)
    assert _EXPECTED_PROBLEM[name] in err.problem, err.problem
    assert str(err) == f"{path}: {err.problem}"


@pytest.mark.parametrize("name", ["truncated.png", "notes.png", "bomb.png", "volume.nii.gz"])
def test_bad_bytes_raise_image_read_error(tmp_path: Path, name: str) -> None:
    path = _bad_files(tmp_path)[name]
    with pytest.raises(ImageReadError, match=rf"^{name}: .*{_EXPECTED_PROBLEM[name]}"):
        read_image_bytes(path.read_bytes(), name)
    with pytest.raises(ImageReadError, match=rf"^{name}: "):
        read_mask_bytes(path.read_bytes(), name)


def test_empty_bytes() -> None:
    with pytest.raises(ImageReadError, match=r"up\.png: file is empty"):
        read_image_bytes(b"", "up.png")


def test_max_pixels_checked_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    Image.fromarray(RGB8).save(path)
    with pytest.raises(ImageReadError, match=r"big\.png: image is too large: 50x40"):
        read_image(path, max_pixels=1000)
    # A header claiming 12000 x 10000 (below Pillow's own bomb limit) is refused by ours,
    # before the (absent) pixel data is ever decoded.
    claim = tmp_path / "claim.png"
    claim.write_bytes(_png_header_only(12_000, 10_000))
    with pytest.raises(ImageReadError, match="exceeds the limit of 100,000,000"):
        read_image(claim)


def test_dicom_errors(tmp_path: Path) -> None:
    multi = tmp_path / "multi.dcm"
    frames = np.zeros((3, 8, 8), np.uint16)
    frames[:, 2:4] = 7
    _write_dicom(multi, frames.reshape(24, 8), NumberOfFrames=3, Rows=8, Columns=8)
    with pytest.raises(ImageReadError, match=r"multi\.dcm: DICOM has 3 frames"):
        read_image(multi)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"definitely not dicom" * 10)
    with pytest.raises(ImageReadError, match=r"junk\.dcm"):
        read_image(junk)


def test_animated_gif_rejected(tmp_path: Path) -> None:
    path = tmp_path / "anim.gif"
    frames = [Image.fromarray(RGB8), Image.fromarray(255 - RGB8)]
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with pytest.raises(ImageReadError, match=r"anim\.gif: has 2 frames"):
        read_image(path)


def test_error_is_picklable() -> None:
    import pickle

    err = pickle.loads(pickle.dumps(DatasetLayoutError("a/b", "broken")))
    assert isinstance(err, DatasetLayoutError) and isinstance(err, ImageReadError)
    assert (err.path, err.problem, str(err)) == ("a/b", "broken", "a/b: broken")


def test_dicom_without_pydicom_names_the_file_and_the_extra(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "scan.dcm"
    _write_dicom(path, GRAY16)
    monkeypatch.setitem(sys.modules, "pydicom.pixels", None)  # pydicom 2.x has no .pixels
    with pytest.raises(ImageReadError, match=r"scan\.dcm: reading DICOM needs pydicom >= 3\.0"
                       r".*vesselflow\[dicom\]"):
        read_image(path)
    monkeypatch.setitem(sys.modules, "pydicom", None)  # not installed at all
    with pytest.raises(ImageReadError, match=r"scan\.dcm: reading DICOM needs pydicom, which "
                       r"is not installed: pip install 'vesselflow\[dicom\]'"):
        read_image(path)
