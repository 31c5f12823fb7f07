"""What the pages analyse: uploads decoded in memory, the bundled examples, DRIVE cases.

Nothing here writes to disk: uploads are decoded from memory and results live in Streamlit's
in-memory caches.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import streamlit as st

from vesselflow.app.config import MAX_PIXELS, set5_files
from vesselflow.app.guard import AppError
from vesselflow.io.images import IMAGE_SUFFIXES


@dataclass
class InputImage:
    """A decoded input: ``key`` identifies its content (sha256), ``notes`` warn the user."""

    name: str
    key: str
    image: np.ndarray
    notes: tuple[str, ...] = ()
    label: np.ndarray | None = None
    fov: np.ndarray | None = None
    label2: np.ndarray | None = None


def _format_notes(data: bytes) -> list[str]:
    """Friendly notes about how the reader converted an upload (header only)."""
    from vesselflow.io.images import conversions

    found = conversions(data)
    notes = []
    if "16-bit" in found:
        notes.append("16-bit image: intensities were scaled from 0–65535 to 0–1 (no "
                     "contrast stretching), so a dark photograph stays dark.")
    if "alpha" in found:
        notes.append("The image has an alpha (transparency) channel: transparent areas were "
                     "made black, like the surround of a fundus photograph.")
    return notes


@st.cache_data(max_entries=32, show_spinner=False)
def decode_upload(data: bytes, name: str) -> InputImage:
    """Decode uploaded bytes (any format vesselflow reads); ImageReadError on bad files."""
    from vesselflow.io.images import read_image_bytes

    image = read_image_bytes(data, name, max_pixels=MAX_PIXELS)
    notes = _format_notes(data)
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1],
                                                                         image[..., 2]):
        notes.append("Grayscale image: the models were trained on colour fundus photographs "
                     "(vessel contrast is mostly in the green channel), so results on a "
                     "grayscale image are less reliable.")
    h, w = image.shape[:2]
    if min(h, w) < 128:
        notes.append(f"Very small image ({w}×{h} px): fine vessels cannot be resolved; "
                     "results are unreliable.")
    return InputImage(name, hashlib.sha256(data).hexdigest(), image, tuple(notes))


EXAMPLES = {
    "retina": "Fundus photograph (scikit-image example, public domain)",
    "synthetic": "Synthetic fundus with known vessels",
}


@st.cache_data(max_entries=4, show_spinner=False)
def example_image(which: str, seed: int = 3) -> InputImage:
    """A bundled example: scikit-image's retina photo or a synthetic fundus with its label."""
    if which == "retina":
        from skimage.data import retina

        image = np.asarray(retina(), dtype=np.float32) / 255.0  # 1411 x 1411, rescaled later
        return InputImage("skimage_retina.png", "example:retina", image,
                          ("scikit-image's retina example (1411×1411 px, public domain): "
                           "larger than DRIVE, so it is analysed at DRIVE's scale.",))
    if which == "synthetic":
        from vesselflow.vessel.data.synthetic import synthetic_fundus

        d = synthetic_fundus((584, 565), seed=seed)
        return InputImage(f"synthetic_{seed}.png", f"example:synthetic:{seed}", d["image"],
                          ("A cartoon fundus drawn by vesselflow with a known vessel map "
                           "(open the Evaluate page to score the model on it).",),
                          label=d["label"], fov=d["fov"])
    raise ValueError(f"unknown example {which!r}")


@st.cache_data(max_entries=32, show_spinner=False)
def decode_mask(data: bytes, name: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode an uploaded tracing or FOV mask (bool, must have the image's size)."""
    from vesselflow.io.masks import read_mask_bytes

    return read_mask_bytes(data, name, shape=shape, max_pixels=MAX_PIXELS)


@st.cache_data(max_entries=2, show_spinner=False)
def drive_test_ids(root: str) -> list[str]:
    """Ids of DRIVE's 20 test images (DatasetLayoutError when the copy is incomplete)."""
    from vesselflow.vessel.data.drive import drive_records

    return [r["id"] for r in drive_records(root, "test")]


@st.cache_data(max_entries=4, show_spinner="Reading the DRIVE image…")
def drive_case(root: str, case_id: str) -> InputImage:
    """A DRIVE test image with its official FOV mask and both observers' tracings."""
    from vesselflow.io.images import read_image_bytes
    from vesselflow.io.masks import read_mask
    from vesselflow.vessel.data.drive import drive_records

    record = next(r for r in drive_records(root, "test") if r["id"] == case_id)
    data = Path(record["image"]).read_bytes()
    image = read_image_bytes(data, record["image"])
    shape = image.shape[:2]
    label2 = read_mask(record["label2"], shape=shape) if "label2" in record else None
    return InputImage(Path(record["image"]).name, hashlib.sha256(data).hexdigest(), image,
                      (), label=read_mask(record["label"], shape=shape),
                      fov=read_mask(record["fov"], shape=shape), label2=label2)


@st.cache_data(max_entries=8, show_spinner=False)
def sr_example_image(key: str) -> InputImage:
    """A bundled SR example (see :func:`sr_examples`) as an InputImage."""
    from vesselflow.io.images import read_image_bytes

    if key == "synthetic":
        from vesselflow.vessel.data.synthetic import synthetic_fundus

        image = synthetic_fundus((256, 256), seed=3)["image"]
        image = np.round(image * 255) / 255  # exactly 8-bit, like every photograph
        return InputImage("synthetic_fundus.png", "example:sr:synthetic", image.astype(
            np.float32), ("A cartoon fundus drawn by vesselflow: smooth, so bicubic already "
                          "does well on it.",))
    name = key.removeprefix("set5:")
    path = set5_files().get(name)
    if path is None:
        raise AppError(f"The example image {name!r} is not available any more.")
    data = path.read_bytes()
    image = read_image_bytes(data, path.name)
    h, w = image.shape[:2]
    return InputImage(path.name, hashlib.sha256(data).hexdigest(), image,
                      (f"Set5 *{name}* ({w}×{h} px), a standard super-resolution benchmark "
                       "image.",))


@st.cache_data(max_entries=16, show_spinner=False)
def decode_sr_upload(data: bytes, name: str) -> InputImage:
    """Decode an upload for super-resolution (any RGB image; ImageReadError on bad files)."""
    from vesselflow.io.images import read_image_bytes

    image = read_image_bytes(data, name, max_pixels=MAX_PIXELS)
    notes = _format_notes(data)
    if np.array_equal(image[..., 0], image[..., 1]) and np.array_equal(image[..., 1],
                                                                         image[..., 2]):
        notes.append("Grayscale image: it is enlarged as an RGB image with three equal "
                     "channels; the models were trained on colour photographs.")
    return InputImage(name, hashlib.sha256(data).hexdigest(), image, tuple(notes))


def stem(name: str) -> str:
    """A file name without its image suffix (the id of its outputs)."""
    base = Path(name).name
    for suffix in sorted(IMAGE_SUFFIXES, key=len, reverse=True):  # .nii.gz before .gz
        if base.lower().endswith(suffix):
            return base[: -len(suffix)] or "image"
    return base or "image"
