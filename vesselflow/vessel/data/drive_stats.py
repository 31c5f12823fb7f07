"""DRIVE's FOV channel statistics: the target of the ``fov-standardise`` input normalisation.

Computed once from DRIVE's training-folder images and stored with the package
(:data:`vesselflow.vessel.preprocess.normalise.STATS_PATH`) by ``vesselflow drive-stats``, so
inference never needs DRIVE; :mod:`vesselflow.vessel.preprocess.normalise` applies them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from vesselflow.io.images import read_image
from vesselflow.io.masks import read_mask
from vesselflow.vessel.data.drive import drive_records
from vesselflow.vessel.preprocess.normalise import fov_channel_stats


def drive_channel_stats(drive_root: str | Path, split: str = "trainval") -> dict:
    """FOV statistics of DRIVE's training images, with the official FOV masks.

    Returns:
        ``{"mean": [r, g, b], "std": [r, g, b]}`` on 0-1 intensities (average over images of
        the per-image FOV mean and std), plus ``split``, ``n_images`` and ``ids``.
    """
    means, stds, ids = [], [], []
    for rec in drive_records(drive_root, split):
        image = read_image(rec["image"])
        m, s = fov_channel_stats(image, read_mask(rec["fov"], shape=image.shape[:2]))
        means.append(m)
        stds.append(s)
        ids.append(rec["id"])
    return {"mean": np.mean(means, 0).tolist(), "std": np.mean(stds, 0).tolist(),
            "split": split, "n_images": len(ids), "ids": ids,
            "definition": "average over images of the per-image, per-channel mean and std of "
                          "the pixels inside the official FOV mask; intensities in [0, 1]"}
