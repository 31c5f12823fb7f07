"""Figures of ``vesselflow evaluate``: PR curves, sample scatter, reliability, maps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from vesselflow.io.files import atomic_path


def _save(fig: Figure, path: Path) -> None:
    # Plain Figure objects (no pyplot): no global backend switch, so importing this module in
    # Jupyter keeps the inline backend, and nothing is left in pyplot's figure registry.
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=130, bbox_inches="tight", format=path.suffix.lstrip("."))


def iso_f_lines(ax, levels: Sequence[float] = (0.5, 0.6, 0.7, 0.8, 0.9)) -> None:
    """Grey curves of constant F1 in (recall, precision) space."""
    r = np.linspace(0.01, 1, 300)
    for f in levels:
        p = f * r / (2 * r - f)
        ok = (p > 0) & (p <= 1)
        ax.plot(r[ok], p[ok], color="0.85", lw=0.8, zorder=0)
        ax.annotate(f"F={f:.1f}", (r[ok][-1], p[ok][-1]), fontsize=7, color="0.6")


def pr_curve_figure(curves: dict[str, dict], human: dict | None = None,
                    marks: dict[str, tuple[float, float]] | None = None) -> Figure:
    """PR curves (one per model) with iso-F lines, max-F points and the human grader.

    Args:
        curves: name -> pr_curve output plus ``max_f1``.
        human: binary_scores of the second observer, drawn as a black star.
        marks: extra labelled points, label -> (recall, precision), e.g. the a-priori
            threshold's operating point.

    Returns:
        A matplotlib Figure (not registered with pyplot: safe to build in server threads).
    """
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    iso_f_lines(ax)
    for name, c in curves.items():
        ax.plot(c["recall"], c["precision"], lw=1.5, label=f"{name} (max F1 {c['max_f1']:.3f})")
        i = int(np.argmax(c["f1"]))
        ax.plot(c["recall"][i], c["precision"][i], "o", ms=6, color=ax.lines[-1].get_color())
    for label, (r, p) in (marks or {}).items():
        ax.plot(r, p, "X", ms=8, color="tab:red", label=label)
    if human:
        ax.plot(human["recall"], human["precision"], "k*", ms=11,
                label=f"2nd observer (F1 {human['f1']:.3f})")
    ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1),
           title="Precision-recall inside the FOV")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def pr_figure(curves: dict[str, dict], human: dict | None, path: Path) -> None:
    """PR curves (one per model) with iso-F lines, max-F points and the human grader."""
    _save(pr_curve_figure(curves, human), path)


def sample_scatter_figure(points: dict[str, np.ndarray], human_points: np.ndarray | None = None,
                          lims: tuple[float, float] = (0.4, 1), marker_size: float = 4,
                          alpha: float = 0.35) -> Figure:
    """Per-sample (recall, precision) of every image's samples, and the human per image.

    ``points`` maps a name to (k, 2) arrays of (precision, recall); returns a Figure. The
    defaults suit thousands of points (a whole test set); use larger, more opaque markers for
    the few samples of one image.
    """
    fig = Figure(figsize=(5, 5))
    ax = fig.subplots()
    iso_f_lines(ax)
    for name, pts in points.items():
        ax.scatter(pts[:, 1], pts[:, 0], s=marker_size, alpha=alpha, label=f"{name} samples")
    if human_points is not None and len(human_points):
        ax.scatter(human_points[:, 1], human_points[:, 0], marker="*", s=60, c="k",
                   label="2nd observer")
    ax.set(xlabel="recall", ylabel="precision", xlim=lims, ylim=lims,
           title="Individual samples vs the first observer")
    ax.legend(loc="lower left", fontsize=8)
    return fig


def scatter_figure(points: dict[str, np.ndarray], human_points: np.ndarray | None,
                   path: Path) -> None:
    """Per-sample (recall, precision) of every image's samples, and the human per image."""
    _save(sample_scatter_figure(points, human_points), path)


def reliability_diagram(table: dict[str, np.ndarray], ece: float) -> Figure:
    """Reliability diagram of a probability map (expected_calibration_error's table)."""
    fig = Figure(figsize=(4.5, 4.5))
    ax = fig.subplots()
    edges = table["edges"]
    centers = (edges[:-1] + edges[1:]) / 2
    nz = table["count"] > 0
    ax.bar(centers[nz], table["accuracy"][nz], width=np.diff(edges)[nz], edgecolor="k",
           alpha=0.7, label="observed vessel frequency")
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.set(xlabel="predicted probability (mean map)", ylabel="fraction of vessel pixels",
           title=f"Reliability (ECE {ece:.4f})", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    return fig


def reliability_figure(table: dict[str, np.ndarray], ece: float, path: Path) -> None:
    _save(reliability_diagram(table, ece), path)


def maps_figure(image: np.ndarray, mean: np.ndarray, std: np.ndarray, truth: np.ndarray,
                title: str, path: Path) -> None:
    _save(maps_grid(image, mean, std, truth, title), path)


def maps_grid(image: np.ndarray, mean: np.ndarray, std: np.ndarray, truth: np.ndarray,
              title: str) -> Figure:
    """Image, mean of samples, uncertainty (std) and ground truth side by side."""
    fig = Figure(figsize=(14, 4))
    axes = fig.subplots(1, 4)
    for ax, img, name, cmap in zip(
            axes, [image, mean, std, truth], ["image", "mean of samples",
                                              "uncertainty (std)", "1st observer"],
            [None, "gray", "magma", "gray"], strict=True):
        ax.imshow(img, cmap=cmap, vmin=0, vmax=None if cmap is None else (1 if name !=
                  "uncertainty (std)" else 0.5))
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title)
    return fig
