"""Where the seed model cards are: ../shared/seeds beside the checkout (as CI lays it out),
or $AMICUS_SEEDS. Tests that compare against them fail, never skip, when they are missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_ROOT = Path(__file__).resolve().parents[1]


def seed_file(prefix: str) -> Path:
    """The seed document whose name starts with `prefix` (e.g. "000")."""
    candidates = [Path(os.environ["AMICUS_SEEDS"])] if os.environ.get("AMICUS_SEEDS") else []
    candidates += [_ROOT.parent / "shared" / "seeds", _ROOT / "shared" / "seeds"]
    for folder in candidates:
        found = sorted(folder.glob(f"{prefix}_*.txt")) if folder.is_dir() else []
        if found:
            return found[0]
    pytest.fail(f"seed {prefix} not found in {', '.join(map(str, candidates))} "
                "(set AMICUS_SEEDS to the shared/seeds folder)")
