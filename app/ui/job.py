"""One turn in flight: the user's text, where it goes, and what has streamed back so far.

A turn is one of three kinds: `send` (a new message and its reply), `regenerate` (a new
version of the reply `replaces`, to the same question) or `edit` (a new version of the
question `replaces`, and its reply). The store keeps earlier versions beside the new one.

The thread worker writes only `cancel`, `assistant` and the texts it accumulates; the UI reads
them after the message that announces them, so no lock is needed (messages are ordered)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Literal

from app.assistants.runtime import Assistant
from app.documents import Document
from app.store import Provenance

JobKind = Literal["send", "regenerate", "edit"]


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
    kind: JobKind = "send"
    replaces: int | None = None  # regenerate: the reply; edit: the question
    # Models whose verification FAILED that the user chose to use anyway (this session).
    allow_unverified: frozenset[str] = frozenset()
    num_ctx: int | None = None  # the conversation's context (the model is reloaded at it)
    typed_text: str = ""  # what was typed, and the documents attached: back in the message
    documents: tuple[Document, ...] = ()  # box if the turn fails or is discarded
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

    @property
    def typed(self) -> bool:
        """The text came from the message box (a regenerated reply's question did not):
        it goes back there if the turn fails or is discarded."""
        return self.kind != "regenerate"

    def again(self, allow_unverified: frozenset[str]) -> Job:
        """The same request as a fresh turn (after the user answered a dialog)."""
        return Job(self.conversation_id, self.assistant_name, self.text, self.history,
                   self.system, self.params, self.think, self.gate, self.kind, self.replaces,
                   allow_unverified, self.num_ctx, self.typed_text, self.documents)

    def provenance(self, threads: int | None) -> Provenance:
        """What produced the reply: the loaded model and this turn's settings."""
        assert self.assistant is not None
        return self.assistant.provenance(system=self.system, params=self.params,
                                         think=self.think, threads=threads)
