"""Store fixtures: a real SQLite file in the per-test AMICUS_HOME (tests/conftest.py)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from app.store import Backend, ModelFile, Provenance, Store


@pytest.fixture
def store() -> Iterator[Store]:
    with Store.open() as opened:
        yield opened


def record(*, demo: bool = False, temperature: float = 0.2, used_anyway: bool = False,
           verification: str = "verified", system: str | None = "你是严谨的刑事审判辅助系统。",
           file: str = "sentencing.Q4_K_M.gguf") -> Provenance:
    """A provenance record as app.assistants.provenance builds one (embedded engine)."""
    return Provenance(
        assistant="sentencing",
        model=ModelFile(name="sentencing", file=file, sha256="ab" * 32, size=2_497_280_256,
                        quantization="Q4_K_M", demo=demo, verification=verification,
                        used_anyway=used_anyway),
        backend=Backend("embedded", threads=2, adaptive_threads=True, gpu_layers=0,
                        total_layers=36),
        amicus_version="0.1.0", num_ctx=4096,
        sampling={"temperature": temperature, "top_p": 0.9, "stop": ["<|im_end|>"]},
        think=None, system_prompt=system)


NOBODY = 65534


@pytest.fixture
def folder() -> Iterator[Path]:
    """A folder others may traverse (tests running as root read it as `nobody`)."""
    path = Path(tempfile.mkdtemp(prefix="amicus-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for item in path.iterdir():
            item.unlink()
        path.rmdir()


@contextmanager
def read_only(folder: Path) -> Iterator[None]:
    """Make `folder` and its files readable, not writable, by this process: by
    permissions, or (root ignores them) by acting as `nobody` meanwhile."""
    files = list(folder.iterdir())
    if os.geteuid() == 0:
        for item in files:
            item.chmod(0o644)
        os.seteuid(NOBODY)
        try:
            yield
        finally:
            os.seteuid(0)
    else:
        for item in files:
            item.chmod(0o444)
        folder.chmod(0o555)
        try:
            yield
        finally:
            folder.chmod(0o755)
            for item in files:
                item.chmod(0o600)
