"""The generalisation benchmark's conditions and its report (tables, targets, figure).

:mod:`generalisation` (``benchmarks/generalisation.py``) computes the rows; this module names
the conditions and turns a result into Markdown and a PNG. It loads no model.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

HRF_SCALES = ("1", "1.5", "2")
"""The fixed analysis scales HRF is also reported at (``--scales``)."""


def all_conditions(scales: tuple[str, ...] = HRF_SCALES) -> list[str]:
    from vesselflow.vessel.data.corruptions import CORRUPTIONS

    return ["clean", *CORRUPTIONS, "hrf", *(f"hrf@{s}" for s in scales)]


def is_hrf(cond: str) -> bool:
    return cond == "hrf" or cond.startswith("hrf@")


def condition_scale(cond: str) -> str | float:
    """The analysis scale of a condition: ``hrf@S`` at S, every other one at ``auto``."""
    from vesselflow.vessel.analysis.scale_rule import AUTO, parse_scale

    return parse_scale(cond.split("@", 1)[1]) if cond.startswith("hrf@") else AUTO


def condition_label(cond: str, split: str = "test") -> str:
    name = "DRIVE" if split == "test" else f"DRIVE {split}"
    if cond.startswith("hrf@"):
        return f"HRF, scale {cond.split('@', 1)[1]}"
    return {"clean": f"DRIVE {split}", "hrf": "HRF, auto"}.get(cond, f"{name} + {cond}")



def _fmt(v: float, d: int = 3) -> str:
    return "nan" if v != v else f"{v:.{d}f}"


def _half_cell(row: dict) -> str:
    h = row.get("half")
    return f"{h['f1']:.3f} / {h['max_f1']:.3f} / {_fmt(h['auc'])}" if h else ""


def _scales_cell(row: dict) -> str:
    used = [u for u in row.get("analysis_scales", []) if u is not None]
    if not used:
        return ""
    lo, hi = min(used), max(used)
    return f"{lo:.2f}" if hi - lo < 0.005 else f"{lo:.2f}-{hi:.2f}"


def markdown(result: dict) -> str:
    """The table (one line per variant and condition) with its definitions."""
    from vesselflow.vessel.evaluation.labelled import EMPTY_FRACTION

    lines = [
        "# Generalisation benchmark",
        "",
        f"Models {', '.join(f'`{m}`' for m in result['models'])}, `vesselflow segment`'s "
        f"path, {result['samples']} samples, seed "
        f"{result['seed']}, F1 at each model's a-priori threshold ("
        + ", ".join(f"{m} {t:.4f}" for m, t in result["thresholds"].items())
        + "). Pooled over FOV pixels (dataset FOV mask, original size): F1, max-F1, AUC; "
        "per image: mean and min F1, images with F1 < 0.5 / < 0.6, empty maps (mask < "
        f"{100 * EMPTY_FRACTION:.1f}% of the FOV). dF1 = F1 - clean DRIVE F1 of the same "
        "model/variant.",
        "",
        f"Command: `{result['command']}`",
        "",
        "| model | condition | n | F1 | dF1 | max-F1 | AUC | mean img F1 | min img F1 "
        "| F1<0.5 | F1<0.6 | empty | half size: F1 / max-F1 / AUC | scales used | s/img |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    split = result.get("drive_split", "test")
    for variant, rows in result["rows"].items():
        clean = rows.get("clean", {}).get("f1", float("nan"))
        for cond, r in rows.items():
            df = "" if cond == "clean" or is_hrf(cond) else f"{r['f1'] - clean:+.3f}"
            lines.append(
                f"| {variant} | {condition_label(cond, split)} | {r['n_images']} "
                f"| {_fmt(r['f1'])} "
                f"| {df} | {_fmt(r['max_f1'])} | {_fmt(r['auc'])} | {_fmt(r['mean_image_f1'])} "
                f"| {_fmt(r['min_image_f1'])} | {r['n_f1_below_0.5']} | {r['n_f1_below_0.6']} "
                f"| {r['n_empty']} | {_half_cell(r)} | {_scales_cell(r)} "
                f"| {r['seconds_per_image']:.1f} |")
    if result.get("missing"):
        lines += ["", "Not measured yet (`--cached-only`: not in the cache): " + "; ".join(
            f"{v}: {', '.join(cs)}" for v, cs in result["missing"].items()) + "."]
    lines += ["", "s/img: wall seconds per image on the shared 2-core machine under load "
              "(several jobs at once): not a speed measurement (`vesselflow bench` is).",
              "", *targets(result)]
    return "\n".join(lines) + "\n"


def summary(result: dict) -> str:
    """One line per model: clean, corruptions (mean, worst, within 0.03 of clean), HRF."""
    split = result.get("drive_split", "test")
    lines = [f"| model | DRIVE {split} F1 | corrupted: mean F1 | worst (corruption) | within "
             f"0.03 of clean | empty maps | HRF F1 | HRF max-F1 | HRF AUC | HRF min img F1 |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for variant, rows in result["rows"].items():
        corr = {c: r for c, r in rows.items() if c != "clean" and not is_hrf(c)}
        clean, h = rows.get("clean"), rows.get("hrf")
        cells = [variant, _fmt(clean["f1"]) if clean else "–"]
        if corr and clean:
            worst = min(corr, key=lambda c: corr[c]["f1"])
            near = sum(clean["f1"] - r["f1"] <= CORRUPTION_MARGIN for r in corr.values())
            cells += [_fmt(float(np.mean([r["f1"] for r in corr.values()]))),
                      f"{corr[worst]['f1']:.3f} ({worst})", f"{near} of {len(corr)}",
                      str(sum(r["n_empty"] for r in corr.values()))]
        else:
            cells += ["–"] * 4
        half = f" ({h['half']['f1']:.3f} half size)" if h and "half" in h else ""
        cells += ([_fmt(h["f1"]) + half, _fmt(h["max_f1"]), _fmt(h["auc"]),
                   _fmt(h["min_image_f1"]) + f" (n={h['n_images']})"] if h else ["–"] * 4)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join([f"Command: `{result['command']}`; 16 samples unless the command says "
                      "otherwise; per-row details in generalisation.md next to this file.", "",
                      *lines]) + "\n"


HRF_F1_TARGET, HRF_HALF_F1_TARGET, HRF_MIN_IMAGE_F1, CORRUPTION_MARGIN = 0.76, 0.78, 0.68, 0.03
"""The CNF's targets on HRF at ``auto`` (full size, half size, worst image at full size) and
under corruption (the factored model must not regress)."""


def targets(result: dict) -> list[str]:
    """The generalisation targets next to each variant's numbers: met, or missed by."""
    out = ["## Targets (stated for the CNF; shown for every variant)", ""]
    for variant, rows in result["rows"].items():
        bits = []
        if "hrf" in rows:
            h = rows["hrf"]
            for what, f1, target in (("full size", h["f1"], HRF_F1_TARGET),
                                     ("half size", h.get("half", {}).get("f1"),
                                      HRF_HALF_F1_TARGET)):
                if f1 is None:
                    continue
                gap = f1 - target
                bits.append(f"HRF F1 at auto, {what}, {f1:.3f} vs >= {target}: "
                            + ("met" if gap >= 0 else f"missed by {-gap:.3f}"))
            below = h.get("n_f1_below_0.68", h["n_f1_below_0.6"])
            bits.append(f"HRF images below F1 {HRF_MIN_IMAGE_F1} at full size: {below} of "
                        f"{h['n_images']} (target 0; lowest {h['min_image_f1']:.3f})")
        corr = {c: r for c, r in rows.items() if c != "clean" and not is_hrf(c)}
        if corr and "clean" in rows:
            clean = rows["clean"]["f1"]
            missed = {c: clean - r["f1"] for c, r in corr.items()
                      if clean - r["f1"] > CORRUPTION_MARGIN}
            shown = ", ".join(f"{c} by {d - CORRUPTION_MARGIN:.3f}"
                              for c, d in sorted(missed.items(), key=lambda kv: -kv[1]))
            bits.append(f"corruptions within {CORRUPTION_MARGIN} F1 of clean "
                        f"({clean:.3f}): {len(corr) - len(missed)} of {len(corr)} met"
                        + (f"; missed: {shown}" if missed else ""))
            empty = {c: r["n_empty"] for c, r in corr.items() if r["n_empty"]}
            bits.append("empty maps under corruption: "
                        + (", ".join(f"{c} {n}" for c, n in empty.items()) if empty
                           else "none (met)"))
        out.append(f"- **{variant}**: " + ("; ".join(bits) if bits else "not measured") + ".")
    return out


