"""Generate the results in README.md and docs/RESULTS.md from the results files.

Usage::

    python scripts/results_table.py            # rewrite the generated blocks
    python scripts/results_table.py --check    # exit 1, naming the file and first differing line

The one writer of generated tables: benchmarks and ``vesselflow evaluate`` write results
files, this script turns them into Markdown. A block ``<!-- GENERATED name [arg] -->`` ...
``<!-- /GENERATED -->`` is rewritten by the builder ``name`` of :data:`BUILDERS`; a block
``<!-- INCLUDE path -->`` ... ``<!-- /INCLUDE -->`` gets that Markdown file (a benchmark's own
table), its leading ``# title`` dropped. Everything outside the blocks is prose and carries no
number that a results file holds.

Reads ``results/<model>/metrics.json`` (``vesselflow evaluate``, ``vesselflow sr evaluate``),
``results/previous/<model>/`` (the weights the shipped ones replaced: metrics.json, and
training.json from ``scripts/previous_weights.py --record``), ``results/generalisation/``,
``results/review_flags/``, ``results/biomarkers/`` (via ``biomarker_table.py``),
``results/bench_*.json`` and the shipped models' ``config.json``. Paper figures are quoted
from the paper (Winkler et al. 2019, Tables 2-3) and labelled as such.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path

import biomarker_table
import review_report
import scale_table
from shipping import commands

ROOT = Path(__file__).resolve().parents[1]
DOCS = ("README.md", "docs/RESULTS.md")
MODELS = ("cnf-drive", "factored-drive", "factored-bce")
PAPER = {"cnf-drive": (0.0254, 0.819), "factored-drive": (0.0647, 0.815)}
PAPER_LABEL = {"cnf-drive": "CNF", "factored-drive": "factored baseline"}
PAPER_HUMAN_F1 = 0.791
BPD_TARGET = 0.04  # cnf-drive's bpd target, per image pixel
# The generalisation and review-flag targets, as benchmarks/generalisation.py and
# benchmarks/review_flags.py state them (not imported: those modules load the models' stack).
HRF_F1_TARGET, CORRUPTION_MARGIN = 0.76, 0.03
RECALL_TARGET, FALSE_ALARM_TARGET = 0.90, 0.10
TRAIN_SPEED_TARGET = 1.5  # training steps per minute of cnf-drive against `before`
DRIVE = "../shared/data/DRIVE"

SR_MODELS = ("sr-factored", "sr-cnf")
SR_SETS = ("Set5", "Set14", "BSD100")
# Paper (Winkler et al. 2019, Table 2) x2: CNF bpd, PSNR, SSIM; SRCNN PSNR as quoted there.
SR_PAPER = {"Set5": (2.11, 36.2, 0.957, 36.7), "Set14": (2.51, 32.5, 0.911, 32.4),
            "BSD100": (2.33, 31.4, 0.893, 31.4)}


def _load(rel: str | Path) -> dict | None:
    path = ROOT / rel
    return json.loads(path.read_text()) if path.exists() else None


def _bench(name: str) -> dict | None:
    """A benchmark's JSON (``vesselflow bench``, ``benchmarks/*.py``) from results/."""
    return _load(Path("results") / name)


def _config(model: str) -> dict:
    return _load(Path("vesselflow") / "weights" / model / "config.json") or {"meta": {}}


def _sha(sha: str | None) -> str:
    return f"`{sha[:12]}`" if sha else "-"


def _num(r: dict, key: str, digits: int = 4) -> str:
    """A metric, or '-' in results written before it was measured."""
    return f"{r[key]:.{digits}f}" if r.get(key) is not None else "-"


def _ci(r: dict, key: str, digits: int = 4) -> str:
    """The value with its 95% bootstrap interval, when the evaluation has one."""
    ci = (r.get("ci95") or {}).get(key)
    value = _num(r, key, digits)
    return f"{value} [{ci[0]:.{digits}f}, {ci[1]:.{digits}f}]" if ci else value


def _met(ok: bool) -> str:
    return "met" if ok else "**missed**"


def _rate(k: int, n: int, ok: bool) -> str:
    """``k of n`` with its exact 95% interval and the target's verdict ("not established"
    under :data:`~vesselflow.vessel.evaluation.metrics.MIN_RATE_CASES` cases)."""
    from vesselflow.vessel.evaluation.metrics import MIN_RATE_CASES, binomial_interval

    lo, hi = binomial_interval(k, n)
    verdict = "not established, n < 20" if n < MIN_RATE_CASES else _met(ok)
    return f"{k} of {n}, 95% CI {lo:.0%}-{hi:.0%}: {verdict}"


def _previous() -> dict[str, tuple[dict, dict | None]]:
    """The replaced weights' evaluation and training record, by shipped name."""
    out = {}
    for m in MODELS:
        r = _load(Path("results") / "previous" / m / "metrics.json")
        shipped = _config(m)["meta"].get("sha256")
        if r and r["model"]["sha256"] != shipped:
            out[m] = (r, _load(Path("results") / "previous" / m / "training.json"))
    return out


def _previous_commit() -> str | None:
    commits = {t["commit"][:7] for _, t in _previous().values() if t}
    return commits.pop() if len(commits) == 1 else None


