"""What a generation reports, in order: PromptStarted, ReadingProgress after every chunk of
the prompt read, then ThinkingDelta / AnswerDelta pieces, then exactly one Finished (unless
the caller stops iterating early)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

# stop: the model ended its turn or wrote a stop string; length: num_predict tokens were
# written; context: the context window is full; cancelled: the caller stopped it (while
# reading the prompt or while writing).
StopReason = Literal["stop", "length", "context", "cancelled"]


@dataclass(frozen=True)
class PromptStarted:
    """The engine starts reading the prompt (the UI shows "reading the prompt").

    `evaluating` tokens must be computed; the other `prompt_tokens - evaluating` are reused
    from the KV cache: the previous turn's, or (`restored` of them) a state saved on disk."""

    prompt_tokens: int
    evaluating: int
    dropped_turns: int
    threads: int
    restored: int = 0


@dataclass(frozen=True)
class ReadingProgress:
    """One chunk of the prompt was read: `read` of `total` tokens this time (the cached
    ones not counted), at `tokens_per_second` so far; `seconds_left` at that rate. A cancel
    takes effect at the next chunk boundary, so it waits at most one chunk."""

    read: int
    total: int
    tokens_per_second: float
    seconds_left: float

    @property
    def fraction(self) -> float:
        return self.read / self.total if self.total else 1.0

    def describe(self) -> str:
        """For a status line: "1,024 of 3,000 tokens · 45 tokens/s · about 43 s left"."""
        from app.engine.reading import duration

        line = f"{self.read:,} of {self.total:,} tokens"
        if self.tokens_per_second > 0:
            line += f" · {self.tokens_per_second:.0f} tokens/s"
        if self.read < self.total and self.seconds_left >= 1:
            line += f" · about {duration(self.seconds_left)} left"
        return line


@dataclass(frozen=True)
class ThinkingDelta:
    """Text from inside the model's `<think>...</think>` block (tags not included)."""

    text: str


@dataclass(frozen=True)
class AnswerDelta:
    """Answer text; stop strings and think tags never appear in it."""

    text: str


def tokens_per_second(tokens: int, seconds: float) -> float:
    """The rate every backend reports, rounded to 2 decimals (0 for no time at all)."""
    return round(tokens / seconds, 2) if seconds > 0 else 0.0


@dataclass(frozen=True)
class GenerationStats:
    prompt_tokens: int  # tokens of the rendered prompt, after dropping turns
    prompt_evaluated: int  # of those, computed this time (the rest came from the KV cache)
    completion_tokens: int  # tokens sampled, thinking included
    prompt_ms: float
    generation_ms: float
    tokens_per_second: float  # completion tokens / generation time
    dropped_turns: int  # oldest user/assistant messages left out to fit the context
    stop_reason: StopReason
    threads: int
    # Request to first sampled token (render, cache, prompt, one sample); 0 when unknown.
    first_token_ms: float = 0.0
    prompt_read: int = -1  # prompt tokens read before a cancel (-1: all of prompt_evaluated)
    prompt_restored: int = 0  # prompt tokens whose KV cache came from a state saved on disk
    num_ctx: int = 0  # the context window (0: unknown)
    num_predict: int = -1  # the answer's limit (-1: none)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cut_off(stats: GenerationStats) -> str | None:
    """Why a reply ended before the model finished it, in words for a "cut off" mark; None
    when it ended normally (or was cancelled: that is the user's own doing)."""
    return cut_off_reason(stats.stop_reason, num_predict=stats.num_predict,
                          num_ctx=stats.num_ctx)


def cut_off_reason(stop_reason: str | None, *, num_predict: int = -1,
                   num_ctx: int = 0) -> str | None:
    """As `cut_off`, from a stop reason alone (a stored reply: the sizes may be unknown)."""
    if stop_reason == "length":
        limit = f" ({num_predict:,} tokens)" if num_predict > 0 else ""
        return f"cut off: the answer limit num_predict{limit} was reached"
    if stop_reason == "context":
        size = f" ({num_ctx:,} tokens)" if num_ctx else ""
        return f"cut off: the context window{size} is full"
    return None


def dropped_turns_note(count: int) -> str | None:
    """The divider's words when older turns left the context; None when none did."""
    if count <= 0:
        return None
    noun = "message" if count == 1 else "messages"
    return f"{count} earlier {noun} no longer fit the context: the model does not see them"


@dataclass(frozen=True)
class Finished:
    """The end of a generation: the full texts (the deltas joined) and the statistics.

    After a cancel, `answer` and `thinking` hold the partial texts: keep or drop them."""

    answer: str
    thinking: str
    stats: GenerationStats

    @property
    def cancelled(self) -> bool:
        return self.stats.stop_reason == "cancelled"

    @property
    def cut_off(self) -> str | None:
        return cut_off(self.stats)


Event = PromptStarted | ReadingProgress | ThinkingDelta | AnswerDelta | Finished
