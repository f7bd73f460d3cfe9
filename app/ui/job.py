"""One turn in flight: the user's text, where it goes, and what has streamed back so far.

The thread worker writes only `cancel`, `assistant` and the texts it accumulates; the UI reads
them after the message that announces them, so no lock is needed (messages are ordered)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from app.assistants.runtime import Assistant
from app.documents import Document


@dataclass(eq=False)
class Job:
    conversation_id: int
    assistant_name: str
    text: str  # the message sent: attached documents' blocks, then what was typed
    history: list[dict[str, str]]
    system: str | None
    params: dict[str, Any] | None  # per-conversation overrides of the Modelfile's
    think: bool | None
    gate: bool
    num_ctx: int | None = None  # the conversation's context (the model is reloaded at it)
    typed: str = ""  # what was typed and attached: back in the message box if the turn
    documents: tuple[Document, ...] = ()  # fails or is discarded
    cancel: threading.Event = field(default_factory=threading.Event)
    assistant: Assistant | None = None  # set by the worker once the model is loaded
    user_id: int | None = None  # store ids, set when the turn is accepted
    reply_id: int | None = None
    thinking: str = ""  # what has streamed so far (shown again after switching back)
    answer: str = ""
    stage: str = "starting"  # gate, loading, reading, generating, cancelling
    prompt_tokens: int = 0
    discard: bool = False  # the turn could not be saved: drop whatever comes back

    @property
    def cancelled(self) -> bool:
        return self.cancel.is_set()