def _drive_rows() -> dict[str, tuple[dict, str]]:
    """Label -> (metrics.json, the --model that loads those weights) for the DRIVE table."""
    rows = {m: (r, m) for m in MODELS if (r := _load(Path("results") / m / "metrics.json"))}
    commit = _previous_commit() or "?"
    for m, (r, _) in _previous().items():
        rows[f"{m} (previous, {commit})"] = (r, f"runs/previous/{m}")
    return rows


def _evaluate_command(model: str, r: dict, out: str) -> str:
    bio = "" if "biomarkers" in r else " --no-biomarkers"
    return (f"vesselflow evaluate --model {model} --drive {DRIVE} --samples {r['n_samples']}"
            f"{bio} --out {out}")


def _regenerate(lines: list[str]) -> list[str]:
    return ["```bash", *lines, "python scripts/results_table.py", "```"]


# -- README -------------------------------------------------------------------------------

def headline(_: str | None = None) -> str:
    """README: the shipped models on DRIVE test and SR, how to regenerate, targets."""
    lines = ["| model | weights (sha256) | bpd | max F1 | F1 @ a-priori thr | AUC-ROC | ECE | "
             "sample P / R |", "|---|---|---|---|---|---|---|---|"]
    rows = {m: _load(Path("results") / m / "metrics.json") for m in MODELS}
    for m, r in rows.items():
        if r:
            lines.append(f"| {m} | {_sha(r['model']['sha256'])} | {_num(r, 'bpd')} | "
                         f"{_num(r, 'max_f1')} | {_num(r, 'f1')} | {_num(r, 'auc_roc')} | "
                         f"{_num(r, 'ece')} | {r['sample_precision']:.3f} / "
                         f"{r['sample_recall']:.3f} |")
    first = next((r for r in rows.values() if r), None)
    if first and first.get("human"):
        h = first["human"]
        lines.append(f"| 2nd observer | - | - | - | {h['f1']:.4f} | - | - | "
                     f"{h['precision']:.3f} / {h['recall']:.3f} |")
    for m, (bpd, f1) in PAPER.items():
        lines.append(f"| paper's {PAPER_LABEL[m]} | - | {bpd} | {f1} | - | - | - | - |")
    if first:
        lines += ["", f"DRIVE test, {first['n_images']} images, mean of {first['n_samples']} "
                  "samples per image; bpd per image pixel, the rest inside the FOV; `max F1` "
                  "picks the best threshold on the test set (the paper's protocol), `F1 @ "
                  "a-priori thr` uses the threshold chosen beforehand on validation images."]
    sr = {m: _load(Path("results") / m / "metrics.json") for m in SR_MODELS}
    if any(sr.values()):
        names = [m for m in SR_MODELS if sr[m]]
        lines += ["", "| 2x SR, Y-PSNR dB / bpd | bicubic | "
                  + " | ".join(f"{m} {_sha(sr[m]['model']['sha256'])}" for m in names)
                  + " | paper CNF |", "|---|---|" + "---|" * len(names) + "---|"]
        for s in SR_SETS:
            sets = [sr[m]["sets"].get(s) or {} for m in names]
            bic = next((d["bicubic"]["psnr_y"] for d in sets if d), None)
            cells = [f"{d['temperatures']['0']['psnr_y']:.2f} / {d['bpd']:.3f}"
                     if "0" in d.get("temperatures", {}) else "-" for d in sets]
            pb, pp, _, _ = SR_PAPER[s]
            lines.append(f"| {s} | " + (f"{bic:.2f}" if bic else "-") + " | "
                         + " | ".join(cells) + f" | {pp} / {pb} |")
        lines += ["", "PSNR at temperature 0 on the Y channel; bpd of the HR image given the LR."]
    cmds = [_evaluate_command(m, r, f"results/{m}") for m, r in rows.items() if r]
    cmds += [_sr_command(m, r) for m, r in sr.items() if r]
    lines += ["", "Regenerate (hours on a 2-core CPU; [docs/RESULTS.md](docs/RESULTS.md) has "
              "every command, the intervals and the benchmarks):", "", *_regenerate(cmds)]
    return "\n".join(lines) + "\n"


def _large_photo(res: dict) -> str:
    """The bench's high-resolution photo at ``auto`` (``vesselflow bench --large-photo``)."""
    big = res.get("large")
    if not big:
        return ""
    ok = big["seconds"] <= 20 and big["peak_rss_mb"] <= 3072
    return (f"; a {big['size'][1]}x{big['size'][0]} HRF photo at `--analysis-scale auto` "
            f"(scale {big['analysis_scale']:.2f}, first pass included) {big['seconds']:.1f} s, "
            f"peak {big['peak_rss_mb']:.0f} MB (<= 20 s and 3 GB: {_met(ok)})")


def _pre_rule(ev: dict) -> str:
    """Recall without the empty-map rule, which was added after the first evaluation run."""
    pre = ev.get("recall_without_empty_rule")
    return (f" ({pre['k']} of {pre['n']} without the empty-map rule added after the first "
            f"evaluation run)") if pre else ""


