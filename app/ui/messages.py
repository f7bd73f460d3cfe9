"""Every message the app's parts send one another.

Turn messages are posted by the inference thread worker to the chat pane that started it
(post_message is thread-safe and does not wait for the UI); the pane's handlers own every
change they cause, and they go no further (they do not bubble). The others bubble up from
the widget that posts them to the screen that acts on them: what the user picked or typed
in the sidebar, what was sent from the message box, what a turn changed in a conversation.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message

from app.assistants.server import ServerListing
from app.engine.events import Finished, ReadingProgress
from app.ui.job import Job
from app.ui.services import Verdict


class TurnMessage(Message, bubble=False):
    """Something happened to the turn in flight."""

    def __init_subclass__(cls, bubble: bool | None = False, **kwargs: Any) -> None:
        # Message makes every subclass bubble unless told otherwise: these never do.
        super().__init_subclass__(bubble=bubble, **kwargs)

    def __init__(self, job: Job) -> None:
        super().__init__()
        self.job = job


class GateChecking(TurnMessage):
    """The intent-safety classifier is loading or judging the message."""


class GateVerdict(TurnMessage):
    """The classifier's verdict; an unsafe one ends the turn (the text stays typed)."""

    def __init__(self, job: Job, verdict: Verdict) -> None:
        super().__init__(job)
        self.verdict = verdict


class ModelLoading(TurnMessage):
    """The assistant's model is being loaded (first use, or another assistant was loaded)."""


class TurnAccepted(TurnMessage):
    """The model is loaded and the gate (if on) let the message through: store it."""


class PromptReading(TurnMessage):
    """The engine starts reading the prompt (`evaluating` of `prompt_tokens` tokens; the
    rest comes from the KV cache, `restored` of them from a state saved on disk)."""

    def __init__(self, job: Job, prompt_tokens: int, evaluating: int,
                 restored: int = 0) -> None:
        super().__init__(job)
        self.prompt_tokens = prompt_tokens
        self.evaluating = evaluating
        self.restored = restored


class ReadingProgressed(TurnMessage):
    """A chunk of the prompt was read: `progress.read` of `progress.total` tokens, its
    rate and time left (Esc stops reading at the next chunk; what was read is kept)."""

    def __init__(self, job: Job, progress: ReadingProgress) -> None:
        super().__init__(job)
        self.progress = progress


class StreamChunk(TurnMessage):
    """Text that streamed in since the last chunk (batched: about every 30 ms)."""

    def __init__(self, job: Job, thinking: str, answer: str) -> None:
        super().__init__(job)
        self.thinking = thinking
        self.answer = answer


class TurnFinished(TurnMessage):
    """The reply is complete, or was cancelled (`finished.cancelled`) with a partial text;
    None when it was cancelled before anything was sent to the model."""

    def __init__(self, job: Job, finished: Finished | None) -> None:
        super().__init__(job)
        self.finished = finished


class TurnFailed(TurnMessage):
    """The turn failed: a model that does not load, an engine error, a full disk..."""

    def __init__(self, job: Job, title: str, error: BaseException) -> None:
        super().__init__(job)
        self.title = title
        self.error = error


class AssistantChosen(Message):
    """The picker's selection changed."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name


class ConversationChosen(Message):
    """A conversation was picked in the list (None: the list is empty), or a search hit
    in it (any assistant's): then `message_id` is the message that matched (None: its
    title did)."""

    def __init__(self, conversation_id: int | None, *, message_id: int | None = None) -> None:
        super().__init__()
        self.conversation_id = conversation_id
        self.message_id = message_id


class SearchChanged(Message):
    """The text of the sidebar's search box changed: its list is to be filtered again."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ConversationUpdated(Message):
    """A turn stored messages in a conversation (and may have retitled it): the list and
    the header catch up; with `redraw`, its messages are drawn again (a discarded version
    gave its place back to the one shown before)."""

    def __init__(self, conversation_id: int, *, redraw: bool = False) -> None:
        super().__init__()
        self.conversation_id = conversation_id
        self.redraw = redraw


class ModelsChanged(Message):
    """An installed model was verified again or removed: the picker and header catch up."""


class PromptSubmitted(Message):
    """The user sent the text of the message box."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class Copied(Message):
    """Something was copied to the clipboard (the screen confirms it)."""

    def __init__(self, what: str) -> None:
        super().__init__()
        self.what = what


class ModelVerified(Message):
    """A model's checksums were checked (problems empty: all files match the manifest)."""

    def __init__(self, name: str, problems: list[str]) -> None:
        super().__init__()
        self.name = name
        self.problems = problems


class ServerListed(Message):
    """What the server offers (its /v1/models, matched to the assistants), or why it could
    not be listed (`problem`)."""

    def __init__(self, listing: ServerListing | None, problem: str = "") -> None:
        super().__init__()
        self.listing = listing
        self.problem = problem


class BackendProbed(Message):
    """What this llama.cpp build can do (GPU offload or CPU only), found off the UI thread
    because it loads llama.cpp."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
