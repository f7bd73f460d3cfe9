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
from typing import TYPE_CHECKING, Any, Protocol

from app.assistants.catalog import GATE_MODEL, chat_assistants
from app.assistants.profiles import AssistantProfile, load_profile
from app.assistants.registry import (
    InstalledModel,
    installed_models,
    remove_model,
    verify_model,
)
from app.assistants.runtime import Assistant, conversation_owner, model_sha256, modelfile_for
from app.engine.events import ReadingProgress
from app.store import Store
from app.ui.config import UIConfig
from converters.errors import AmicusError, InputError

if TYPE_CHECKING:
    from app.assistants.saved_reading import SavedReading
    from app.engine.memory import MemoryEstimate, ModelShape
    from app.engine.server_client import ServerTarget


class Verdict(Protocol):
    """The gate's verdict as the app reads it (app.engine.classifier.Verdict)."""

    @property
    def unsafe(self) -> bool: ...

    @property
    def prob_unsafe(self) -> float: ...

    @property
    def threshold(self) -> float: ...


class Gate(Protocol):
    """The intent-safety gate as the app uses it (app.assistants.gate.IntentGate)."""

    def check(self, history: list[dict[str, Any]], user_text: str, *,
              cancel: threading.Event | None = None,
              progress: Callable[[ReadingProgress], object] | None = None) -> Verdict:
        """`progress` hears of every chunk read; `cancel` stops between chunks
        (ReadingCancelled)."""
        ...

    def close(self) -> None: ...


# opener(name) -> Assistant; the real one also takes allow_unverified=True ("use anyway").
# Tests pass their own (a FakeEngine), which need not take it unless they exercise that.
AssistantOpener = Callable[..., Assistant]

GateOpener = Callable[..., Gate]  # like AssistantOpener, without the name


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


def real_assistant_opener(*, server: ServerTarget | None = None, threads: int | None = None,
                          gpu_layers: int | None = None, root: Path | None = None,
                          server_models: Mapping[str, str] | None = None,
                          num_ctx: Mapping[str, int] | None = None, persist: bool = True,
                          kv_budget_bytes: int | None = None) -> AssistantOpener:
    """Loads installed assistants (from `root`, default the data directory's models), or
    chats through `server`, asking it for each assistant under its `server_models` name
    (default: the assistant's own). `allow_unverified` is the dialog's "use anyway".

    Each assistant gets its `num_ctx` entry (the config's [num_ctx] table; default: its
    Modelfile's), unless the call gives one (a conversation's own size: the model is
    loaded again at that size). `persist` False (incognito): no KV state or reading rate is
    written to disk."""
    sizes = dict(num_ctx or {})

    def opener(name: str, *, allow_unverified: bool = False,
               num_ctx: int | None = None) -> Assistant:
        from dataclasses import replace

        from app.assistants.runtime import open_assistant

        target = replace(server, model=(server_models or {}).get(name)) if server else None
        return open_assistant(name, server=target, n_threads=threads,
                              n_gpu_layers=gpu_layers, root=root,
                              allow_unverified=allow_unverified,
                              num_ctx=num_ctx or sizes.get(name), persist=persist,
                              kv_budget_bytes=kv_budget_bytes)

    return opener


def real_gate_opener(*, threads: int | None = None, root: Path | None = None,
                     server: ServerTarget | None = None) -> GateOpener:
    """The installed classifier, or the one `server` serves (the same shared client as the
    chat and the command line)."""
    def opener(*, allow_unverified: bool = False) -> Gate:
        from app.assistants.gate import IntentGate  # loads llama.cpp: only when first used

        return IntentGate.open(n_threads=threads, root=root, server=server,
                               allow_unverified=allow_unverified)

    return opener


