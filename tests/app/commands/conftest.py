"""The five demo models, built once per session with the real pipeline, shared by the
command tests (each test still gets its own copy of the home directory's database)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from app.cli import main
from tests.app.engine.test_openai_backend import fake  # noqa: F401 (a scripted server)


@pytest.fixture(scope="session")
def demo_models(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("demo-home")
    code = main(["demo", "--out", str(home / "models")])
    assert code == 0
    return home / "models"


@pytest.fixture
def home(demo_models, _isolated_home, monkeypatch) -> Path:
    """A fresh AMICUS_HOME holding a copy of the demo models (tests may alter them)."""
    shutil.copytree(demo_models, _isolated_home / "models")
    return _isolated_home


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err
