"""SR datasets: HR images from folders, LR made by the MATLAB bicubic degradation.

Layout expected under a data root (``../shared/data/SR`` in this project)::

    Set5/ Set14/ BSD100/   benchmarks (PNG)
    BSD200/ T91/           training (PNG / BMP)

Any folder of images works the same way, so a user's own images need no conversion.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from vesselflow.io.images import IMAGE_SUFFIXES, read_image
from vesselflow.sr.resize import bicubic_degrade

SR_DATASETS = ("Set5", "Set14", "BSD100", "BSD200", "T91")


def list_sr_datasets(root: str | os.PathLike[str]) -> list[str]:
    """Names from :data:`SR_DATASETS` that exist as folders under ``root``."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"SR data root {root} does not exist")
    return [name for name in SR_DATASETS if (root / name).is_dir()]


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """Sorted image files in ``folder`` (not recursive); error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"SR image folder {folder} does not exist")
    files = sorted(p for p in folder.iterdir()
                   if p.is_file() and p.name.lower().endswith(IMAGE_SUFFIXES))
    if not files:
        raise FileNotFoundError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in {folder}")
    return files


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """An image as uint8 RGB (H, W, 3), read by the one reader
    (:func:`vesselflow.io.images.read_image`, exact for 8-bit files): grey (e.g.
    Set14/bridge.png) is replicated; :class:`~vesselflow.io.errors.ImageReadError` names a
    bad file."""
    return np.round(read_image(path) * 255.0).astype(np.uint8)


GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def is_single_channel(path: str | os.PathLike[str]) -> bool:
    """Whether an image file is stored with one (grey) channel; reads the header only."""
    with Image.open(path) as im:
        return im.mode in GREY_MODES


def to_tensor(img: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 array -> (3, H, W) uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))


def to_image(t: torch.Tensor) -> np.ndarray:
    """(3, H, W) tensor on the 0..255 grid -> (H, W, 3) uint8 array."""
    return t.detach().cpu().clamp(0, 255).round().to(torch.uint8).permute(1, 2, 0).numpy()


class SRBenchmark(Dataset):
    """Full benchmark images: item i is ``(name, hr_cropped, lr)``.

    ``hr_cropped`` (H, W, 3) uint8 is the HR image cropped to a multiple of ``scale`` and
    ``lr`` (H / s, W / s, 3) uint8 its bicubic downscale; both are numpy arrays for the
    metrics (use :func:`to_tensor` for models). Pairs are computed on first access and cached.
    Grey files are replicated to RGB for the models; ``grey[i]`` says which, so the metrics
    can score them on their grey values (``hr[..., 0]``).
    """

    def __init__(self, root: str | os.PathLike[str], name: str, scale: int = 2) -> None:
        self.folder = Path(root) / name
        self.name = name
        self.scale = scale
        self.files = list_images(self.folder)
        self.grey = [is_single_channel(f) for f in self.files]
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[str, np.ndarray, np.ndarray]:
        if i not in self._cache:
            self._cache[i] = bicubic_degrade(read_rgb(self.files[i]), self.scale)
        hr, lr = self._cache[i]
        return self.files[i].stem, hr, lr


def validation_files(root: str | os.PathLike[str], every: int = 25) -> list[Path]:
    """The held-out validation images: every ``every``-th BSD200 image (8 of 200).

    Training never sees them; checkpoints are chosen on them, never on a benchmark set.
    """
    return list_images(Path(root) / "BSD200")[::every]


def center_crop_pair(hr: np.ndarray, lr: np.ndarray, size: int, scale: int
                     ) -> tuple[torch.Tensor, torch.Tensor]:
    """Aligned central crops: HR (3, size, size) and LR (3, size / s, size / s) uint8."""
    p = size // scale
    h, w = lr.shape[:2]
    i, j = max(0, (h - p) // 2), max(0, (w - p) // 2)
    lr_c = lr[i : i + p, j : j + p]
    hr_c = hr[scale * i : scale * (i + p), scale * j : scale * (j + p)]
    return to_tensor(hr_c), to_tensor(lr_c)


class SRPatchDataset(Dataset):
    """Random aligned (HR, LR) training patches with flips and 90-degree rotations.

    Each whole image is degraded once (cached), then patches are cut aligned: the HR patch at
    (s i, s j) and the LR patch at (i, j). Degrading the whole image rather than each patch
    keeps the LR patch free of the bicubic kernel's artificial mirror boundary.

    Args:
        roots: one image folder or several (e.g. ``[root / "T91", root / "BSD200"]``).
        patch_size: HR patch side, a multiple of ``scale``.
        scale: SR factor.
        augment: random horizontal flip and rot90 (the 8 dihedral transforms).
        patches_per_image: how many items each image contributes per epoch.
        exclude: files left out (the held-out validation images).

    Item: ``(hr, lr)`` uint8 tensors (3, P, P) and (3, P / s, P / s). Randomness comes from
    torch's RNG, which DataLoader seeds per worker. Images smaller than a patch are skipped
    (listed in ``skipped``).
    """

    def __init__(self, roots: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                 patch_size: int = 64, scale: int = 2, augment: bool = True,
                 patches_per_image: int = 1, exclude: Sequence[Path] = ()) -> None:
        if patch_size % scale:
            raise ValueError(f"patch_size {patch_size} is not a multiple of scale {scale}")
        if isinstance(roots, (str, os.PathLike)):
            roots = [roots]
        self.patch_size, self.scale, self.augment = patch_size, scale, augment
        self.patches_per_image = patches_per_image
        self.files: list[Path] = []
        self.skipped: list[Path] = []
        left_out = {Path(p).resolve() for p in exclude}
        for folder in roots:
            for f in list_images(folder):
                if f.resolve() in left_out:
                    continue
                try:
                    with Image.open(f) as im:
                        w, h = im.size
                except (UnidentifiedImageError, OSError) as err:
                    raise OSError(f"cannot read image {f}: {err}") from err
                if min(h - h % scale, w - w % scale) < patch_size:
                    self.skipped.append(f)
                else:
                    self.files.append(f)
        if not self.files:
            raise ValueError(f"no image in {[str(r) for r in roots]} is at least "
                             f"{patch_size}x{patch_size}")
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self.files) * self.patches_per_image

    def pair(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Whole (HR cropped, LR) of image k as uint8 tensors (3, H, W), cached."""
        if k not in self._cache:
            hr, lr = bicubic_degrade(read_rgb(self.files[k]), self.scale)
            self._cache[k] = (to_tensor(hr), to_tensor(lr))
        return self._cache[k]

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        hr, lr = self.pair(i % len(self.files))
        p, s = self.patch_size // self.scale, self.scale
        _, h, w = lr.shape
        ti = int(torch.randint(0, h - p + 1, ()))
        tj = int(torch.randint(0, w - p + 1, ()))
        lr_p = lr[:, ti : ti + p, tj : tj + p]
        hr_p = hr[:, s * ti : s * (ti + p), s * tj : s * (tj + p)]
        if self.augment:
            if bool(torch.randint(0, 2, ())):
                lr_p, hr_p = lr_p.flip(-1), hr_p.flip(-1)
            k = int(torch.randint(0, 4, ()))
            lr_p, hr_p = torch.rot90(lr_p, k, (1, 2)), torch.rot90(hr_p, k, (1, 2))
        return hr_p.contiguous(), lr_p.contiguous()