def server_targets(config: UIConfig) -> tuple[ServerTarget | None, ServerTarget | None]:
    """The chat server and the gate's server the config names (None: embedded), sharing
    one set of client settings: the API key (environment, else api_key_file) and ca_file.
    The key is read only when a server is named."""
    if not (config.endpoint or config.gate_endpoint):
        return None, None
    from app.engine.credentials import load_api_key
    from app.engine.server_client import ServerOptions, ServerTarget

    options = ServerOptions(api_key=load_api_key(config.api_key_file), ca_file=config.ca_file)
    chat = ServerTarget(config.endpoint, options=options) if config.endpoint else None
    gate = (ServerTarget(config.gate_endpoint, api=config.gate_api, options=options)
            if config.gate_endpoint else None)
    return chat, gate


class Services:
    def __init__(self, store: Store, *, open_assistant: AssistantOpener | None = None,
                 open_gate: GateOpener | None = None, models_root: Path | None = None,
                 available_memory: Callable[[], int] | None = None) -> None:
        """`available_memory`: bytes free now (default: measured; tests inject it)."""
        self.store = store
        self._available_memory = available_memory
        self._loaded_ctx: int | None = None
        self._shapes: dict[str, ModelShape] = {}  # GGUF headers read for F4's estimates
        self._open_assistant = open_assistant or real_assistant_opener()
        self._open_gate = open_gate or real_gate_opener()
        self._models_root = models_root
        self._models: list[InstalledModel] | None = None
        self._profiles: dict[str, AssistantProfile | None] = {}
        self._assistant: Assistant | None = None
        self._gate: Gate | None = None
        self._lock = threading.Lock()
        self._forgotten: set[str] = set()  # owners of the conversations deleted (KV states)

    # Installed models (read from disk once, again on refresh)

    def models(self) -> list[InstalledModel]:
        if self._models is None:
            self._models = installed_models(self._models_root)
        return self._models

    def refresh(self) -> None:
        self._models = None
        self._profiles.clear()
        self._shapes.clear()

    def verify(self, model: InstalledModel) -> list[str]:
        """Check the model's checksums (seconds for gigabytes: call from a thread worker);
        the problems found, empty when every file matches its manifest."""
        try:
            problems = verify_model(model)
        except OSError as exc:
            problems = [f"cannot verify: {exc.strerror or exc}"]
        self._models = None  # its checksum status changed
        return problems

    def remove(self, model: InstalledModel) -> None:
        """Delete an installed model from this computer (OSError if it cannot be); it is
        closed first if it is the one loaded."""
        with self._lock:
            if self._assistant is not None and self._assistant.name == model.name:
                previous, self._assistant = self._assistant, None
                previous.close()
            if self._gate is not None and model.name == GATE_MODEL:
                gate, self._gate = self._gate, None
                gate.close()
        remove_model(model)
        self.refresh()

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

    def assistant(self, name: str, *, allow_unverified: bool = False,
                  num_ctx: int | None = None) -> Assistant:
        """The named assistant, loading it on first use; the previously loaded one is
        closed first so that only one model occupies memory. A model whose verification
        FAILED raises UnverifiedModelError unless `allow_unverified` ("use anyway").
        `num_ctx`: a conversation's own context size; a model loaded at another size is
        loaded again at this one (None: whatever size is loaded, else the configured one).
        Refusals (ContextSizeError, InsufficientMemoryError) come from the load."""
        with self._lock:
            loaded = self._assistant
            if self.is_loaded(name, num_ctx):
                assert loaded is not None
                return loaded
            if loaded is not None:
                self._assistant = None
                loaded.close()
                self._discard_forgotten()
            # Only the options given: tests' openers need not take them.
            options: dict[str, Any] = {}
            if allow_unverified:
                options["allow_unverified"] = True
            if num_ctx is not None:
                options["num_ctx"] = num_ctx
            self._assistant = self._open_assistant(name, **options)
            # The size asked for: llama.cpp may round the one it reports.
            self._loaded_ctx = num_ctx
            return self._assistant

    def is_loaded(self, name: str, num_ctx: int | None = None) -> bool:
        """`name` is loaded (at `num_ctx` tokens of context, when given)."""
        loaded = self._assistant
        return loaded is not None and loaded.name == name and (
            num_ctx is None or num_ctx in (self._loaded_ctx, loaded.engine.n_ctx))

    def memory_estimate(self, name: str, num_ctx: int) -> MemoryEstimate:
        """What `name`'s model takes at `num_ctx` tokens of context (F4 shows it), after
        checking that size against the trained context (ContextSizeError) and the memory
        free now, counting the model loaded now as free since it is closed before the
        reload (InsufficientMemoryError). Reads the GGUF's header only."""
        # Imported on use: app.engine.memory loads llama.cpp's library, which startup avoids.
        from app.engine.memory import available_memory, check_memory

        model = self.model(name)
        if model is None:
            raise InputError(f"{name} is not installed")
        shape = self._shape(model)
        available = (self._available_memory or available_memory)()
        loaded = self._assistant
        memory = getattr(loaded.engine, "memory", None) if loaded is not None else None
        if memory is not None:
            available += memory.total
        return check_memory(model.gguf, num_ctx, available=available, shape=shape)

    def _shape(self, model: InstalledModel) -> ModelShape:
        from app.engine.memory import ModelShape

        if model.name not in self._shapes:
            self._shapes[model.name] = ModelShape.of(model.gguf)
        return self._shapes[model.name]

    def trained_context(self, name: str) -> int | None:
        """The most context `name`'s model was trained for (its GGUF's header)."""
        model = self.model(name)
        if model is None:
            return None
        try:
            return self._shape(model).trained_context or None
        except (OSError, ValueError, AmicusError):
            return None

    def saved_reading(self, name: str, messages: list[dict[str, str]], *,
                      system: str | None = None, params: dict[str, Any] | None = None,
                      think: bool | None = None, generating: bool = False) -> SavedReading:
        """The saved reading (KV state) serving this conversation of `name` when that model
        is loaded, else every one saved for its model file; none in incognito. While a
        reply is `generating` the engine is not asked (its context is in use) and the model
        file's states are given. Blocking (the first key of a model without a manifest
        checksum hashes its file): call from a thread worker."""
        from app.assistants.saved_reading import (
            SavedReading,
            conversation_reading,
            model_reading,
        )

        if self.store.incognito:
            return SavedReading(incognito=True)
        loaded = self._assistant
        if loaded is not None and loaded.name == name and not generating:
            return conversation_reading(loaded, messages, system=system, params=params,
                                        think=think)
        model = self.model(name)
        if model is None:
            return SavedReading()
        from app.engine.kv_state import KVStateStore, model_key

        store = KVStateStore.default()
        return model_reading(store, model_key(store, model.gguf, model_sha256(model)))

    def forget_reading(self, conversation_id: int) -> int:
        """A conversation was deleted: what was read for it goes too, from the loaded
        model's cache and from the states saved on disk, whichever model saved them.
        Returns how many saved states went (0 when none could: a read-only disk)."""
        if self.store.incognito:
            return 0  # incognito never saves a state
        owner = conversation_owner(conversation_id)
        self._forgotten.add(owner)  # a model closing meanwhile saves its cache: see below
        loaded = self._assistant
        try:
            removed = loaded.forget(owner) if loaded is not None else 0
        except OSError:
            removed = 0
        return removed + self._discard_forgotten()

    def _discard_forgotten(self) -> int:
        """Remove the saved states of the conversations deleted this session: also after a
        model closed, since closing saves its cache (perhaps a deleted conversation's)."""
        from app.engine.kv_state import KVStateStore

        directory = KVStateStore.default_directory()
        if not self._forgotten or not directory.is_dir():
            return 0
        try:
            return KVStateStore(directory).discard_owned(*self._forgotten)
        except OSError:
            return 0  # a read-only data folder: nothing could be saved there either

    @property
    def loaded(self) -> Assistant | None:
        return self._assistant

    def gate(self, *, allow_unverified: bool = False) -> Gate:
        """The intent-safety gate, loaded on first use (UnverifiedModelError for a
        classifier whose verification FAILED, unless `allow_unverified`)."""
        with self._lock:
            if self._gate is None:
                self._gate = (self._open_gate(allow_unverified=True) if allow_unverified
                              else self._open_gate())
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
            self._discard_forgotten()
