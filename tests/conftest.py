"""Shared fixtures: every test runs with its own Amicus data directory and no network."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Keep tests away from the user's real data directory and any hub cache."""
    home = tmp_path_factory.mktemp("amicus-home")
    monkeypatch.setenv("AMICUS_HOME", str(home))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(home / "hf"))
    return home
