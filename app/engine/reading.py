"""Before sending: how many tokens the prompt takes of the context, and how long reading it
will take on this machine.

    estimate = engine.estimate(messages)          # PromptEstimate
    estimate.describe()  # "3,012 of 16,384 tokens · reading about 2 min 17 s"

The reading rate is measured, not assumed: every prompt the engine reads records its
tokens per second for that model (a running average), remembered across sessions in the
data directory (`reading-rates.json`), so the first estimate on a new laptop comes after
its first long read. The incognito app keeps the rates in memory only.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path

from app.paths import data_dir

MIN_MEASURED_TOKENS = 64  # shorter reads are mostly fixed costs: they say little of the rate
_SMOOTHING = 0.3  # weight of the newest measurement in the running average


@dataclass(frozen=True)
class PromptEstimate:
    prompt_tokens: int  # the rendered prompt, after dropping what does not fit
    n_ctx: int
    answer_reserve: int  # tokens kept free for the answer
    to_read: int  # of the prompt, tokens not in the KV cache (what reading will evaluate)
    dropped_turns: int
    fits: bool  # False: even the last message is too long for this context
    tokens_per_second: float | None  # this machine's measured rate; None before any read

    @property
    def reading_seconds(self) -> float | None:
        if not self.tokens_per_second or not self.fits:
            return None
        return self.to_read / self.tokens_per_second

    def describe(self) -> str:
        """For a status line: tokens against the context, then the reading time."""
        if not self.fits:
            return (f"{self.prompt_tokens:,} tokens: more than the "
                    f"{self.n_ctx - self.answer_reserve:,} num_ctx {self.n_ctx:,} leaves for "
                    "the prompt")
        line = f"{self.prompt_tokens:,} of {self.n_ctx:,} tokens"
        seconds = self.reading_seconds
        if seconds is not None and seconds >= 1:
            line += f" · reading about {duration(seconds)}"
        elif self.tokens_per_second is None and self.to_read >= MIN_MEASURED_TOKENS:
            line += f" · {self.to_read:,} to read"
        return line


def duration(seconds: float) -> str:
    """3 s, 45 s, 2 min 17 s, 1 h 3 min."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


class ReadingRates:
    """Measured prompt-reading rates per model (tokens/s), saved in `path` (None: kept in
    memory only). Thread-safe; a damaged file is started afresh."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._rates: dict[str, float] = self._load()

    @classmethod
    def default(cls) -> ReadingRates:
        return cls(data_dir() / "reading-rates.json")

    def _load(self) -> dict[str, float]:
        if self.path is None:
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {str(k): float(v) for k, v in data.items()
                if isinstance(v, int | float) and v > 0}

    def rate(self, model: str) -> float | None:
        with self._lock:
            return self._rates.get(model)

    def record(self, model: str, tokens: int, seconds: float) -> None:
        """A read of `tokens` in `seconds` (ignored when too short to mean much)."""
        if tokens < MIN_MEASURED_TOKENS or seconds <= 0:
            return
        measured = tokens / seconds
        with self._lock:
            old = self._rates.get(model)
            self._rates[model] = measured if old is None else \
                (1 - _SMOOTHING) * old + _SMOOTHING * measured
            self._save()

    def _save(self) -> None:
        if self.path is None:
            return
        with contextlib.suppress(OSError):  # a rate not remembered is no reason to fail a turn
            temporary = self.path.with_suffix(".tmp")
            temporary.write_text(json.dumps(self._rates), encoding="utf-8")
            os.replace(temporary, self.path)
