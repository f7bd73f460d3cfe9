"""Fixtures for the terminal app's tests: the demo models (built once per session with the
real pipeline), an app wired to a FakeEngine and a fake gate, and `wait_until`."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.assistants.catalog import GATE_MODEL
from app.assistants.registry import check_verified, find_model, installed_models
from app.assistants.runtime import Assistant, assistant_profile
from app.engine.fake import FakeEngine
from app.store import Store
from app.ui.app import AmicusApp
from app.ui.config import UIConfig
from app.ui.services import Services
from tests.app.store.conftest import folder  # noqa: F401 (a fixture for the app's tests)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@dataclass
class Verdict:
    """What IntentGate.check returns, as the app reads it."""

    unsafe: bool
    prob_unsafe: float
    threshold: float = 0.5

    @property
    def label_text(self) -> str:
        return "unsafe" if self.unsafe else "non_unsafe"


@dataclass
class FakeGate:
    """The intent-safety gate: unsafe when the text contains `trigger`."""

    trigger: str = "forbidden"
    probability: float = 0.93
    calls: list[tuple[list[dict[str, Any]], str]] = field(default_factory=list)

    def check(self, history: list[dict[str, Any]], user_text: str, *,
              cancel: Any = None, progress: Any = None) -> Verdict:
        self.calls.append((list(history), user_text))
        unsafe = self.trigger in user_text
        return Verdict(unsafe, self.probability if unsafe else 0.04)

    def close(self) -> None:
        pass


@dataclass
class Rig:
    """An app under test and what it talks to."""

    app: AmicusApp
    engine: FakeEngine
    gate: FakeGate
    opened: list[str]  # assistants loaded, in order
    sizes: list[int | None]  # the num_ctx each was loaded at (None: not given)

    @property
    def store(self) -> Store:
        return self.app.services.store


def make_rig(models: Path, engine: FakeEngine | None = None, *, gate: FakeGate | None = None,
             config: UIConfig | None = None, open_error: Exception | None = None,
             gate_error: Exception | None = None, store: Store | None = None,
             available_memory: int | None = None) -> Rig:
    engine = engine or FakeEngine("Hello from the **fake** engine.")
    gate = gate or FakeGate()
    opened: list[str] = []
    sizes: list[int | None] = []

    def open_assistant(name: str, *, allow_unverified: bool = False,
                       num_ctx: int | None = None) -> Assistant:
        if open_error is not None:
            raise open_error
        sizes.append(num_ctx)
        if num_ctx is not None:
            engine._n_ctx = num_ctx  # the fake "loads again" at that size
        model = find_model(name, models)
        # As open_assistant does: a model whose verification FAILED only if allowed.
        used_anyway = check_verified(model, allow_unverified=allow_unverified)
        opened.append(name)
        return Assistant(model, assistant_profile(model), engine, used_anyway=used_anyway)

    def open_gate(*, allow_unverified: bool = False) -> FakeGate:
        if gate_error is not None:
            raise gate_error
        classifier = next((m for m in installed_models(models) if m.name == GATE_MODEL), None)
        if classifier is not None:
            check_verified(classifier, allow_unverified=allow_unverified)
        return gate

    services = Services(store or Store.open(), open_assistant=open_assistant,
                        open_gate=open_gate, models_root=models,
                        available_memory=(lambda: available_memory) if available_memory
                        else None)
    return Rig(AmicusApp(config or UIConfig(), services), engine, gate, opened, sizes)


@pytest.fixture
def rig_factory(demo_models) -> Callable[..., Rig]:
    def factory(engine: FakeEngine | None = None, **kwargs: Any) -> Rig:
        return make_rig(kwargs.pop("models", demo_models), engine, **kwargs)

    return factory


async def wait_until(pilot: Any, predicate: Callable[[], object], timeout: float = 5.0,
                     what: str = "") -> None:
    """Let the app run until `predicate()` is true (poll every 20 ms), else fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what or predicate}")
        await pilot.pause(0.02)


async def settle(pilot: Any, app: AmicusApp) -> None:
    """Wait for the turn in flight to end."""
    await wait_until(pilot, lambda: not app.busy, what="the reply to finish")
    await pilot.pause()


def released_gate() -> threading.Event:
    event = threading.Event()
    event.set()
    return event
