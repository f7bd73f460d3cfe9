"""Conversation and Message: immutable snapshots of rows, as the store hands them out."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from typing import Any, Literal, get_args

from .provenance import Provenance

Role = Literal["system", "user", "assistant"]
# streaming: a reply being generated (left behind by a crash, it reads as interrupted);
# blocked: a user turn the intent-safety gate stopped, with its probability.
Status = Literal["streaming", "complete", "cancelled", "blocked", "error"]
ROLES: frozenset[str] = frozenset(get_args(Role))
STATUSES: frozenset[str] = frozenset(get_args(Status))


def now() -> datetime:
    """The current time, in UTC (what the store records)."""
    return datetime.now(timezone.utc)


def to_text(moment: datetime) -> str:
    """A fixed-width ISO-8601 UTC text, so that SQL ordering on it is chronological."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds")


def from_text(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass(frozen=True, slots=True)
class Conversation:
    """One conversation with an assistant, with its per-conversation options.

    `system_prompt` and `parameters` are None when the Modelfile's apply; `parameters`
    holds only the overrides (e.g. {"temperature": 0.7}).
    """

    id: int
    assistant: str
    title: str
    created_at: datetime
    updated_at: datetime
    model: str | None = None
    system_prompt: str | None = None
    parameters: dict[str, Any] | None = None
    thinking: bool = True
    safety_gate: bool = False

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Conversation:
        return cls(
            id=row["id"], assistant=row["assistant"], title=row["title"],
            created_at=from_text(row["created_at"]), updated_at=from_text(row["updated_at"]),
            model=row["model"], system_prompt=row["system_prompt"],
            parameters=None if row["parameters"] is None else json.loads(row["parameters"]),
            thinking=bool(row["thinking"]), safety_gate=bool(row["safety_gate"]),
        )


@dataclass(frozen=True, slots=True)
class Message:
    """One turn. Timings are in milliseconds; any figure the engine did not give is None.

    Messages form a tree (see schema v3): a regenerated reply or an edited question is a
    sibling of the earlier one, and `picked` marks the sibling the conversation follows."""

    id: int
    conversation_id: int
    role: Role
    content: str
    created_at: datetime
    thinking: str | None = None
    status: Status = "complete"
    prompt_ms: float | None = None
    generation_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_per_second: float | None = None
    blocked_probability: float | None = None
    provenance: Provenance | None = None  # assistant messages: the model and settings
    parent_id: int | None = None  # the message it follows (None: the conversation's first)
    picked: bool = True  # the alternative shown among its siblings
    stop_reason: str | None = None  # the engine's StopReason for a reply (None: unknown)
    dropped_turns: int | None = None  # earlier messages left out of the reply's context

    def figures(self, rate_unit: str = "tokens/s") -> list[str]:
        """What is known of how the reply was made: tokens, rate, seconds."""
        figures = []
        if self.completion_tokens is not None:
            figures.append(f"{self.completion_tokens} tokens")
        if self.tokens_per_second is not None:
            figures.append(f"{self.tokens_per_second:.1f} {rate_unit}")
        if self.generation_ms is not None:
            figures.append(f"{self.generation_ms / 1000:.1f} s")
        return figures

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> Message:
        # Read by field name, so columns a later migration adds never break old code.
        values = {field.name: row[field.name] for field in fields(cls)}
        values["created_at"] = from_text(values["created_at"])
        values["provenance"] = Provenance.from_json(values["provenance"])
        values["picked"] = bool(values["picked"])
        return cls(**values)
