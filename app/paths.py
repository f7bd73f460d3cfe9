"""Where Amicus keeps its files: the platformdirs data directory, or $AMICUS_HOME."""

from __future__ import annotations

import os
import site
import sys
import sysconfig
from pathlib import Path

import platformdirs

APP_NAME = "amicus"


def data_dir() -> Path:
    """The user's Amicus data directory (created 0700: it holds conversations)."""
    override = os.environ.get("AMICUS_HOME")
    path = Path(override) if override else Path(platformdirs.user_data_dir(APP_NAME))
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def models_dir() -> Path:
    """Installed models: one folder per model holding its GGUF, Modelfile and manifest."""
    path = data_dir() / "models"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def demo_sources_dir() -> Path:
    """Synthetic checkpoints `amicus demo` builds before converting them."""
    path = data_dir() / "demo-sources"
    path.mkdir(exist_ok=True, mode=0o700)
    return path


def modelfiles_dir() -> Path:
    """The Modelfiles shipped with Amicus: the checkout's modelfiles/ folder (source tree
    or editable install), else `<prefix>/share/amicus/modelfiles` where a wheel puts them
    (pyproject's data-files)."""
    checkout = Path(__file__).resolve().parents[1] / "modelfiles"
    installed = [Path(sysconfig.get_path("data")), Path(sys.prefix), Path(site.USER_BASE or "")]
    for candidate in [checkout] + [base / "share" / APP_NAME / "modelfiles" for base in installed]:
        if candidate.is_dir():
            return candidate
    return checkout