def figure(result: dict, path: Path) -> None:
    """Grouped bars: F1 at the threshold per condition (x) and model variant (colour)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from vesselflow.io.files import atomic_path

    variants = [v for v, rows in result["rows"].items() if rows]
    conds = [c for c in all_conditions() if any(c in result["rows"][v] for v in variants)]
    fig, ax = plt.subplots(figsize=(max(8, 0.75 * len(conds) + 4), 4.5))
    width = 0.8 / max(1, len(variants))
    for k, v in enumerate(variants):
        ys = [result["rows"][v].get(c, {}).get("f1", np.nan) for c in conds]
        ax.bar(np.arange(len(conds)) + (k - (len(variants) - 1) / 2) * width, ys, width,
               label=v)
    ax.set_xticks(np.arange(len(conds)),
                  [condition_label(c, result.get("drive_split", "test")).split(" + ")[-1]
                   for c in conds],
                  rotation=45, ha="right")
    ax.set_ylabel("F1 at the a-priori threshold")
    ax.set_ylim(0, 1)
    ax.axhline(0.76, color="grey", ls="--", lw=0.8)
    ax.text(0.995, 0.765, "HRF target 0.76", ha="right", va="bottom", fontsize=7,
            transform=ax.get_yaxis_transform())
    ax.set_title(f"Generalisation of the shipped models ({result['samples']} samples)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)
