"""Store fixtures: a real SQLite file in the per-test AMICUS_HOME (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.store import Store


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open() as opened:
        yield opened
