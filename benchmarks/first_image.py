"""First-image latency of a fresh ``vesselflow segment`` process.

Runs ``vesselflow segment`` on the first ``--images`` DRIVE test photos in a new process (16
samples, biomarkers on, as a user runs it) and reads each image's seconds from its
``metrics.csv``: the first photo pays every first-use cost of the process (imports, compiled
code), the later ones do not. Target: the first no more than 1 s slower than the median of
the others. Writes ``results/bench_first_image.json`` with the load average before and after
(the machine is shared: read the gap, not the absolute seconds, and only on a quiet machine).
``--code DIR`` times another checkout's vesselflow (the process runs there, so ``-c`` imports
its package), e.g. the commit before a change, as the run ``--label``; runs are kept side by
side in the file.

    python benchmarks/first_image.py                                   # this checkout
    python benchmarks/first_image.py --code ../before --label before   # another checkout
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
TARGET_S = 1.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=4)
    ap.add_argument("--samples", type=int, default=16)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "bench_first_image.json")
    ap.add_argument("--code", type=Path, default=ROOT,
                    help="checkout whose vesselflow is timed (default: this one)")
    ap.add_argument("--label", default="this checkout")
    a = ap.parse_args()
    photos = sorted((DATA / "DRIVE" / "test" / "images").glob("*.tif"))[: a.images]
    with tempfile.TemporaryDirectory(prefix="vesselflow-first-") as tmp:
        listing = Path(tmp) / "list.csv"
        listing.write_text("path\n" + "".join(f"{p}\n" for p in photos))
        load_before = os.getloadavg()
        cmd = [sys.executable, "-c", "from vesselflow.cli import main; main()", "segment",
               "-i", str(listing), "-o", str(Path(tmp) / "out"), "--samples",
               str(a.samples), "--no-progress"]
        subprocess.run(cmd, check=True, cwd=a.code)
        commit = subprocess.run(["git", "-C", str(a.code), "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True).stdout.strip()
        with open(Path(tmp) / "out" / "metrics.csv", newline="") as f:
            seconds = [float(r["seconds"]) for r in csv.DictReader(f)]
    later = statistics.median(seconds[1:])
    gap = seconds[0] - later
    record = {"code_commit": commit,
              "command": f"vesselflow segment -i <first {a.images} DRIVE test photos> "
                         f"--samples {a.samples} --no-progress (a fresh process)",
              "seconds_per_image": seconds, "first": seconds[0], "later_median": later,
              "gap_s": round(gap, 2), "target_gap_s": TARGET_S,
              "met": gap <= TARGET_S, "threads": os.environ.get("OMP_NUM_THREADS", "all"),
              "load_average_before": load_before, "load_average_after": os.getloadavg()}
    runs = json.loads(a.out.read_text())["runs"] if a.out.is_file() else {}
    runs[a.label] = record
    a.out.write_text(json.dumps({"benchmark": "first-image latency", "runs": runs}, indent=2)
                     + "\n")
    print(f"{a.label}: first image {seconds[0]:.2f} s, later median {later:.2f} s: gap "
          f"{gap:+.2f} s (target <= {TARGET_S:g} s: {'met' if gap <= TARGET_S else 'MISSED'})")


if __name__ == "__main__":
    main()
