"""Where Amicus keeps its files: the platformdirs data directory, or $AMICUS_HOME."""

from __future__ import annotations

import os
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
    """The Modelfiles shipped with Amicus (the repository's modelfiles/ folder)."""
    return Path(__file__).resolve().parents[1] / "modelfiles"
