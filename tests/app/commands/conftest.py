"""A home directory holding a copy of the demo models (tests/conftest.py builds them once
per session), for the command tests; each test gets its own copy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.cli import main
from tests.app.engine.test_openai_backend import fake  # noqa: F401 (a scripted server)


@pytest.fixture
def home(demo_models, _isolated_home, monkeypatch) -> Path:
    """A fresh AMICUS_HOME holding a copy of the demo models (tests may alter them)."""
    shutil.copytree(demo_models, _isolated_home / "models")
    return _isolated_home


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err
