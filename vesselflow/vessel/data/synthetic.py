"""Synthetic fundus images with a known vessel tree, for tests and demos without DRIVE.

The picture is a cartoon of a fundus photograph, good enough to exercise the whole pipeline
(loading, FOV detection, augmentation, training steps, metrics): a reddish-orange disc on
black with darker vignetting toward the rim, a bright optic disc, a darker macula, and a vessel
tree that leaves the optic disc in four arcades and branches recursively, getting thinner at
every branching. Vessels darken the image multiplicatively, most in the green channel (as in
real fundus photographs, where green carries the vessel contrast).

Everything is drawn from ``np.random.default_rng(seed)``, so a seed fixes the output.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage as ndi
from skimage.draw import line

# Per-channel vessel darkening (R, G, B): green carries most of the contrast.
_VESSEL_DARKENING = np.array([0.25, 0.6, 0.45], dtype=np.float32)


def synthetic_fundus(size: tuple[int, int] = (256, 256), seed: int = 0) -> dict[str, np.ndarray]:
    """Draw a fundus-like image with its vessel label and FOV.

    Args:
        size: (H, W) of the output.
        seed: Random seed; equal seeds give identical outputs.

    Returns:
        dict with ``image`` float32 (H, W, 3) in [0, 1], ``label`` bool (H, W) (vessels,
        inside the FOV only) and ``fov`` bool (H, W) (a centred circle).
    """
    h, w = (int(s) for s in size)
    if h < 16 or w < 16:
        raise ValueError(f"size must be at least 16x16, got {size}")
    rng = np.random.default_rng(seed)
    cy, cx = (h - 1) / 2, (w - 1) / 2
    radius = 0.46 * min(h, w)
    unit = radius / 118.0  # 1 at 256x256: step lengths and widths scale with the image
    yy, xx = np.mgrid[:h, :w].astype(np.float32)
    rr = np.hypot(yy - cy, xx - cx) / radius
    fov = rr <= 1.0

    side = 1 if rng.random() < 0.5 else -1  # optic disc right (1) or left (-1) of centre
    disc_y = cy + rng.normal(0, 0.04) * radius
    disc_x = cx + side * 0.55 * radius
    macula_x = cx - side * 0.12 * radius

    widths = _vessel_tree(rng, (h, w), fov, (disc_y, disc_x), side, unit)
    centreline = widths > 0
    # Distance of every pixel to the nearest centreline pixel, and that vessel's half-width.
    dist, (iy, ix) = ndi.distance_transform_edt(~centreline, return_indices=True)
    half = widths[iy, ix] / 2
    label = (dist <= half) & fov
    # Anti-aliased profile for the picture; thin vessels get less contrast, as in photographs.
    profile = np.clip(half + 0.5 - dist, 0.0, 1.0) * (0.45 + 0.55 * np.minimum(half / 2.5, 1.0))

    base = np.array([0.80, 0.38, 0.16], dtype=np.float32) + rng.normal(0, 0.03, 3).astype(
        np.float32
    )
    texture = ndi.gaussian_filter(rng.normal(0, 1, (h, w)).astype(np.float32), 6 * unit)
    texture *= 0.04 / max(float(np.abs(texture).max()), 1e-6)
    vignette = 1.0 - 0.5 * rr**2
    macula = np.exp(-((yy - cy) ** 2 + (xx - macula_x) ** 2) / (2 * (0.14 * radius) ** 2))
    disc = np.exp(-(((yy - disc_y) ** 2 + (xx - disc_x) ** 2) / (2 * (0.09 * radius) ** 2)))
    shade = (vignette - 0.3 * macula + texture)[..., None]
    image = base * shade + np.array([0.2, 0.45, 0.3], dtype=np.float32) * disc[..., None]
    image *= 1.0 - _VESSEL_DARKENING * profile[..., None].astype(np.float32)
    image += rng.normal(0, 0.01, image.shape).astype(np.float32)
    image = np.clip(image, 0.0, 1.0) * fov[..., None]
    return {
        "image": image.astype(np.float32),
        "label": label,
        "fov": fov,
    }


def _vessel_tree(
    rng: np.random.Generator,
    shape: tuple[int, int],
    fov: np.ndarray,
    origin: tuple[float, float],
    side: int,
    unit: float,
) -> np.ndarray:
    """Centreline map (H, W) float32: vessel width (pixels) on centrelines, 0 elsewhere."""
    widths = np.zeros(shape, dtype=np.float32)
    toward_macula = math.pi if side == 1 else 0.0
    # Four arcades: superior/inferior temporal (curving around the macula) and nasal.
    arcades = [
        (toward_macula - side * 1.1, 4.2, side * 0.012),
        (toward_macula + side * 1.1, 4.0, -side * 0.012),
        (toward_macula + math.pi - side * 0.8, 3.2, 0.0),
        (toward_macula + math.pi + side * 0.8, 3.0, 0.0),
    ]
    stack = [
        (origin[0], origin[1], angle + rng.normal(0, 0.1), width * unit, bend, 0)
        for angle, width, bend in arcades
    ]
    h, w = shape
    step = 1.5 * unit
    while stack:
        y, x, angle, width, bend, depth = stack.pop()
        since_branch = 0.0
        while width >= 0.8 * unit:
            angle += bend + rng.normal(0, 0.06)
            ny, nx = y + step * math.sin(angle), x + step * math.cos(angle)
            iy, ix = round(ny), round(nx)
            if not (0 <= iy < h and 0 <= ix < w) or not fov[iy, ix]:
                break
            rows, cols = line(round(y), round(x), iy, ix)
            np.maximum.at(widths, (rows, cols), width)
            y, x = ny, nx
            width *= 0.996
            since_branch += step
            if depth < 5 and since_branch > 18 * unit and rng.random() < 0.06:
                child = width * rng.uniform(0.55, 0.75)
                turn = rng.choice([-1.0, 1.0]) * rng.uniform(0.4, 1.0)
                stack.append((y, x, angle + turn, child, bend * 0.5, depth + 1))
                width *= 0.88  # the parent loses calibre at a branching (Murray's law)
                since_branch = 0.0
    return widths