def measured(_: str | None = None) -> str:
    """README: what is measured and which targets are met or missed, one line each."""
    out = []
    cnf = _load("results/cnf-drive/metrics.json")
    if cnf:
        out.append(f"- **Likelihood**: cnf-drive {cnf['bpd']:.4f} bits per image pixel "
                   f"(target <= {BPD_TARGET}: {_met(cnf['bpd'] <= BPD_TARGET)}; paper "
                   f"{PAPER['cnf-drive'][0]}, whose divisor is not stated).")
        out.append(f"- **Segmentation**: cnf-drive max F1 {cnf['max_f1']:.4f} (paper "
                   f"{PAPER['cnf-drive'][1]}), {cnf['f1']:.4f} at the a-priori threshold; "
                   f"calibrated mean map (ECE {cnf['ece']:.4f}); samples that look like "
                   f"tracings.")
    bench = _bench("bench_segment.json")
    if bench:
        res = next((r for r in bench["results"] if r["model"] == "cnf-drive"), None)
        t = bench["targets"]
        runs = {r["samples"]: r for r in (res or {}).get("runs", [])}
        if 16 in runs and 100 in runs:
            out.append(f"- **Speed** (cnf-drive, one DRIVE image, 2-core CPU): 16 samples "
                       f"{runs[16]['seconds']:.2f} s (target <= {t['cnf_16_samples_s']:g} s: "
                       f"{_met(runs[16]['seconds'] <= t['cnf_16_samples_s'])}), 100 samples "
                       f"{runs[100]['seconds']:.1f} s (<= {t['cnf_100_samples_s']:g} s: "
                       f"{_met(runs[100]['seconds'] <= t['cnf_100_samples_s'])}), peak memory "
                       f"{max(r['peak_rss_mb'] for r in runs.values()):.0f} MB"
                       + _large_photo(res) + ".")
    gen = _load("results/generalisation/generalisation.json")
    if gen and "cnf-drive" in gen["rows"]:
        rows = gen["rows"]["cnf-drive"]
        corr = {c: r for c, r in rows.items() if c not in ("clean", "hrf")}
        near = sum(rows["clean"]["f1"] - r["f1"] <= CORRUPTION_MARGIN for r in corr.values())
        empty = sum(r["n_empty"] for r in corr.values())
        out.append(f"- **Degraded photos** (cnf-drive, DRIVE test): {near} of {len(corr)} "
                   f"corruptions within {CORRUPTION_MARGIN} F1 of clean (all: "
                   f"{_met(near == len(corr))}); {empty} empty maps.")
    line = scale_table.measured_line()
    if line:
        out.append(line)
    flags = _load("results/review_flags/review_flags.json")
    if flags and "cnf-drive" in flags["models"] and "evaluated" in flags["models"]["cnf-drive"]:
        m = flags["models"]["cnf-drive"]
        rec, fa = m["evaluated"]["recall"], m["drive_and_hrf"]["false_alarms"]
        out.append(f"- **Review flags** (cnf-drive, predicted F1 below {m['threshold']:.2f}): "
                   f"failed maps (F1 < {flags['bad_f1']}) flagged (recall >= "
                   f"{RECALL_TARGET:.0%}): "
                   f"{_rate(rec['k'], rec['n'], rec['k'] >= RECALL_TARGET * rec['n'])}"
                   f"{_pre_rule(m['evaluated'])}; good "
                   f"maps flagged on DRIVE test + HRF (<= {FALSE_ALARM_TARGET:.0%}): "
                   f"{_rate(fa['k'], fa['n'], fa['k'] <= FALSE_ALARM_TARGET * fa['n'])}.")
    bio = biomarker_table.measured_line()
    if bio:
        out.append(bio)
    first = (_bench("bench_first_image.json") or {}).get("runs", {}).get("this checkout")
    if first:
        out.append(f"- **First photo of a run** (`vesselflow segment`, fresh process): "
                   f"{first['gap_s']:+.2f} s slower than the next ones (target <= "
                   f"{first['target_gap_s']:g} s: {_met(first['met'])}).")
    sr = _load("results/sr-cnf/metrics.json")
    if sr:
        below = [s for s in SR_SETS if s in sr["sets"]
                 and sr["sets"][s]["temperatures"]["0"]["psnr_y"] < SR_PAPER[s][1]]
        above = [s for s in SR_SETS if s in sr["sets"] and sr["sets"][s]["bpd"] > SR_PAPER[s][0]]
        minutes = [_config(m)["meta"].get("training", {}).get("wall_minutes") or 0
                   for m in SR_MODELS]
        out.append(f"- **Super-resolution**: sr-cnf's PSNR at temperature 0 is below the "
                   f"paper's on {len(below)} of {len(SR_SETS)} sets and its bpd above on "
                   f"{len(above)} (small models, {min(minutes):.0f}-{max(minutes):.0f} minutes "
                   f"of CPU training).")
    return "\n".join(out) + "\n"


# -- docs/RESULTS.md ----------------------------------------------------------------------

