"""One generation on a loaded llama.cpp context: reuse the cache, read the prompt, sample.

The loop drives llama.cpp directly (eval one token, sample the next) rather than through
`create_chat_completion`, because we render the prompt ourselves and need to see every
token: to stop on a cancel within one token, to hold back stop strings, and to split the
thinking from the answer.

The prompt is read in chunks sized to take about READ_CHUNK_SECONDS each (measured on the
first chunks): a llama.cpp decode call cannot be interrupted, so the chunk is how long a
cancel may wait, and each chunk reports its progress. Reading stops between chunks on a
cancel; what was read stays in the KV cache, so sending the same prompt again continues
from there (the longest common prefix is reused).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass

import llama_cpp

from app.engine.errors import EngineError
from app.engine.events import (
    Event,
    Finished,
    GenerationStats,
    PromptStarted,
    ReadingProgress,
    StopReason,
    tokens_per_second,
)
from app.engine.output import OutputParser
from app.engine.params import GenerationParams
from app.engine.prefix import common_prefix
from converters.llama_runtime import (
    Sampler,
    cached_tokens,
    is_end_of_generation,
    reset_cache,
    token_piece,
    truncate_cache,
)

__all__ = ["ChunkPlan", "Generation", "common_prefix", "read_chunks", "reuse_cache"]


def reuse_cache(llm: llama_cpp.Llama, tokens: Sequence[int]) -> int:
    """Keep the cached tokens the new prompt starts with; return how many are kept.

    At least one prompt token is always evaluated again: its logits give the first answer
    token. Models whose memory cannot be cut (recurrent layers) start from scratch unless
    the cache is exactly a prefix of the prompt."""
    keep = min(common_prefix(cached_tokens(llm), tokens), len(tokens) - 1)
    if not truncate_cache(llm, keep):
        reset_cache(llm)
        keep = 0
    return keep


READ_CHUNK_SECONDS = 1.0
FIRST_CHUNK = 32  # small enough to answer a cancel quickly before any rate is known
CHUNK_STEP = 16  # chunk sizes are multiples of this (the CPU kernels work in row groups)


class ChunkPlan:
    """Chunk sizes for reading a prompt: `fixed` tokens each, or sized from the rate seen so
    far to last about `seconds` each, between CHUNK_STEP and `limit` (llama.cpp's n_batch)."""

    def __init__(self, limit: int, fixed: int | None = None,
                 seconds: float = READ_CHUNK_SECONDS) -> None:
        self.limit = limit
        self.fixed = min(fixed, limit) if fixed else None
        self.seconds = seconds
        self.size = self.fixed or min(FIRST_CHUNK, limit)

    def measured(self, tokens: int, seconds: float) -> None:
        if self.fixed or seconds <= 0:
            return
        wanted = int(tokens / seconds * self.seconds) // CHUNK_STEP * CHUNK_STEP
        self.size = max(CHUNK_STEP, min(self.limit, wanted))


def read_chunks(tokens: Sequence[int], evaluate: Callable[[list[int], int], None],
                plan: ChunkPlan, cancel: threading.Event | None = None,
                ) -> Generator[ReadingProgress, None, int]:
    """Evaluate `tokens` chunk by chunk (`evaluate(chunk, offset)`), yielding the progress
    after each; stops early when `cancel` is set between chunks. Returns how many tokens
    were read. The chat engine and the classifier both read this way."""
    started = time.perf_counter()
    read = 0
    while read < len(tokens):
        if cancel is not None and cancel.is_set():
            break
        chunk_started = time.perf_counter()
        chunk = list(tokens[read:read + plan.size])
        evaluate(chunk, read)
        now = time.perf_counter()
        plan.measured(len(chunk), now - chunk_started)
        read += len(chunk)
        rate = read / (now - started) if now > started else 0.0
        left = (len(tokens) - read) / rate if rate else 0.0
        yield ReadingProgress(read, len(tokens), round(rate, 2), left)
    return read


@dataclass
class _Clock:
    requested: float  # when the caller asked (rendering included)
    prompt_ms: float = 0.0
    generation_start: float = 0.0
    generation_ms: float = 0.0
    first_token_ms: float = 0.0

    def mark_first_token(self) -> None:
        self.first_token_ms = (time.perf_counter() - self.requested) * 1000


class Generation:
    """Runs one prompt to completion as an event stream (see app.engine.events)."""

    def __init__(self, llm: llama_cpp.Llama, tokens: list[int], params: GenerationParams, *,
                 inside_think: bool, dropped_turns: int, threads: int,
                 cancel: threading.Event | None, requested: float | None = None,
                 chunks: ChunkPlan | None = None, restored: int = 0) -> None:
        self._llm = llm
        self._tokens = tokens
        self._params = params
        self._parser = OutputParser(params.stop, inside_think=inside_think)
        self._dropped = dropped_turns
        self._threads = threads
        self._cancel = cancel or threading.Event()
        self._clock = _Clock(requested or time.perf_counter())
        self._chunks = chunks or ChunkPlan(llm.n_batch)
        self._restored = restored
        self._completion = 0
        self._evaluated = 0
        self._read = 0

    def run(self) -> Iterator[Event]:
        started = time.perf_counter()
        kept = reuse_cache(self._llm, self._tokens)
        self._evaluated = len(self._tokens) - kept
        restored = min(self._restored, kept)
        yield PromptStarted(len(self._tokens), self._evaluated, self._dropped, self._threads,
                            restored)
        reason: StopReason | None = yield from self._read_prompt(self._tokens[kept:])
        self._clock.prompt_ms = (time.perf_counter() - started) * 1000
        self._clock.generation_start = time.perf_counter()
        if reason is None:
            reason = yield from self._sample_loop()
        yield from self._parser.finish()
        self._clock.generation_ms = (time.perf_counter() - self._clock.generation_start) * 1000
        yield self._finished(reason)

    def _read_prompt(self, tokens: list[int]) -> Generator[Event, None, StopReason | None]:
        """Evaluate in chunks, reporting each and checking for a cancel between them (a
        chunk itself cannot be interrupted)."""
        self._read = yield from read_chunks(tokens, lambda chunk, _offset: self._eval(chunk),
                                            self._chunks, self._cancel)
        return "cancelled" if self._read < len(tokens) else None

    def _sample_loop(self) -> Generator[Event, None, StopReason]:
        llm, limit, n_ctx = self._llm, self._params.num_predict, self._llm.n_ctx()
        sampler = _sampler(llm, self._params)
        try:
            pending: int | None = None
            while True:
                if self._cancel.is_set():
                    return "cancelled"
                if 0 < limit <= self._completion:
                    return "length"  # before evaluating a token nobody will use
                if pending is not None:
                    if llm.n_tokens >= n_ctx:
                        return "context"  # no cell left for the token just written
                    self._eval([pending])
                token = sampler.sample(llm)
                if not self._clock.first_token_ms:
                    self._clock.mark_first_token()
                if is_end_of_generation(llm, token):
                    return "stop"
                self._completion += 1
                yield from self._parser.feed_bytes(token_piece(llm, token))
                if self._parser.stopped:
                    return "stop"
                pending = token
        finally:
            sampler.close()

    def _eval(self, tokens: list[int]) -> None:
        try:
            self._llm.eval(tokens)
        except RuntimeError as exc:  # llama_decode failed: out of memory, context full
            raise EngineError(f"llama.cpp could not evaluate {len(tokens)} tokens ({exc})") \
                from exc

    def _finished(self, reason: StopReason) -> Finished:
        ms = self._clock.generation_ms
        stats = GenerationStats(
            prompt_tokens=len(self._tokens), prompt_evaluated=self._evaluated,
            completion_tokens=self._completion, prompt_ms=round(self._clock.prompt_ms, 2),
            generation_ms=round(ms, 2),
            tokens_per_second=tokens_per_second(self._completion, ms / 1000),
            dropped_turns=self._dropped, stop_reason=reason, threads=self._threads,
            first_token_ms=round(self._clock.first_token_ms, 2),
            prompt_read=self._read if self._read < self._evaluated else -1,
            prompt_restored=min(self._restored, len(self._tokens) - self._evaluated),
            num_ctx=self._llm.n_ctx(), num_predict=self._params.num_predict)
        texts = self._parser.texts
        return Finished(texts.answer, texts.thinking, stats)


def _sampler(llm: llama_cpp.Llama, p: GenerationParams) -> Sampler:
    return Sampler(llm, temperature=p.temperature, top_k=p.top_k, top_p=p.top_p,
                   min_p=p.min_p, repeat_penalty=p.repeat_penalty,
                   repeat_last_n=p.repeat_last_n, presence_penalty=p.presence_penalty,
                   frequency_penalty=p.frequency_penalty, seed=p.seed)
