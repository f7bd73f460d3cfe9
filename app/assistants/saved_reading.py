"""How much disk a conversation's saved reading takes (its KV cache state, saved so that a
case reopened tomorrow is not read again), shown in the conversation's settings (F4), and
forgetting it.

    reading = conversation_reading(assistant, messages, system=..., params=..., think=...)
    reading = model_reading(store, key)            # the model is not loaded: its states
    reading.describe()                             # "Saved reading: 337.0 MB on disk, ..."
    reading.forget()                               # the state files are removed

Which state serves a conversation depends on its tokens, which only the loaded model's
tokenizer knows: with the model loaded, the state it would restore; without it, nothing is
loaded just for this, and the line gives what is saved for the model file. Incognito writes
no state, so it says so without opening the store.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from app.assistants.registry import human_size
from app.assistants.runtime import Assistant
from app.engine.kv_state import MIN_SAVED_TOKENS, KVStateStore, SavedState
from app.engine.messages import Message


@dataclass(frozen=True)
class SavedReading:
    """Saved states on disk: the one serving a conversation (`shared` of its `total`
    tokens), or all of a model's (`shared` None: the model is not loaded). `engine`: asked
    of the loaded engine, which saves what it read only when it closes or reads another
    conversation (so none may be saved yet)."""

    states: tuple[SavedState, ...] = ()
    store: KVStateStore | None = None
    shared: int | None = None
    total: int | None = None
    incognito: bool = False
    engine: bool = False

    @property
    def size(self) -> int:
        return sum(state.size for state in self.states)

    @property
    def tokens(self) -> int:
        return sum(len(state.tokens) for state in self.states)

    def describe(self) -> str:
        """One line: what is saved, its size on disk, and what it spares reading."""
        if self.incognito:
            return "Saved reading: none (incognito: nothing is written to disk)"
        if not self.states and self.engine:
            return (f"Saved reading: none yet (a reading of {MIN_SAVED_TOKENS} tokens or more "
                    "is saved when the model closes or reads another conversation)")
        if not self.states:
            return "Saved reading: none saved"
        held = f"{human_size(self.size)} on disk, {self.tokens:,} tokens"
        if self.shared is not None:
            return (f"Saved reading: {held}; the first {self.shared:,} of this "
                    f"conversation's {self.total or 0:,} tokens are not read again")
        count = "1 state" if len(self.states) == 1 else f"{len(self.states)} states"
        return (f"Saved reading for this model: {count}, {held} "
                "(this conversation's shows once the model is loaded)")

    def forget(self) -> None:
        """Remove these states from disk (OSError when they cannot be)."""
        if self.store is not None:
            for state in self.states:
                self.store.discard(state)


def conversation_reading(assistant: Assistant, messages: Sequence[Message], *,
                         system: str | None = None, params: dict[str, Any] | None = None,
                         think: bool | None = None) -> SavedReading:
    """The saved state the loaded `assistant` would restore for the conversation
    `messages` (rendered as `stream` renders them); none without messages, for a server,
    or in incognito (the engine then has no store)."""
    store = getattr(assistant.engine, "states", None)
    if not messages or not isinstance(store, KVStateStore):
        return SavedReading()
    found = assistant.saved_state(messages, system=system, params=params, think=think)
    if found is None:
        return SavedReading(store=store, engine=True)
    state, shared, total = found
    return SavedReading((state,), store, shared, total, engine=True)


def model_reading(store: KVStateStore, key: str) -> SavedReading:
    """Every state saved for the model file whose key (`kv_state.model_key`) is `key`."""
    return SavedReading(tuple(store.entries(key)), store)
