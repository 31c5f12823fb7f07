"""Extract weights shipped at an earlier commit from git history, so that their results can be
regenerated from a clean clone.

Usage::

    python scripts/previous_weights.py --commit 8741e0e --out runs/previous
    vesselflow evaluate --model runs/previous/cnf-drive --drive ../shared/data/DRIVE \\
        --samples 100 --out results/previous/cnf-drive

Writes ``OUT/<name>/`` (``model.safetensors``, ``config.json``, ``MODEL_CARD.md`` and whatever
else ``vesselflow/weights/<name>/`` held at COMMIT) for each ``--models`` name, checks the
weights against the sha256 their ``config.json`` records, and says whether it is the model that
``results/previous/<name>/metrics.json`` evaluated. A folder holding ``model.safetensors`` and
``config.json`` is what ``vesselflow evaluate --model`` (and segment, the app) load; it keeps
the folder's name, so the results name the model as before.

``--record DIR`` also writes ``DIR/<name>/training.json``: the commit, the sha256 and the
training record of the config (command lines as ``vesselflow ...``), which
``scripts/results_table.py`` shows next to the previous weights' results. Needs the commit in
the clone's history (a shallow clone: ``git fetch --unshallow`` first).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from shipping import ROOT, repo_command

WEIGHTS = "vesselflow/weights"


def git(*args: str) -> bytes:
    """Output of ``git args`` in the repository; a failure stops with git's message."""
    done = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True)
    if done.returncode:
        raise SystemExit(f"git {' '.join(args)}: {done.stderr.decode().strip()} (the commit "
                         f"must be in this clone's history: `git fetch --unshallow` in a "
                         f"shallow clone)")
    return done.stdout


def extract(commit: str, name: str, out: Path) -> dict[str, Any]:
    """Write ``vesselflow/weights/<name>/`` as of ``commit`` to ``out/<name>/`` (built beside
    it, then swapped in); returns its config.json after checking the weights' sha256."""
    prefix = f"{WEIGHTS}/{name}/"
    files = [f for f in git("ls-tree", "-r", "--name-only", commit, "--", prefix)
             .decode().splitlines() if f]
    if not files:
        raise SystemExit(f"{commit} has no {prefix}")
    dest = out / name
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in files:
        target = tmp / f.removeprefix(prefix)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(git("show", f"{commit}:{f}"))
    cfg = json.loads((tmp / "config.json").read_text())
    digest = hashlib.sha256((tmp / "model.safetensors").read_bytes()).hexdigest()
    if digest != cfg["meta"]["sha256"]:
        raise SystemExit(f"{commit}:{prefix}model.safetensors has sha256 {digest[:12]}..., "
                         f"its config.json records {cfg['meta']['sha256'][:12]}... (a Git LFS "
                         f"pointer? then `git lfs fetch` first)")
    shutil.rmtree(dest, ignore_errors=True)
    tmp.rename(dest)
    return cfg


def training_record(commit: str, cfg: dict[str, Any]) -> dict[str, Any]:
    """What results_table.py shows of the previous weights: commit, sha256, how trained."""
    t = dict(cfg["meta"].get("training") or {})
    t["command"] = repo_command(t.get("command"))
    if t.get("history"):
        t["history"] = [{**h, "command": repo_command(h.get("command"))} for h in t["history"]]
    t.pop("options", None)  # the command says it; options hold nothing results_table shows
    full = git("rev-parse", f"{commit}^{{commit}}").decode().strip()
    return {"commit": full, "name": cfg["meta"].get("name"), "sha256": cfg["meta"]["sha256"],
            "training": t}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--commit", required=True, help="commit whose weights to extract")
    ap.add_argument("--out", type=Path, required=True,
                    help="folder to write one model folder per name into")
    ap.add_argument("--models", nargs="+", default=["cnf-drive", "factored-drive"],
                    help="shipped names (default: cnf-drive factored-drive)")
    ap.add_argument("--record", type=Path, default=None, metavar="DIR",
                    help="also write DIR/<name>/training.json (e.g. results/previous)")
    a = ap.parse_args(argv)
    for name in a.models:
        cfg = extract(a.commit, name, a.out)
        sha = cfg["meta"]["sha256"]
        evaluated = ROOT / "results" / "previous" / name / "metrics.json"
        note = ""
        if evaluated.is_file():
            same = json.loads(evaluated.read_text())["model"]["sha256"] == sha
            note = (f"; the model of {evaluated.relative_to(ROOT)}" if same
                    else f"; NOT the model of {evaluated.relative_to(ROOT)}")
        if a.record:
            path = a.record / name / "training.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(training_record(a.commit, cfg), indent=2) + "\n")
            note += f"; wrote {path}"
        print(f"{name}: {a.out / name} (sha256 {sha[:12]}...){note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
