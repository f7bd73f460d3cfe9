"""A scripted stand-in for Engine, for UI and command-line tests that need no model.

It streams scripted token texts through the real output pipeline (stop strings, the think
split), honours cancel, num_predict and EngineBusyError like the real engine, and records
every call. `gate` lets a test hold the stream before each token:

    gate = threading.Event()
    fake = FakeEngine(["<think>", "hm", "</think>", "Hello", " world"], gate=gate)
    ...  # start the UI's worker, check the "reading the prompt" state
    gate.set()
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

from app.engine.backend import BackendInfo
from app.engine.errors import EngineBusyError
from app.engine.events import (
    Event,
    Finished,
    GenerationStats,
    PromptStarted,
    ReadingProgress,
    StopReason,
    tokens_per_second,
)
from app.engine.messages import with_system
from app.engine.output import OutputParser
from app.engine.params import DEFAULT_NUM_CTX, GenerationParams
from app.engine.reading import PromptEstimate

Reply = str | Sequence[str]  # a text, or the token texts of one reply
Script = Reply | Callable[[list[dict[str, Any]]], Reply]
DEFAULT_REPLY = "This is a scripted reply from the fake engine."


def split_tokens(text: str) -> list[str]:
    """A reply string cut into token-like pieces: words with their leading space."""
    return re.findall(r"\s*\S+|\s+", text)


class FakeEngine:
    """Same interface as Engine (see app.engine.protocol.ChatEngine).

    `script`: the reply to every call (a string, or its token texts, `<think>` blocks and
    stop strings included as a model would write them), or a function of the messages
    returning one. `replies`: one reply per call instead, the last one repeating.
    `error`: raised at the first event instead of generating. `read_chunks`: the prompt
    is "read" in that many chunks (prompt_delay_s spread over them), each reported as
    ReadingProgress, a cancel stopping between two. `dropped_turns`: what every reply
    reports as left out of the context. A reply reaching n_ctx tokens (prompt included)
    stops with stop_reason "context"."""

    def __init__(self, script: Script = DEFAULT_REPLY, *, replies: Sequence[Reply] = (),
                 token_delay_s: float = 0.0, prompt_delay_s: float = 0.0,
                 gate: threading.Event | None = None, n_ctx: int = DEFAULT_NUM_CTX,
                 error: Exception | None = None, read_chunks: int = 1,
                 dropped_turns: int = 0) -> None:
        self._script = script
        self._replies = list(replies)
        self._token_delay = token_delay_s
        self._prompt_delay = prompt_delay_s
        self._gate = gate
        self._n_ctx = n_ctx
        self.error = error
        self._read_chunks = max(1, read_chunks)
        self._dropped = dropped_turns
        self.reading_rate: float | None = None  # what `estimate` reports as measured
        self.calls: list[dict[str, Any]] = []
        self.owners: list[str | None] = []  # each stream's conversation
        self.forgotten: list[str] = []  # the conversations `forget` was told of
        self.closed = False
        self._lock = threading.Lock()

    @property
    def n_ctx(self) -> int:
        return self._n_ctx

    def backend_info(self) -> BackendInfo:
        return BackendInfo(gpu_offload_supported=False, gpu_layers=0, total_layers=0,
                           threads=1, physical_cores=1, adaptive_threads=False,
                           system_info="fake engine (scripted replies)")

    def stream(self, messages: Sequence[Mapping[str, Any]], *, system: str | None = None,
               params: Mapping[str, Any] | GenerationParams | None = None,
               think: bool | None = None, cancel: threading.Event | None = None,
               owner: str | None = None) -> Iterator[Event]:
        if not self._lock.acquire(blocking=False):
            raise EngineBusyError("the model is already generating; wait or cancel first")
        self.owners.append(owner)
        try:
            yield from self._generate(with_system(messages, system),
                                      GenerationParams.coerce(params), think,
                                      cancel or threading.Event())
        finally:
            self._lock.release()

    def forget(self, owner: str) -> int:
        """As Engine.forget, with nothing saved: recorded for the tests."""
        self.forgotten.append(owner)
        return 0

    def _generate(self, messages: list[dict[str, Any]], params: GenerationParams,
                  think: bool | None, cancel: threading.Event) -> Iterator[Event]:
        self.calls.append({"messages": messages, "params": params, "think": think})
        if self.error is not None:
            raise self.error
        prompt_tokens = _count(messages)
        yield PromptStarted(prompt_tokens, prompt_tokens, self._dropped, 1)
        read = yield from self._read(prompt_tokens, cancel)
        parser = OutputParser(params.stop)
        started = time.perf_counter()
        if read < prompt_tokens:
            reason: StopReason = "cancelled"
            count = 0
        else:
            reason, count = yield from self._tokens(parser, self._reply(messages), params,
                                                    cancel, self._n_ctx - prompt_tokens)
        yield from parser.finish()
        ms = (time.perf_counter() - started) * 1000
        stats = _stats(prompt_tokens, count, ms, reason)
        yield Finished(parser.texts.answer, parser.texts.thinking, replace(
            stats, dropped_turns=self._dropped, num_ctx=self._n_ctx,
            num_predict=params.num_predict, prompt_read=read if read < prompt_tokens else -1))

    def estimate(self, messages: Sequence[Mapping[str, Any]], *, system: str | None = None,
                 params: Mapping[str, Any] | GenerationParams | None = None,
                 think: bool | None = None) -> PromptEstimate:
        """As Engine.estimate, with the fake's count (a token per four characters) and
        `reading_rate` (None: not measured yet)."""
        tokens = _count(with_system(messages, system))
        reserve = GenerationParams.coerce(params).answer_reserve(self._n_ctx)
        return PromptEstimate(tokens, self._n_ctx, reserve, tokens, self._dropped,
                              tokens <= self._n_ctx - reserve, self.reading_rate)

    def _read(self, prompt_tokens: int, cancel: threading.Event) -> Generator[Event, None, int]:
        chunks = self._read_chunks
        read = 0
        for i in range(1, chunks + 1):
            if cancel.is_set():
                return read
            time.sleep(self._prompt_delay / chunks)
            read = prompt_tokens * i // chunks
            if chunks > 1:
                left = (chunks - i) * self._prompt_delay / chunks
                yield ReadingProgress(read, prompt_tokens, 0.0, left)
        return read

    def _tokens(self, parser: OutputParser, tokens: list[str], params: GenerationParams,
                cancel: threading.Event,
                room: int) -> Generator[Event, None, tuple[StopReason, int]]:
        count = 0
        for token in tokens:
            if self._gate is not None:
                self._gate.wait()
            if cancel.is_set():
                return "cancelled", count
            if 0 < params.num_predict <= count:
                return "length", count
            if count >= room:
                return "context", count
            time.sleep(self._token_delay)
            count += 1
            yield from parser.feed_text(token)
            if parser.stopped:
                return "stop", count
        return ("cancelled" if cancel.is_set() else "stop"), count

    def _reply(self, messages: list[dict[str, Any]]) -> list[str]:
        if self._replies:
            reply = self._replies[min(len(self.calls), len(self._replies)) - 1]
        elif callable(self._script):
            reply = self._script(messages)
        else:
            reply = self._script
        return split_tokens(reply) if isinstance(reply, str) else list(reply)

    def close(self) -> None:
        self.closed = True


def _count(messages: Sequence[Mapping[str, Any]]) -> int:
    return sum(len(str(m.get("content", ""))) for m in messages) // 4 + 1


def _stats(prompt_tokens: int, completion: int, ms: float, reason: StopReason) -> GenerationStats:
    return GenerationStats(
        prompt_tokens=prompt_tokens, prompt_evaluated=prompt_tokens,
        completion_tokens=completion, prompt_ms=0.0, generation_ms=round(ms, 2),
        tokens_per_second=tokens_per_second(completion, ms / 1000),
        dropped_turns=0, stop_reason=reason, threads=1)
