"""What the screens use besides Textual: the store, the installed models, the assistant that
is loaded (one at a time: a 4B model takes gigabytes) and the intent-safety gate.

Nothing here touches a widget. Loading is blocking and runs in thread workers; tests pass
their own `open_assistant` / `open_gate` (a FakeEngine, a fake gate) to the constructor.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from app.assistants.catalog import chat_assistants
from app.assistants.profiles import AssistantProfile, load_profile
from app.assistants.registry import InstalledModel, installed_models
from app.assistants.runtime import Assistant, modelfile_for
from app.store import Store
from converters.errors import InputError


class Gate(Protocol):
    """The intent-safety gate as the app uses it (app.assistants.gate.IntentGate)."""

    def check(self, history: list[dict[str, Any]], user_text: str) -> Any: ...

    def close(self) -> None: ...


AssistantOpener = Callable[[str], Assistant]
GateOpener = Callable[[], Gate]


@dataclass(frozen=True)
class AssistantEntry:
    """One line of the picker: an assistant name and its installed model (None if absent)."""

    name: str
    model: InstalledModel | None

    @property
    def installed(self) -> bool:
        return self.model is not None

    @property
    def demo(self) -> bool:
        return self.model is not None and self.model.demo


def real_assistant_opener(*, endpoint: str | None = None, threads: int | None = None,
                          gpu_layers: int | None = None, root: Path | None = None,
                          num_ctx: Mapping[str, int] | None = None, persist: bool = True,
                          kv_budget_bytes: int | None = None) -> AssistantOpener:
    """Loads installed assistants (from `root`, default the data directory's models), each
    with its configured num_ctx (else its Modelfile's). `persist` False (incognito): no KV
    state or reading rate is written to disk."""
    sizes = dict(num_ctx or {})

    def opener(name: str) -> Assistant:
        from app.assistants.runtime import open_assistant

        return open_assistant(name, endpoint=endpoint, n_threads=threads,
                              n_gpu_layers=gpu_layers, root=root, num_ctx=sizes.get(name),
                              persist=persist, kv_budget_bytes=kv_budget_bytes)

    return opener


def real_gate_opener(*, threads: int | None = None, root: Path | None = None) -> GateOpener:
    def opener() -> Gate:
        from app.assistants.gate import IntentGate  # loads llama.cpp: only when first used

        return IntentGate.open(n_threads=threads, root=root)

    return opener


class Services:
    def __init__(self, store: Store, *, open_assistant: AssistantOpener | None = None,
                 open_gate: GateOpener | None = None, models_root: Path | None = None) -> None:
        self.store = store
        self._open_assistant = open_assistant or real_assistant_opener()
        self._open_gate = open_gate or real_gate_opener()
        self._models_root = models_root
        self._models: list[InstalledModel] | None = None
        self._profiles: dict[str, AssistantProfile | None] = {}
        self._assistant: Assistant | None = None
        self._gate: Gate | None = None
        self._lock = threading.Lock()

    # Installed models (read from disk once, again on refresh)

    def models(self) -> list[InstalledModel]:
        if self._models is None:
            self._models = installed_models(self._models_root)
        return self._models

    def refresh(self) -> None:
        self._models = None
        self._profiles.clear()

    def model(self, name: str) -> InstalledModel | None:
        return next((m for m in self.models() if m.name == name), None)

    def assistants(self) -> list[AssistantEntry]:
        """The picker's entries: the known assistants (installed or not), then other
        installed chat models; the classifier is a gate, not an assistant."""
        chat = {m.name: m for m in self.models() if not m.is_classifier}
        known = [spec.name for spec in chat_assistants()]  # the catalog's order
        names = [*known, *sorted(set(chat) - set(known))]
        return [AssistantEntry(name, chat.get(name)) for name in names]

    def profile(self, name: str) -> AssistantProfile | None:
        """The assistant's Modelfile (installed, else shipped), without loading the model;
        None when there is none or it does not parse."""
        if name not in self._profiles:
            self._profiles[name] = self._read_profile(name)
        return self._profiles[name]

    def _read_profile(self, name: str) -> AssistantProfile | None:
        path = modelfile_for(name, self.model(name))
        try:
            return load_profile(path) if path is not None else None
        except (OSError, InputError):
            return None

    # Loaded models (blocking: call from a thread worker)

    def assistant(self, name: str) -> Assistant:
        """The named assistant, loading it on first use; the previously loaded one is
        closed first so that only one model occupies memory."""
        with self._lock:
            if self._assistant is not None and self._assistant.name == name:
                return self._assistant
            if self._assistant is not None:
                previous, self._assistant = self._assistant, None
                previous.close()
            self._assistant = self._open_assistant(name)
            return self._assistant

    def is_loaded(self, name: str) -> bool:
        loaded = self._assistant
        return loaded is not None and loaded.name == name

    @property
    def loaded(self) -> Assistant | None:
        return self._assistant

    def gate(self) -> Gate:
        with self._lock:
            if self._gate is None:
                self._gate = self._open_gate()
            return self._gate

    @property
    def gate_loaded(self) -> bool:
        return self._gate is not None

    def close(self) -> None:
        with self._lock:
            for closable in (self._assistant, self._gate):
                if closable is not None:
                    closable.close()
            self._assistant = self._gate = None
