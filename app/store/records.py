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


class DamagedRowError(ValueError):
    """A row holds values Amicus never writes: the database file is damaged."""


_OPTIONAL_TEXT = (str, type(None))
_OPTIONAL_NUMBER = (int, float, type(None))
_CONVERSATION_KINDS: dict[str, tuple[type, ...]] = {
    "id": (int,), "assistant": (str,), "title": (str,), "created_at": (str,),
    "updated_at": (str,), "model": _OPTIONAL_TEXT, "system_prompt": _OPTIONAL_TEXT,
    "parameters": _OPTIONAL_TEXT, "thinking": (int,), "safety_gate": (int,)}
_MESSAGE_KINDS: dict[str, tuple[type, ...]] = {
    "id": (int,), "conversation_id": (int,), "role": (str,), "content": (str,),
    "created_at": (str,), "thinking": _OPTIONAL_TEXT, "status": (str,),
    "prompt_ms": _OPTIONAL_NUMBER, "generation_ms": _OPTIONAL_NUMBER,
    "prompt_tokens": (int, type(None)), "completion_tokens": (int, type(None)),
    "tokens_per_second": _OPTIONAL_NUMBER, "blocked_probability": _OPTIONAL_NUMBER,
    "provenance": _OPTIONAL_TEXT, "parent_id": (int, type(None)), "picked": (int,),
    "stop_reason": _OPTIONAL_TEXT, "dropped_turns": (int, type(None))}


def _checked(row: sqlite3.Row, record: type, kinds: dict[str, tuple[type, ...]],
             what: str) -> dict[str, Any]:
    """The row's values for the record's fields (read by name, so columns a later migration
    adds never break old code), each of the type Amicus writes there."""
    values = {field.name: row[field.name] for field in fields(record)}
    for name, kind in kinds.items():
        if not isinstance(values[name], kind):
            raise DamagedRowError(f"{what} {values['id']!r} has a {type(values[name]).__name__} "
                                  f"in {name}")
    return values


def _moment(text: str, what: str) -> datetime:
    try:
        return from_text(text)
    except ValueError:
        raise DamagedRowError(f"{what} has an unreadable date {text[:40]!r}") from None


def parse_json(text: str, what: str) -> Any:
    """A JSON column's value."""
    try:
        return json.loads(text)
    except ValueError:
        raise DamagedRowError(f"{what} holds text that is not JSON") from None


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
        """The row as a Conversation; DamagedRowError if it holds what Amicus never wrote."""
        values = _checked(row, cls, _CONVERSATION_KINDS, "conversation")
        what = f"conversation {values['id']}"
        parameters = (None if values["parameters"] is None
                      else parse_json(values["parameters"], what))
        if not isinstance(parameters, (dict, type(None))):
            raise DamagedRowError(f"{what} has parameters that are not an object")
        return cls(
            id=values["id"], assistant=values["assistant"], title=values["title"],
            created_at=_moment(values["created_at"], what),
            updated_at=_moment(values["updated_at"], what),
            model=values["model"], system_prompt=values["system_prompt"],
            parameters=parameters, thinking=bool(values["thinking"]),
            safety_gate=bool(values["safety_gate"]),
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
        """The row as a Message; DamagedRowError if it holds what Amicus never wrote."""
        values = _checked(row, cls, _MESSAGE_KINDS, "message")
        what = f"message {values['id']}"
        if values["role"] not in ROLES or values["status"] not in STATUSES:
            raise DamagedRowError(f"{what} has an unknown role or status")
        values["created_at"] = _moment(values["created_at"], what)
        values["provenance"] = Provenance.from_json(values["provenance"])
        values["picked"] = bool(values["picked"])
        return cls(**values)
