"""Write the ``vesselflow evaluate --pairs`` CSV for HRF's 42 labelled images.

HRF (Budai et al. 2013): ``images/NN_{h,dr,g}.jpg`` (some ``.JPG``), ``manual1/NN_x.tif``
(tracing), ``mask/NN_x_mask.tif`` (FOV). Paths in the CSV are relative to the CSV's folder.

    python scripts/hrf_pairs.py ../shared/data/HRF benchmarks/hrf_pairs.csv
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from pathlib import Path


def pairs(hrf: Path, csv_dir: Path) -> list[dict[str, str]]:
    """One row per tracing: image, label, fov (relative to ``csv_dir``)."""
    images = {p.stem: p for p in (hrf / "images").iterdir()
              if p.suffix.lower() in (".jpg", ".jpeg")}
    rows = []
    for label in sorted((hrf / "manual1").glob("*.tif")):
        image, fov = images.get(label.stem), hrf / "mask" / f"{label.stem}_mask.tif"
        if image is None or not fov.is_file():
            raise FileNotFoundError(f"{label}: no matching image or FOV mask in {hrf}")
        rows.append({k: os.path.relpath(v, csv_dir) for k, v in
                     (("image", image), ("label", label), ("fov", fov))})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("hrf", type=Path, help="HRF folder (images/, manual1/, mask/)")
    p.add_argument("out", type=Path, help="CSV to write")
    a = p.parse_args(argv)
    try:
        rows = pairs(a.hrf, a.out.resolve().parent)
    except (FileNotFoundError, OSError) as e:
        print(f"hrf_pairs: error: {e}", file=sys.stderr)
        return 2
    a.out.parent.mkdir(parents=True, exist_ok=True)
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["image", "label", "fov"], lineterminator="\n")
        w.writeheader()
        w.writerows(rows)
    print(f"wrote {len(rows)} pairs to {a.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
