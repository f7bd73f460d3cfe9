#!/usr/bin/env python3
"""Build an offline installation bundle of Amicus: see `bundle.py --help` and README.md.

Run it with the Python of an environment where Amicus is installed (`make bundle` uses
.venv/bin/python): it reads the installed models through Amicus itself, and --from-venv
repacks that environment's dependencies."""

from __future__ import annotations

import sys
from pathlib import Path

# This folder holds amicus_bundle (Python puts a script's folder first on sys.path); the
# checkout comes last, so an installed Amicus wins over the source tree when both exist.
sys.path.append(str(Path(__file__).resolve().parent.parent))

from amicus_bundle.cli import main

if __name__ == "__main__":
    sys.exit(main())
