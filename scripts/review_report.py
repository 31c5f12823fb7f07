"""The review-flag report (``results/review_flags/review_flags.md``) from
``review_flags.json``: written by ``benchmarks/review_flags.py`` and re-rendered, for the README
and docs/RESULTS.md, by ``scripts/results_table.py`` (which imports it without the models'
stack)."""

from __future__ import annotations

SETS = (("drive-test", "DRIVE test, clean"), ("drive-held-out", "DRIVE test, held-out families"),
        ("hrf", "HRF (42, auto scale)"), ("previous", "previous weights, noise + dither"),
        ("drive_and_hrf", "**DRIVE test + HRF**"), ("evaluated", "**all evaluated**"),
        ("calibration_lofo", "calibration, leave one family out"))


def _rate(r: dict) -> str:
    if not r["n"]:
        return "–"
    lo, hi = r["ci"]
    few = ": not established, n < 20" if r["n"] < 20 else ""
    return f"{r['k']}/{r['n']} = {r['rate']:.0%} ({lo:.0%}-{hi:.0%}){few}"


def _num(v: float | None, fmt: str = ".3f") -> str:
    return "–" if v is None else format(v, fmt)


def _set(m: dict, key: str) -> dict:
    return m["sets"][key] if key in m["sets"] else m[key]


def table(result: dict, keep: tuple[str, ...] | None = None) -> list[str]:
    """One row per (model, set); ``keep``: only those sets."""
    lines = ["| model | set | maps | mean F1 | flagged | false alarms (good maps flagged) | "
             "recall (failed maps flagged) | predicted-F1 MAE (offset) | Spearman | AUROC |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model, m in result["models"].items():
        for key, label in SETS:
            if keep is not None and key not in keep:
                continue
            c = _set(m, key)
            lines.append(
                f"| {model} | {label} | {c['n']} | {_num(c.get('mean_f1'))} | {c['flagged']} | "
                f"{_rate(c['false_alarms'])} | {_rate(c['recall'])} | "
                f"{_num(c.get('mae'))} ({_num(c.get('offset'), '+.3f')}) | "
                f"{_num(c.get('spearman'), '.2f')} | {_num(c.get('auroc'), '.2f')} |")
    return lines


def _verdict(r: dict) -> str:
    return f"{_rate(r)}: {r['verdict']}"


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def _pre(ev: dict) -> str:
    """The recall without the empty-map rule (added after the first evaluation run)."""
    pre = ev.get("recall_without_empty_rule")
    return (f" (without the empty-map rule, added after the first evaluation run: "
            f"{_rate(pre)})") if pre else ""


def targets(result: dict) -> list[str]:
    """One line per model: every target of issue #25, met or missed, with its number."""
    t = result["targets"]
    lines = []
    for model, m in result["models"].items():
        ev, dh, hrf, dt = m["evaluated"], m["drive_and_hrf"], m["sets"]["hrf"], \
            m["sets"]["drive-test"]
        bad_n = ev["recall"]["n"]
        nf, sc = m["non_fundus"], m["sample_counts"]
        counts = ", ".join(f"{n}: {c['status']}" for n, c in sc["counts"].items())
        lines.append(
            f"- **{model}** (review below predicted F1 {m['threshold']:.2f}): false alarms "
            f"(<= {t['false_alarms']:.0%}) on DRIVE test + HRF {_verdict(dh['false_alarms'])}; "
            f"on all evaluated maps {_verdict(ev['false_alarms'])}; recall (>= "
            f"{t['recall']:.0%}) {_verdict(ev['recall'])}{_pre(ev)} over {bad_n} failed maps "
            f"(need >= "
            f"{t['min_bad']}: {_met(bad_n >= t['min_bad'])}); held-out families "
            f"{_rate(m['sets']['drive-held-out']['recall'])}, previous weights "
            f"{_rate(m['sets']['previous']['recall'])}. Predicted-F1 MAE DRIVE test "
            f"{_num(dt.get('mae'))} (<= {t['mae_drive']}: "
            f"{_met((dt.get('mae') or 1) <= t['mae_drive'])}), HRF {_num(hrf.get('mae'))} (<= "
            f"{t['mae_hrf']}: {_met((hrf.get('mae') or 1) <= t['mae_hrf'])}; constant offset "
            f"{_num(hrf.get('offset'), '+.3f')}, MAE {_num(hrf.get('mae_after_offset'))} without "
            f"it); Spearman over all evaluated maps {_num(ev.get('spearman'), '.2f')} (>= "
            f"{t['spearman']}: {_met((ev.get('spearman') or 0) >= t['spearman'])}); AUROC "
            f"failed vs good {_num(ev.get('auroc'), '.3f')} (>= {t['auroc']}: "
            f"{_met((ev.get('auroc') or 0) >= t['auroc'])}); 90% intervals hold "
            f"{_num(ev.get('interval_coverage'), '.0%')} of the evaluated F1s. Non-fundus "
            f"{nf['caught']}/{nf['n']} refused or flagged ({_met(nf['caught'] == nf['n'])}); "
            f"data.retina() {nf['retina']['outcome']} "
            f"({_met(nf['retina']['outcome'] != 'refused')}). Sample counts on DRIVE test 01: "
            f"{counts} ({_met(sc['met'])}). Assessment {sc['assessment_s']:.3f} s per "
            f"DRIVE-sized image (<= {t['assessment_s']} s: "
            f"{_met(sc['assessment_s'] <= t['assessment_s'])}).")
    return lines


def families(result: dict) -> list[str]:
    out = []
    for model, m in result["models"].items():
        parts = [f"{f} {c['flagged']}/{c['n']} flagged, mean F1 {c['mean_f1']:.2f}, "
                 f"failed {c['recall']['k']}/{c['recall']['n']}, good flagged "
                 f"{c['false_alarms']['k']}/{c['false_alarms']['n']}"
                 for f, c in m["families"].items()]
        out.append(f"- {model}: " + "; ".join(parts) + ".")
    return out


def markdown(result: dict) -> str:
    lines = ["# Review flags", "",
             f"Command: `{result['command']}`. Each model's verdicts come from its stored "
             "calibration (DRIVE training and validation images under graded degradations). "
             f"*Failed*: F1 < {result['bad_f1']}; *good*: F1 >= {result['good_f1']}; flagged = "
             "`review` or refused. Rates with exact 95% intervals; under 20 maps: not "
             "established. Offset: mean predicted minus measured F1.", "", *table(result), "",
             "Targets:", "", *targets(result), "", "Per held-out family (DRIVE test) and "
             "previous-weights set:", "", *families(result)]
    return "\n".join(lines) + "\n"
