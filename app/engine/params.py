"""Sampling parameters, named and defaulted as in an Ollama Modelfile (`PARAMETER ...`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

DEFAULT_NUM_CTX = 4096
# Room kept for the answer when num_predict is unlimited (-1, Ollama's default).
DEFAULT_ANSWER_RESERVE = 512


@dataclass(frozen=True)
class GenerationParams:
    """Ollama's defaults; `num_predict` -1 means "until the model stops or the context is
    full", `seed` None or negative a random seed."""

    temperature: float = 0.8
    top_k: int = 40
    top_p: float = 0.9
    min_p: float = 0.0
    repeat_penalty: float = 1.1
    repeat_last_n: int = 64
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    num_predict: int = -1
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def coerce(cls, params: Mapping[str, Any] | GenerationParams | None) -> GenerationParams:
        """What every backend's `stream` accepts: params as they are, or a Modelfile dict."""
        return params if isinstance(params, GenerationParams) else cls.from_mapping(params)

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> GenerationParams:
        """Build from a Modelfile-style dict; unknown keys (num_ctx, num_gpu...) are ignored
        here because they configure the model, not one generation."""
        if not params:
            return cls()
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, value in params.items():
            if key not in known or value is None:
                continue
            values[key] = _coerce(key, value)
        return cls(**values)

    def answer_reserve(self, n_ctx: int) -> int:
        """Tokens kept free for the answer when fitting a conversation into the context:
        num_predict when set, else DEFAULT_ANSWER_RESERVE, never more than half the context
        (a huge num_predict must not leave room for no prompt at all)."""
        wanted = self.num_predict if self.num_predict > 0 else DEFAULT_ANSWER_RESERVE
        return min(wanted, n_ctx // 2)


_INTS = {"top_k", "repeat_last_n", "num_predict", "seed"}


def _coerce(key: str, value: Any) -> Any:
    if key == "stop":
        stops = [value] if isinstance(value, str) else list(value)
        return tuple(s for s in (str(x) for x in stops) if s)
    if key in _INTS:
        return int(value)
    return float(value)
