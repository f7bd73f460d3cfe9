"""Store fixtures: a real SQLite file in the per-test AMICUS_HOME (tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator

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
