"""Conversations as the engines take them: transformers-style message dicts."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Message = Mapping[str, Any]  # {"role": "system"|"user"|"assistant", "content": str, ...}


def with_system(messages: Sequence[Message], system: str | None) -> list[dict[str, Any]]:
    """A copy of the messages; a given `system` replaces a leading system message or is
    put first."""
    out = [dict(m) for m in messages]
    if system:
        if out and out[0].get("role") == "system":
            out[0]["content"] = system
        else:
            out.insert(0, {"role": "system", "content": system})
    return out
