"""Command line of DRIVE preparation: ``vesselflow prepare-drive`` and
``python data_prep/prepare_drive.py`` (same arguments, same code).

SRC is the official ``training.zip`` and ``test.zip`` (both files, or a folder holding them), a
single ``DRIVE.zip``, or an already extracted folder (with or without a top ``DRIVE/``). The
logic lives in :func:`vesselflow.vessel.data.prepare.prepare_drive`. Exit status: 0 on success,
2 on a bad source or destination.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

DESCRIPTION = ("Verify the DRIVE dataset (zips or folder) and copy it into the canonical "
               "layout DEST/{training,test}/... with DEST/manifest.json (sha256 of every file).")


def configure(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("src", nargs="+", type=Path,
                        help="training.zip and test.zip, a folder holding them, DRIVE.zip, or "
                        "an extracted DRIVE folder")
    parser.add_argument("--out", required=True, type=Path, help="destination folder")
    parser.add_argument("--force", action="store_true",
                        help="replace DEST if it exists and is not empty")
    parser.set_defaults(func=run)
    return parser


def add_parser(sub: argparse._SubParsersAction) -> None:
    configure(sub.add_parser("prepare-drive", help="verify DRIVE and write its layout",
                             description=DESCRIPTION))


def run(args: argparse.Namespace) -> int:
    print("loading vesselflow ...", flush=True)
    # Imported here so that --help answers at once (the data package pulls in MONAI).
    from vesselflow.io.errors import ImageReadError
    from vesselflow.vessel.data.prepare import prepare_drive

    start = time.perf_counter()
    src = args.src[0] if len(args.src) == 1 else args.src
    try:
        manifest = prepare_drive(src, args.out, overwrite=args.force,
                                 log=lambda msg: print(msg, flush=True))
    except ImageReadError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print()
    print(f"DRIVE ready in {args.out} ({time.perf_counter() - start:.1f} s)")
    for folder, count in manifest["counts"].items():
        print(f"  {folder:<22} {count:3d} files")
    size = manifest["image_size"]
    print(f"  all images {size['width']}x{size['height']}; sha256 of each file in manifest.json")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = configure(argparse.ArgumentParser(prog="prepare_drive",
                                             description=DESCRIPTION)).parse_args(argv)
    return run(args)
