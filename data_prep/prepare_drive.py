"""Verify a DRIVE download and write it in vesselflow's canonical layout.

Usage::

    python data_prep/prepare_drive.py SRC [SRC ...] --out DEST [--force]

Same as ``vesselflow prepare-drive``; see :mod:`vesselflow.cli.prepare`.
"""

from __future__ import annotations

import sys

from vesselflow.cli.prepare import main

if __name__ == "__main__":
    sys.exit(main())