def drive(_: str | None = None) -> str:
    """The DRIVE table with intervals, the bpd target, the canvas reading, commands, figures."""
    rows = _drive_rows()
    if not rows:
        return "No evaluation results committed yet.\n"
    first = next(iter(rows.values()))[0]
    boot = first.get("bootstrap") or {}
    canvas = first.get("canvas") or 1024
    lines = [
        f"DRIVE test set, {first['n_images']} images, first observer as truth, segmentation "
        f"metrics inside the FOV, bpd over whole images; mean of {first['n_samples']} samples "
        f"per image. In brackets: 95% bootstrap intervals over the test images"
        + (f" ({boot['resamples']} resamples, seed {boot['seed']}; pooled metrics recomputed "
           f"over the resampled images' pixels)" if boot else "") + ".", "",
        "| model | weights (sha256) | bpd | bpd per FOV pixel | max F1 | F1 @ thr (thr) | "
        "specificity | MCC | clDice | AUC-ROC | AP | ECE | sample P / R | paper bpd | "
        "paper F1 |", "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for label, (r, _) in rows.items():
        pb, pf = PAPER.get(label, ("-", "-"))
        lines.append(
            f"| {label} | {_sha(r['model']['sha256'])} | {_ci(r, 'bpd')} | {_ci(r, 'bpd_fov')} "
            f"| {_ci(r, 'max_f1')} | {_ci(r, 'f1')} ({r['threshold']:.3f}) | "
            f"{_num(r, 'specificity')} | {_num(r, 'mcc')} | {_num(r, 'cldice')} | "
            f"{_ci(r, 'auc_roc')} | {_ci(r, 'average_precision')} | {_ci(r, 'ece')} | "
            f"{r['sample_precision']:.3f} / {r['sample_recall']:.3f} | {pb} | {pf} |")
    if first.get("human"):
        h = first["human"]
        lines.append(f"| 2nd observer | - | - | - | - | {h['f1']:.4f} | "
                     f"{_num(h, 'specificity')} | {_num(h, 'mcc')} | {_num(h, 'cldice')} | - | "
                     f"- | - | {h['precision']:.3f} / {h['recall']:.3f} | - | "
                     f"{PAPER_HUMAN_F1} |")
    cnf = rows.get("cnf-drive", (None,))[0]
    if cnf:
        lines += ["", f"**The bpd target (<= {BPD_TARGET} per image pixel) is "
                  f"{'met' if cnf['bpd'] <= BPD_TARGET else 'not met'}: cnf-drive reaches "
                  f"{cnf['bpd']:.4f}.**"]
    with_canvas = {k: r for k, (r, _) in rows.items() if r.get("bpd_canvas") is not None}
    if with_canvas:
        lines += ["", f"If the paper divided its bound by its {canvas}x{canvas} canvas, which "
                  f"it does not state, its bpd would compare with ours for the image "
                  f"zero-padded to {canvas}x{canvas} and divided by {canvas}²: "
                  + ", ".join(f"{k} {r['bpd_canvas']:.4f}" for k, r in with_canvas.items())
                  + f" (about {565 * 584 / canvas**2:.2f}x the per-pixel figure: the padding "
                  f"is nearly free). This is not a result we claim."]
    cmds = [_evaluate_command(m, r, f"results/{m}") for m, (r, model) in rows.items()
            if model == m]
    prev = [(m, r) for m, (r, model) in rows.items() if model != m]
    if prev:
        cmds += [f"python scripts/previous_weights.py --commit {_previous_commit()} "
                 f"--out runs/previous --record results/previous"]
        cmds += [_evaluate_command(model, r, f"results/previous/{model.split('/')[-1]}")
                 for _, (r, model) in rows.items() if model.startswith("runs/previous/")]
    lines += ["", "Regenerate (the previous weights are extracted from git history first):",
              "", *_regenerate(cmds)]
    for m in MODELS:
        if (ROOT / "results" / m / "figures" / "pr.png").exists():
            lines += ["", f"![PR curve {m}](../results/{m}/figures/pr.png) "
                      f"![samples {m}](../results/{m}/figures/sample_scatter.png)"]
    return "\n".join(lines) + "\n"


def drive_reading(_: str | None = None) -> str:
    """The numbers behind the reading of the DRIVE table: paper, calibration, bpd."""
    r = {m: _load(Path("results") / m / "metrics.json") for m in MODELS}
    prev = {m: v[0] for m, v in _previous().items()}
    cnf, fac, bce = r["cnf-drive"], r["factored-drive"], r["factored-bce"]
    if not (cnf and fac and bce):
        return "*Not all three shipped models are evaluated yet.*\n"
    h = cnf.get("human") or {}
    pc = prev.get("cnf-drive")
    out = [f"- **Against the paper.** cnf-drive's max F1 is {cnf['max_f1']:.4f} against the "
           f"paper's {PAPER['cnf-drive'][1]}"
           + (f" (the previous, longer-trained weights: {pc['max_f1']:.4f})" if pc else "")
           + f", and {cnf['f1']:.4f} at the threshold fixed beforehand on validation images. "
           f"Its mean map is far better calibrated than the factored model's (ECE "
           f"{cnf['ece']:.4f} vs {fac['ece']:.4f}), and its samples look like tracings: sample "
           f"precision / recall {cnf['sample_precision']:.3f} / {cnf['sample_recall']:.3f}"
           + (f" (second observer {h['precision']:.3f} / {h['recall']:.3f})" if h else "")
           + f", while the factored model's independent-pixel samples are noise "
           f"({fac['sample_precision']:.3f} / {fac['sample_recall']:.3f}; paper Figure 6)."]
    pf = prev.get("factored-drive")
    if pc and pf:
        t_bce = _config("factored-bce")["meta"].get("training", {})
        t_pf = (_previous().get("factored-drive", (None, None))[1] or {}).get("training", {})
        ci = (bce.get("ci95") or {}).get("ece")
        out.append(
            f"- **Factorisation or class weighting?** Measured against the previous "
            f"(paper-recipe) weights, whose recipe factored-bce shares: dropping the class "
            f"weighting alone takes the factored model's ECE from {pf['ece']:.4f} to "
            f"{bce['ece']:.4f} (CNF {pc['ece']:.4f}), its sample precision / recall from "
            f"{pf['sample_precision']:.3f} / {pf['sample_recall']:.3f} to "
            f"{bce['sample_precision']:.3f} / {bce['sample_recall']:.3f} (CNF "
            f"{pc['sample_precision']:.3f} / {pc['sample_recall']:.3f}) and its bpd from "
            f"{pf['bpd']:.4f} to {bce['bpd']:.4f} (CNF {pc['bpd']:.4f}). What factorisation "
            f"still costs is the bpd, a sample P / R gap of "
            f"{pc['sample_precision'] - bce['sample_precision']:.2f} / "
            f"{pc['sample_recall'] - bce['sample_recall']:.2f}, and the samples' spatial "
            f"structure (speckle, not connected vessels, which P / R does not measure)."
            + (f" The ECE left ({bce['ece']:.4f} vs {pc['ece']:.4f}) is "
               f"{'within' if ci[0] <= pc['ece'] <= ci[1] else 'outside'} factored-bce's "
               f"interval [{ci[0]:.4f}, {ci[1]:.4f}]." if ci else "")
            + (f" Caveat: factored-bce got {t_bce.get('steps')} steps in "
               f"{t_bce.get('wall_minutes')} min, the previous factored-drive "
               f"{t_pf.get('steps')} in {t_pf.get('wall_minutes')} min, so part of its lower "
               f"max F1 ({bce['max_f1']:.4f} vs {pf['max_f1']:.4f}) may be training time "
               f"rather than the likelihood." if t_pf else ""))
    ratios = " and ".join(f"{r[m]['bpd'] / PAPER[m][0]:.1f}x" for m in PAPER)
    out.append(f"- **bpd per image pixel.** cnf-drive and factored-drive are {ratios} the "
               f"paper's per-pixel figures. The paper pads DRIVE to 1024 x 1024 but does not "
               f"say what it divides its bound by; divided by the canvas, our bounds land near "
               f"the paper's (the canvas column above).")
    return "\n".join(out) + "\n"


def training(arg: str | None = None) -> str:
    """How each shipped model was trained (its config.json), and the previous weights."""
    names = SR_MODELS if arg == "sr" else MODELS
    lines = ["| model | weights (sha256) | command | steps | wall time | hardware |",
             "|---|---|---|---|---|---|"]
    records = [(m, _config(m)["meta"]) for m in names]
    if arg != "sr":
        records += [(f"{m} (previous, {t['commit'][:7]})", t) for m, (_, t) in
                    _previous().items() if t]
    for label, meta in records:
        t = meta.get("training") or {}
        env = t.get("environment") or {}
        lines.append(f"| {label} | {_sha(meta.get('sha256'))} | {commands(t)} | "
                     f"{t.get('steps')} | {t.get('wall_minutes')} min | {t.get('device')}, "
                     f"{env.get('cpus')} CPUs |")
    if arg == "sr":
        return "\n".join(lines) + "\n"
    meta = _config("cnf-drive")["meta"]
    t = meta.get("training") or {}
    cnf = _load("results/cnf-drive/metrics.json")
    prev = _previous().get("cnf-drive")
    if meta.get("step") and t.get("steps"):
        last = meta["step"] == t["steps"]
        lines += ["", f"cnf-drive's best checkpoint is from step {meta['step']} of {t['steps']} "
                  f"(validation bpd {meta['val']['bpd']:.4f})"
                  + (": its last validation, so validation bpd was still falling when the "
                     "budget ran out." if last else ".")]
        if last and prev and cnf:
            lines[-1] += (f" Its shortfall against the previous weights on clean DRIVE (bpd "
                          f"{cnf['bpd']:.4f} vs {prev[0]['bpd']:.4f}, max F1 "
                          f"{cnf['max_f1']:.4f} vs {prev[0]['max_f1']:.4f}) is therefore at "
                          f"least partly the shorter training, not only the harder, augmented "
                          f"task; these runs cannot separate the two.")
    return "\n".join(lines) + "\n"


def _sr_command(m: str, r: dict) -> str:
    temps = ",".join(f"{t:g}" for t in r["protocol"]["temperatures"])
    return (f"vesselflow sr evaluate --model {m} --data ../shared/data/SR --sets "
            f"{','.join(r['sets'])} --temperatures {temps} --out results/{m}")


def sr(_: str | None = None) -> str:
    """The super-resolution tables from results/sr-*/metrics.json."""
    rows = {m: r for m in SR_MODELS if (r := _load(Path("results") / m / "metrics.json"))}
    if not rows:
        return "No super-resolution results committed yet.\n"
    lines = ["| set | bicubic | "
             + " | ".join(f"{m} {_sha(r['model']['sha256'])} T=0 | {m} bpd"
                          for m, r in rows.items())
             + " | paper CNF (bpd, PSNR / SSIM) | SRCNN |",
             "|---|---|" + "---|---|" * len(rows) + "---|---|"]
    for name in SR_SETS:
        first = next((r for r in rows.values() if name in r["sets"]), None)
        if first is None:
            continue
        b = first["sets"][name]["bicubic"]
        cells = [f"{b['psnr_y']:.2f} / {b['ssim_y']:.4f}"]
        for r in rows.values():
            s = r["sets"].get(name)
            t0 = s["temperatures"].get("0") if s else None
            cells += [f"{t0['psnr_y']:.2f} / {t0['ssim_y']:.4f}" if t0 else "-",
                      f"{s['bpd']:.3f}" if s else "-"]
        pb, pp, ps, srcnn = SR_PAPER[name]
        lines.append(f"| {name} ({first['sets'][name]['n_images']}) | " + " | ".join(cells)
                     + f" | {pb}, {pp} / {ps} | {srcnn} |")
    cnf = rows.get("sr-cnf")
    if cnf:
        temps = list(next(iter(cnf["sets"].values()))["temperatures"])
        lines += ["", f"sr-cnf {_sha(cnf['model']['sha256'])} across sampling temperatures "
                  f"(Y-PSNR dB / SSIM, one sample per image):", "",
                  "| set | " + " | ".join(f"T={t}" for t in temps) + " |",
                  "|---|" + "---|" * len(temps)]
        for name, s in cnf["sets"].items():
            lines.append(f"| {name} | " + " | ".join(
                f"{s['temperatures'][t]['psnr_y']:.2f} / {s['temperatures'][t]['ssim_y']:.4f}"
                for t in temps) + " |")
    lines += ["", "Regenerate:", "", *_regenerate([_sr_command(m, r) for m, r in rows.items()])]
    for m, r in rows.items():
        sets = r.get("updated_sets")
        if sets:
            lines += ["", f"{m}'s committed results: an earlier full run, then the same command "
                      f"with `--sets {','.join(sets)} --update` (only {', '.join(sets)} holds a "
                      f"grey image, whose scoring changed; the other sets' images and seeds are "
                      f"unchanged, so the full command gives the same numbers)."]
    if (ROOT / "results" / "sr-cnf" / "figures" / "samples_Set5.png").exists():
        lines += ["", "![sr-cnf samples on Set5](../results/sr-cnf/figures/samples_Set5.png)"]
    return "\n".join(lines) + "\n"


def speed(_: str | None = None) -> str:
    """`vesselflow bench` per model, and the flow-core benchmark."""
    lines = []
    bench = _bench("bench_segment.json")
    if bench:
        t = bench["targets"]
        big = next((r["large"] for r in bench["results"] if r.get("large")), None)
        extra = f" --large-photo {big['image']}" if big else ""
        lines += [f"`vesselflow bench --drive {DRIVE}{extra}`: per DRIVE image "
                  f"({Path(bench['image']).name}) after the model is loaded, end to end (read, "
                  f"FOV, sample, write outputs), and the review assessment of one image. "
                  f"Targets for cnf-drive: 16 samples <= {t['cnf_16_samples_s']:g} s, 100 "
                  f"samples <= {t['cnf_100_samples_s']:g} s, peak memory <= "
                  f"{t['peak_rss_mb']:g} MB; review assessment <= {t['review_assessment_s']:g} "
                  f"s. Load average before / after: {bench['load_average_before']} / "
                  f"{bench['load_average_after']} (on 2 cores; above ~0.5 the times are "
                  f"inflated by other work); `vesselflow --help` starts in "
                  f"{bench['cli_help_seconds']} s.", "",
                  "| model | weights (sha256) | samples | seconds | CPU seconds | samples/s | "
                  "peak memory | review assessment |", "|---|---|---|---|---|---|---|---|"]
        for res in bench["results"]:
            q = res.get("quality") or {}
            for run in res.get("runs", []):
                lines.append(f"| {res['model']} | {_sha(res.get('sha256'))} | {run['samples']} "
                             f"| {run['seconds']:.2f} | {run['cpu_seconds']:.2f} | "
                             f"{run['samples_per_s']:.1f} | {run['peak_rss_mb']:.0f} MB | "
                             + (f"{q['seconds']:.3f} s" if q else "-") + " |")
    flow = _bench("bench_flow.json")
    if flow:
        ts, sp, c = flow["train_step_s"], flow["samples_per_s"], flow["config"]
        lines += ["", f"Flow core (`python benchmarks/bench_flow.py`): a freshly built vessel "
                  f"CNF, not shipped weights ({c['kind']}, width {c['width']}, {c['steps']} "
                  f"steps per level; {flow['parameters'] / 1e6:.2f}M parameters, "
                  f"{flow['threads']} threads), training step at batch 8 and sampling of a "
                  f"584x568 map; peak memory {flow['peak_rss_mb']:.0f} MB.", "",
                  "| measure | NCHW | channels_last |", "|---|---|---|"]
        for patch in (64, 128):
            lines.append(f"| train step {patch}x{patch} | "
                         f"{ts[f'{patch}px_batch8_nchw'] * 1e3:.0f} ms | "
                         f"{ts[f'{patch}px_batch8_channels_last'] * 1e3:.0f} ms |")
        lines.append(f"| samples/s (584x568) | {sp['nchw']:.2f} | {sp['channels_last']:.2f} |")
    return "\n".join(lines) + "\n" if lines else "*No benchmark results yet.*\n"


def train_speed(_: str | None = None) -> str:
    """benchmarks/bench_train.py's own table (its first line, the command, replaced)."""
    train = _load("results/bench_train.json")
    table = ROOT / "results" / "bench_train.md"
    if not (train and table.exists()):
        return "*No training-throughput results yet.*\n"
    body = table.read_text().split("\n", 2)[2].strip()
    text = f"Command: `{train['command']}`\n\n{body}\n"
    gains = []
    for name, c in train["configs"].items():
        v = c["variants"]
        if "before" in v and "after" in v:
            gains.append(f"{name} {v['after']['ratio_to_before']:.2f}x (data share "
                         f"{100 * v['before']['data_share']:.0f}% -> "
                         f"{100 * v['after']['data_share']:.0f}%)")
    cnf = train["configs"].get("cnf-drive", {}).get("variants", {})
    if gains and "before" in cnf and "after" in cnf:
        share = cnf["before"]["data_share"]
        text += (f"\nThe patch-region warp (`after` against `before`): {'; '.join(gains)}. The "
                 f"CNF's {TRAIN_SPEED_TARGET}x target is "
                 f"{_met(cnf['after']['ratio_to_before'] >= TRAIN_SPEED_TARGET)}: at a "
                 f"{100 * share:.0f}% data share even free augmentation could give at most "
                 f"1/(1 - {share:.2f}) = {1 / (1 - share):.2f}x.\n")
    return text


def _corruption_stats(rows: dict) -> tuple[int, int, int, str, float]:
    """(within the margin of clean, corruptions, empty maps, worst corruption, its F1)."""
    corr = {c: r for c, r in rows.items() if c not in ("clean", "hrf")}
    near = sum(rows["clean"]["f1"] - r["f1"] <= CORRUPTION_MARGIN for r in corr.values())
    worst = min(corr, key=lambda c: corr[c]["f1"])
    return (near, len(corr), sum(r["n_empty"] for r in corr.values()), worst,
            corr[worst]["f1"])


def generalisation(_: str | None = None) -> str:
    """The shipped CNF off DRIVE's camera, next to the previous weights."""
    now = _load("results/generalisation/generalisation.json")
    before = _load("results/generalisation-previous/generalisation.json")
    if not now or "cnf-drive" not in now["rows"]:
        return "*Not measured yet.*\n"
    rows = now["rows"]["cnf-drive"]
    near, n, empty, worst, wf1 = _corruption_stats(rows)
    h = rows["hrf"]
    text = (f"Shipped cnf-drive {_sha(now['models']['cnf-drive']['sha256'])}: {empty} empty maps "
            f"under corruption, worst corruption {worst} at F1 {wf1:.3f}, {near} of {n} "
            f"corruptions within {CORRUPTION_MARGIN} F1 of clean; HRF at analysis scale 1 (the "
            f"FOV at DRIVE's diameter; `auto` and the other scales are in the next section) F1 "
            f"{h['f1']:.3f}, max-F1 {h['max_f1']:.3f}, {h['n_f1_below_0.6']} of "
            f"{h['n_images']} HRF images below F1 0.6.")
    if before and "cnf-drive" in before["rows"]:
        b = before["rows"]["cnf-drive"]
        bn, bt, be, bw, bwf1 = _corruption_stats(b)
        text += (f" The previous weights {_sha(before['models']['cnf-drive']['sha256'])} "
                 f"(`results/generalisation-previous/`): {be} empty maps, worst {bw} at F1 "
                 f"{bwf1:.3f}, {bn} of {bt} within {CORRUPTION_MARGIN}; HRF F1 "
                 f"{b['hrf']['f1']:.3f}, max-F1 {b['hrf']['max_f1']:.3f}.")
        if h["max_f1"] > b["hrf"]["max_f1"] and h["f1"] < b["hrf"]["f1"]:
            text += (" HRF's max-F1 rose while its F1 at the a-priori threshold fell: the "
                     "threshold chosen on DRIVE validation fits HRF's maps less well than "
                     "before.")
        commit = _previous_commit()
        if commit:
            text += (f" To regenerate those: `python scripts/previous_weights.py --commit "
                     f"{commit} --out runs/previous`, then `python benchmarks/generalisation.py "
                     f"--models runs/previous/cnf-drive runs/previous/factored-drive --out "
                     f"results/generalisation-previous`.")
    models = ", ".join(f"{m} {_sha(v['sha256'])}" for m, v in now["models"].items())
    return f"Weights: {models}.\n\n{text}\n"


def ablation(_: str | None = None) -> str:
    """Which weights the ablation rows are (trained by scripts/ablation_recipe.sh)."""
    abl = _load("results/ablation/generalisation.json")
    if not abl:
        return "*Not measured yet.*\n"
    return ("Weights (in `runs/`, not shipped): "
            + ", ".join(f"{m} {_sha(v['sha256'])}" for m, v in abl["models"].items()) + ".\n")


def review(_: str | None = None) -> str:
    """The review evaluation per model and set (``benchmarks/review_flags.py``)."""
    flags = _load("results/review_flags/review_flags.json")
    if not flags or "targets" not in flags:
        return "*Not measured yet.*\n"
    ms = flags["models"]
    out = ["Weights: " + ", ".join(f"{m} {_sha(v['sha256'])} (previous "
                                   f"{_sha(v['previous_sha256'])})"
                                   for m, v in ms.items()) + ". Regenerate: "
           "`python benchmarks/review_flags.py`.", "", *review_report.table(flags), "",
           *review_report.targets(flags)]
    return "\n".join(out) + "\n"


def review_table(_: str | None = None) -> str:
    """The README's review table: the evaluated sets of each model."""
    flags = _load("results/review_flags/review_flags.json")
    if not flags or "targets" not in flags:
        return "*Not measured yet.*\n"
    keep = ("drive-test", "drive-held-out", "hrf", "previous", "evaluated")
    return "\n".join(review_report.table(flags, keep)) + "\n"


def biomarkers(_: str | None = None) -> str:
    """The biomarker tables (every cell, both models) and how to regenerate them."""
    body = biomarker_table.build(_bench("bench_biomarkers.json"))
    return (body + "\nRegenerate (one torch thread; measures cached per photo, refits, "
            "writes `vesselflow/weights/<model>/biomarkers.json` and `results/biomarkers/`):"
            "\n\n" + "\n".join(_regenerate([f"OMP_NUM_THREADS=1 {biomarker_table.COMMAND}"]))
            + "\n")


def biomarker_coverage(_: str | None = None) -> str:
    """README: cnf-drive's calibrated-interval coverage table."""
    return biomarker_table.readme()


BUILDERS: dict[str, Callable[[str | None], str]] = {
    "headline": headline, "measured": measured, "drive": drive, "drive-reading": drive_reading,
    "training": training, "sr": sr, "speed": speed, "train-speed": train_speed,
    "generalisation": generalisation, "ablation": ablation, "review": review,
    "review-table": review_table,
    "biomarkers": biomarkers, "scale": scale_table.build}
BLOCK = re.compile(r"(<!-- GENERATED (\S+)(?: (\S+))? -->\n).*?(<!-- /GENERATED -->)", re.S)
INCLUDE = re.compile(r"(<!-- INCLUDE (\S+) -->\n).*?(<!-- /INCLUDE -->)", re.S)
BUILDERS["biomarker-coverage"] = biomarker_coverage  # README's coverage table


def include(text: str) -> str:
    """Fill every INCLUDE block with that Markdown file, its leading ``# title`` dropped and
    its headings pushed below the document's."""
    def fill(m: re.Match) -> str:
        path = ROOT / m.group(2)
        if not path.is_file():
            return f"{m.group(1)}*{m.group(2)} has not been generated yet.*\n{m.group(3)}"
        body = re.sub(r"\A# [^\n]*\n+", "", path.read_text().strip())
        body = re.sub(r"^#{1,3} ", "#### ", body, flags=re.M)
        return f"{m.group(1)}{body}\n{m.group(3)}"

    return INCLUDE.sub(fill, text)


def generate(text: str) -> str:
    """``text`` with every GENERATED and INCLUDE block rewritten from the results files."""
    def fill(m: re.Match) -> str:
        if m.group(2) not in BUILDERS:
            raise SystemExit(f"unknown generated block {m.group(2)!r}; known: "
                             f"{', '.join(BUILDERS)}")
        return m.group(1) + BUILDERS[m.group(2)](m.group(3)) + m.group(4)

    return include(BLOCK.sub(fill, text))


def first_difference(old: str, new: str) -> tuple[int, str, str]:
    """(1-based line number, current line, generated line) where two texts first differ."""
    a, b = old.splitlines(), new.splitlines()
    for i, (x, y) in enumerate(zip(a, b, strict=False), start=1):
        if x != y:
            return i, x, y
    n = min(len(a), len(b)) + 1
    return n, a[n - 1] if n <= len(a) else "<end of file>", b[n - 1] if n <= len(b) \
        else "<end of file>"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true",
                    help="rewrite nothing; exit 1 if a document differs from what the results "
                    "files generate")
    a = ap.parse_args(argv)
    stale = 0
    for rel in DOCS:
        path = ROOT / rel
        old = path.read_text()
        if not BLOCK.search(old):
            print(f"{rel}: no <!-- GENERATED ... --> block", file=sys.stderr)
            return 2
        new = generate(old)
        if new == old:
            continue
        if a.check:
            line, cur, gen = first_difference(old, new)
            print(f"{rel}:{line}: differs from what the results files generate (run python "
                  f"scripts/results_table.py)\n  in the file: {cur[:200]}\n  generated:   "
                  f"{gen[:200]}", file=sys.stderr)
            stale += 1
        else:
            path.write_text(new)
            print(f"{rel}: generated blocks rewritten")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
