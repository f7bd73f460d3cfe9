"""The body of the inference worker: gate, load, stream. It runs in a thread and touches no
widget: everything it learns it posts as a message to the chat pane that started it
(thread-safe and non-blocking), so the model never waits on the screen. Deltas are
batched: one message every ~30 ms at most, however fast the tokens come, and at once when
they come slowly.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from textual.message import Message

from app.assistants.catalog import GATE_MODEL
from app.assistants.runtime import conversation_owner
from app.engine.errors import EngineError, ReadingCancelled
from app.engine.events import (
    AnswerDelta,
    Event,
    Finished,
    PromptStarted,
    ReadingProgress,
    ThinkingDelta,
)
from app.errors import describe
from app.ui.job import Job
from app.ui.messages import (
    GateChecking,
    GateVerdict,
    ModelLoading,
    PromptReading,
    ReadingProgressed,
    StreamChunk,
    TurnAccepted,
    TurnFailed,
    TurnFinished,
)
from app.ui.services import Services

BATCH_SECONDS = 0.03
Post = Callable[[Message], object]


def run_turn(job: Job, services: Services, post: Post) -> None:
    """Gate the message (if asked), load the model, stream the reply; never raises."""
    try:
        _run(job, services, post)
    except Exception as exc:  # whatever happens, the pane hears of it and carries on
        post(TurnFailed(job, describe(exc).title, exc))


def _run(job: Job, services: Services, post: Post) -> None:
    if job.gate:
        post(GateChecking(job))
        try:
            gate = services.gate(allow_unverified=GATE_MODEL in job.allow_unverified)
        except Exception as exc:  # not installed, or does not load: the turn is not sent
            post(TurnFailed(job, "The intent-safety gate could not be loaded", exc))
            return
        try:
            verdict = gate.check(job.history, job.text, cancel=job.cancel,
                                 progress=lambda report: post(ReadingProgressed(job, report)))
        except ReadingCancelled:  # Esc while the gate read: nothing was sent
            post(TurnFinished(job, None))
            return
        post(GateVerdict(job, verdict))
        if verdict.unsafe:
            return
        if job.cancelled:  # stopped while the gate judged: do not load a model for nothing
            post(TurnFinished(job, None))
            return
    if not services.is_loaded(job.assistant_name, job.num_ctx):
        post(ModelLoading(job))
    assistant = services.assistant(
        job.assistant_name, allow_unverified=job.assistant_name in job.allow_unverified,
        num_ctx=job.num_ctx)
    job.assistant = assistant
    if job.cancelled:  # stopped while the model loaded: nothing was sent
        post(TurnFinished(job, None))
        return
    post(TurnAccepted(job))
    events = assistant.stream([*job.history, {"role": "user", "content": job.text}],
                              system=job.system, params=job.params, think=job.think,
                              cancel=job.cancel, owner=conversation_owner(job.conversation_id))
    pump(job, events, post)


def pump(job: Job, events: Iterable[Event], post: Post,
         clock: Callable[[], float] = time.perf_counter) -> None:
    """Forward the engine's events as messages, deltas batched."""
    thinking: list[str] = []
    answer: list[str] = []
    last = clock()

    def flush() -> None:
        nonlocal last
        if thinking or answer:
            post(StreamChunk(job, "".join(thinking), "".join(answer)))
            thinking.clear()
            answer.clear()
        last = clock()

    for event in events:
        if isinstance(event, PromptStarted):
            post(PromptReading(job, event.prompt_tokens, event.evaluating, event.restored))
        elif isinstance(event, ReadingProgress):
            post(ReadingProgressed(job, event))
        elif isinstance(event, ThinkingDelta):
            thinking.append(event.text)
        elif isinstance(event, AnswerDelta):
            answer.append(event.text)
        elif isinstance(event, Finished):
            flush()
            post(TurnFinished(job, event))
            return
        if clock() - last >= BATCH_SECONDS:
            flush()
    raise EngineError("the engine stopped without finishing the reply")
