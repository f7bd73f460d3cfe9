"""What a generation reports, in order: PromptStarted, then ThinkingDelta / AnswerDelta
pieces, then exactly one Finished (unless the caller stops iterating early)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

StopReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True)
class PromptStarted:
    """The engine starts reading the prompt (the UI shows "reading the prompt").

    `evaluating` tokens must be computed; the other `prompt_tokens - evaluating` are reused
    from the previous turn's cache."""

    prompt_tokens: int
    evaluating: int
    dropped_turns: int
    threads: int


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

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


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


Event = PromptStarted | ThinkingDelta | AnswerDelta | Finished
