"""Fault tests: real processes killed with SIGKILL, real full disks, two processes at once.

They live here rather than beside one package because each drives the whole program (the
command line in a child process, the app in a terminal, the store and the converter
together) the way a power cut, the OOM killer or a full disk meets it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest


@pytest.fixture
def home(demo_models, _isolated_home) -> Path:
    """AMICUS_HOME with the demo models, moral-audit's replies capped at a few tokens (demo
    weights rarely stop by themselves)."""
    shutil.copytree(demo_models, _isolated_home / "models")
    modelfile = _isolated_home / "models" / "moral-audit" / "Modelfile"
    modelfile.write_text(modelfile.read_text(encoding="utf-8") + "PARAMETER num_predict 4\n",
                         encoding="utf-8")
    return _isolated_home
