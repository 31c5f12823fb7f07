"""The evidence a review verdict rests on, all at the analysis scale (the image resized to
DRIVE's FOV diameter), none of it the photo's colour.

* **input** (:func:`input_features`, on the photo at the analysis scale): FOV roundness (only
  to tell a photo with no fundus field of view, never a range); fine-scale noise and
  fine detail of the green channel, each *relative to its vessel-scale contrast*, so a colour
  cast, a gain, uneven illumination or the model's input normalisation (which rescales each
  channel) leaves them unchanged; and the fraction of the FOV whose green channel is clipped
  (black or saturated: detail that no normalisation brings back).
* **map** (:func:`map_features`, on the mean map, from the per-image summary
  :class:`vesselflow.vessel.analysis.summary.ImageSummary`):

  - ``agreement``: the mean pairwise Dice between samples, pooled over pairs
    (sum over pairs of 2|Si & Sj| / sum over pairs of (|Si| + |Sj|)). For binary samples it
    follows from the per-pixel counts c = n * mean exactly:
    (sum c(c - 1)) / ((n - 1) sum c), whose expectation, sum p^2 / sum p, does not depend on
    the number of samples n (needs n >= 2). For the factored model (whose samples are
    independent per pixel, not vessel maps) the same formula on its exact probability map q
    (n -> infinity: sum q^2 / sum q) measures how decided the probability map is.
  - ``mask_agreement``: the expected Dice of a sample with the thresholded mean (the mask),
    2 sum_{mask} mean / (sum mean + |mask|): linear in the mean, so its expectation is that of
    one sample whatever n is (needs n >= 2: one sample *is* its mask); for the factored model,
    the probability map's agreement with its own mask.
  - ``density`` (mask fraction of the FOV) and ``fragmentation`` (connected components of the
    mask per 1000 px of its skeleton).

Agreement cannot be measured from one sample: at n = 1 the two agreement features are absent
and the verdict says so (:mod:`vesselflow.vessel.review.verdict`).
"""

from __future__ import annotations

import numpy as np

from vesselflow.vessel.preprocess.fov import fov_roundness

INPUT_FEATURES = ("fov_roundness", "noise", "detail", "clipped")
MAP_FEATURES = ("agreement", "mask_agreement", "density", "fragmentation")
AGREEMENT_FEATURES = ("agreement", "mask_agreement")
"""The features that need two or more samples (or the factored model's probability map)."""
FEATURES = INPUT_FEATURES + MAP_FEATURES
"""Every feature a record or a verdict holds, in report order."""

CLIP_LOW, CLIP_HIGH = 2 / 255, 253 / 255
"""Green values at or beyond these count as clipped (black or saturated)."""


def input_features(image: np.ndarray, fov: np.ndarray) -> dict[str, float]:
    """Input features of an (H, W, 3) [0, 1] photo inside its (H, W) bool FOV.

    Both ratios are over the green channel's *vessel-scale contrast*, the spread of its
    band-pass (Gaussian 2 px minus Gaussian 16 px): gains, colour casts and the model's input
    normalisation scale numerator and denominator alike, and slow illumination changes
    (vignetting, uneven lighting) are removed from both. ``noise``: the robust spread of the
    finest scale (the image minus its 1 px Gaussian); ``detail``: the spread of the 1-3 px
    band, which blur removes first.
    """
    import cv2

    fov = np.asarray(fov, bool)
    g = np.ascontiguousarray(np.asarray(image, np.float32)[..., 1])
    blur = {s: cv2.GaussianBlur(g, (0, 0), s) for s in (1.0, 2.0, 3.0, 16.0)}
    # Away from the FOV edge, whose step would dominate every measure.
    inner = cv2.erode(fov.astype(np.uint8), np.ones((41, 41), np.uint8)) > 0
    if inner.sum() < 100:
        inner = fov
    contrast = float((blur[2.0] - blur[16.0])[inner].std()) + 1e-4
    residual = (g - blur[1.0])[inner]
    gf = g[fov]
    return {
        "fov_roundness": fov_roundness(fov),
        "noise": float(1.4826 * np.median(np.abs(residual - np.median(residual))) / contrast),
        "detail": float((blur[1.0] - blur[3.0])[inner].std() / contrast),
        "clipped": float(np.mean((gf <= CLIP_LOW) | (gf >= CLIP_HIGH))) if gf.size else 1.0,
    }


def agreement(mean: np.ndarray, mask: np.ndarray, n: int | None) -> dict[str, float]:
    """``agreement`` and ``mask_agreement`` of a mean map over the FOV (``mean`` and ``mask``
    already restricted to the FOV, 1-D or any shape). ``n``: samples the mean is over (exact
    counts); None for an exact probability map (the factored model). Empty at n < 2."""
    if n is not None and n < 2:
        return {}
    m = np.asarray(mean, np.float64)
    s1, s2 = float(m.sum()), float(np.square(m).sum())
    if s1 < 1.0:  # not one pixel's worth of vessel in any sample: nothing agrees
        return {"agreement": 0.0, "mask_agreement": 0.0}
    pair = s2 / s1 if n is None else (n * s2 - s1) / ((n - 1) * s1)
    inside = float(m[np.asarray(mask, bool)].sum())
    return {"agreement": float(np.clip(pair, 0.0, 1.0)),
            "mask_agreement": 2.0 * inside / (s1 + int(np.count_nonzero(mask)))}


def map_features(mean: np.ndarray, fov: np.ndarray, mask: np.ndarray, skeleton: np.ndarray,
                 density: float, n: int | None) -> dict[str, float]:
    """Map features of a (H, W) mean map with its bool FOV, mask (inside the FOV) and the
    mask's skeleton; ``density`` is the summary's, ``n`` as :func:`agreement`'s."""
    from skimage.measure import label

    pieces = int(label(mask, connectivity=2).max()) if mask.any() else 0
    length = int(np.count_nonzero(skeleton))
    return {
        **agreement(mean[fov], mask[fov], n),
        "density": float(density),
        # An empty map has no skeleton: it counts as one piece per px.
        "fragmentation": 1000.0 * pieces / length if length else 1000.0,
    }
