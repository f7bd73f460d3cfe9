"""The conversation store: conversations, messages and settings in one SQLite database.

One connection serves every thread (the UI's thread workers write while the UI reads); an
RLock serialises its use, which also keeps one thread's transaction from swallowing
another's statements. WAL still matters: the command line may use the same file at once.
"""

from __future__ import annotations

import enum
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from app.paths import data_dir

from . import connection, schema
from .errors import NotFoundError, translate
from .export import render_markdown
from .records import ROLES, STATUSES, Conversation, Message, Role, Status, now, to_text

DB_FILENAME = "amicus.sqlite3"
INCOGNITO = "the incognito store"


class _Unset(enum.Enum):
    UNSET = enum.auto()


# "Leave it as it is", where None already means "use the Modelfile's" or "no figure".
UNSET = _Unset.UNSET


def default_path() -> Path:
    """Where the conversations live: the data directory's amicus.sqlite3."""
    return data_dir() / DB_FILENAME


def like_pattern(text: str) -> str:
    r"""A LIKE pattern matching `text` anywhere, with \, % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _to_json(value: Any) -> str:
    # allow_nan=False: NaN is not JSON, and would not read back in other tools.
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown message role {role!r}; use one of {sorted(ROLES)}")


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown message status {status!r}; use one of {sorted(STATUSES)}")


class Store:
    """Conversations, messages and settings. Every method is safe to call from any thread.

    Errors are StoreError subclasses with one-line messages: CorruptDatabaseError,
    SchemaTooNewError, DiskFullError, NotFoundError. Use `Store.open()`.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path | None) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path
        self._where = str(path) if path is not None else INCOGNITO

    @classmethod
    def open(cls, path: Path | str | None = None, *, incognito: bool = False) -> Store:
        """Open (creating and migrating) the database at `path`, by default in the data
        directory; with `incognito`, a database in memory that leaves nothing on disk."""
        if incognito and path is not None:
            raise ValueError("an incognito store keeps nothing on disk: give it no path")
        file = None
        if not incognito:
            with translate("the Amicus data directory"):  # data_dir() creates it
                file = Path(path) if path is not None else default_path()
        where = INCOGNITO if file is None else str(file)
        with translate(where):
            conn = connection.open_memory() if file is None else connection.open_file(file)
            try:
                schema.migrate(conn, where)
            except BaseException:
                conn.close()
                raise
        return cls(conn, file)

    @property
    def incognito(self) -> bool:
        return self.path is None

    def close(self) -> None:
        """Close the database (an incognito store's contents are gone)."""
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self.close()

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with self._lock, translate(self._where):
            yield self._conn

    @contextmanager
    def _writing(self) -> Iterator[sqlite3.Connection]:
        with self._lock, translate(self._where), connection.transaction(self._conn) as conn:
            yield conn

    # Conversations

    def create_conversation(self, assistant: str, *, title: str = "", model: str | None = None,
                            system_prompt: str | None = None,
                            parameters: dict[str, Any] | None = None, thinking: bool = True,
                            safety_gate: bool = False) -> Conversation:
        """A new, empty conversation. None for system_prompt/parameters: the Modelfile's."""
        stamp = to_text(now())
        params = None if parameters is None else _to_json(parameters)
        with self._writing() as conn:
            cursor = conn.execute(
                "INSERT INTO conversations (assistant, title, created_at, updated_at, model,"
                " system_prompt, parameters, thinking, safety_gate)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (assistant, title, stamp, stamp, model, system_prompt, params,
                 int(thinking), int(safety_gate)))
            return self._conversation(conn, int(cursor.lastrowid or 0))

    def get_conversation(self, conversation_id: int) -> Conversation:
        """The conversation, or NotFoundError."""
        with self._reading() as conn:
            return self._conversation(conn, conversation_id)

    def list_conversations(self, assistant: str | None = None,
                           search: str | None = None) -> list[Conversation]:
        """Conversations, most recently updated first, optionally one assistant's only.

        `search` (surrounding blanks ignored) matches titles and message text as a literal
        substring: CJK text as typed, ASCII letters in any case, % and _ as themselves.
        """
        clauses, args = [], []
        if assistant is not None:
            clauses.append("assistant = ?")
            args.append(assistant)
        if search and search.strip():
            pattern = like_pattern(search.strip())
            clauses.append("(title LIKE ? ESCAPE '\\' OR id IN (SELECT conversation_id"
                           " FROM messages WHERE content LIKE ? ESCAPE '\\'))")
            args += [pattern, pattern]
        where = " AND ".join(clauses) or "1"
        with self._reading() as conn:
            rows = conn.execute(f"SELECT * FROM conversations WHERE {where}"
                                " ORDER BY updated_at DESC, id DESC", args).fetchall()
        return [Conversation.from_row(row) for row in rows]

    def rename_conversation(self, conversation_id: int, title: str) -> Conversation:
        """Give the conversation a new title."""
        return self._change_conversation(conversation_id, {"title": title})

    def set_conversation_options(
            self, conversation_id: int, *, model: str | _Unset | None = UNSET,
            system_prompt: str | _Unset | None = UNSET,
            parameters: dict[str, Any] | _Unset | None = UNSET,
            thinking: bool | _Unset = UNSET, safety_gate: bool | _Unset = UNSET,
    ) -> Conversation:
        """Change the given options; None for system_prompt/parameters restores the
        Modelfile's. Options not given stay as they are."""
        given = {"model": model, "system_prompt": system_prompt, "parameters": parameters,
                 "thinking": thinking, "safety_gate": safety_gate}
        changes: dict[str, Any] = {key: value for key, value in given.items()
                                   if value is not UNSET}
        if changes.get("parameters") is not None:
            changes["parameters"] = _to_json(changes["parameters"])
        for flag in ("thinking", "safety_gate"):
            if flag in changes:
                changes[flag] = int(bool(changes[flag]))
        return self._change_conversation(conversation_id, changes)

    def delete_conversation(self, conversation_id: int) -> None:
        """Delete the conversation and its messages; deleting it twice is no error.

        The deleted text is zeroed in the file (secure_delete) and flushed out of the WAL,
        so it does not linger on disk."""
        with self._writing() as conn:
            conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        self._checkpoint()

    def _conversation(self, conn: sqlite3.Connection, conversation_id: int) -> Conversation:
        row = conn.execute("SELECT * FROM conversations WHERE id = ?",
                           (conversation_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no conversation {conversation_id} "
                                "(it may have been deleted).")
        return Conversation.from_row(row)

    def _change_conversation(self, conversation_id: int,
                             changes: dict[str, Any]) -> Conversation:
        with self._writing() as conn:
            _update(conn, "conversations", conversation_id,
                    {**changes, "updated_at": to_text(now())})
            return self._conversation(conn, conversation_id)

    def _checkpoint(self) -> None:
        if not self.incognito:
            with self._reading() as conn:
                # Best effort: another process reading the file may keep old frames alive.
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()

    # Messages

    def add_message(self, conversation_id: int, role: Role, content: str = "", *,
                    thinking: str | None = None, status: Status = "complete",
                    prompt_ms: float | None = None, generation_ms: float | None = None,
                    prompt_tokens: int | None = None, completion_tokens: int | None = None,
                    tokens_per_second: float | None = None,
                    blocked_probability: float | None = None,
                    stop_reason: str | None = None,
                    dropped_turns: int | None = None) -> Message:
        """Append a turn. For a streamed reply, add it with status="streaming" and
        finalise it with update_message() (once, not per token)."""
        _check_role(role)
        _check_status(status)
        stamp = to_text(now())
        values = {"conversation_id": conversation_id, "role": role, "content": content,
                  "thinking": thinking, "status": status, "created_at": stamp,
                  "prompt_ms": prompt_ms, "generation_ms": generation_ms,
                  "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "tokens_per_second": tokens_per_second,
                  "blocked_probability": blocked_probability, "stop_reason": stop_reason,
                  "dropped_turns": dropped_turns}
        columns = ", ".join(values)  # our own names, never the caller's
        marks = ", ".join("?" * len(values))
        with self._writing() as conn:
            _update(conn, "conversations", conversation_id, {"updated_at": stamp})
            cursor = conn.execute(f"INSERT INTO messages ({columns}) VALUES ({marks})",
                                  tuple(values.values()))
            return self._message(conn, int(cursor.lastrowid or 0))

    def update_message(
            self, message_id: int, *, content: str | _Unset = UNSET,
            thinking: str | _Unset | None = UNSET, status: Status | _Unset = UNSET,
            prompt_ms: float | _Unset | None = UNSET,
            generation_ms: float | _Unset | None = UNSET,
            prompt_tokens: int | _Unset | None = UNSET,
            completion_tokens: int | _Unset | None = UNSET,
            tokens_per_second: float | _Unset | None = UNSET,
            blocked_probability: float | _Unset | None = UNSET,
            stop_reason: str | _Unset | None = UNSET,
            dropped_turns: int | _Unset | None = UNSET,
    ) -> Message:
        """Change the given fields of a message (e.g. finalise a streamed reply, with its
        stop reason and the number of earlier messages its context left out)."""
        given = {"content": content, "thinking": thinking, "status": status,
                 "prompt_ms": prompt_ms, "generation_ms": generation_ms,
                 "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                 "tokens_per_second": tokens_per_second,
                 "blocked_probability": blocked_probability, "stop_reason": stop_reason,
                 "dropped_turns": dropped_turns}
        changes = {key: value for key, value in given.items() if value is not UNSET}
        if "status" in changes:
            _check_status(str(changes["status"]))
        with self._writing() as conn:
            message = self._message(conn, message_id)
            if changes:
                _update(conn, "messages", message_id, changes)
                _update(conn, "conversations", message.conversation_id,
                        {"updated_at": to_text(now())})
            return self._message(conn, message_id)

    def delete_message(self, message_id: int) -> None:
        """Remove one message (e.g. a cancelled reply the user chose to discard)."""
        with self._writing() as conn:
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))

    def get_message(self, message_id: int) -> Message:
        """The message, or NotFoundError."""
        with self._reading() as conn:
            return self._message(conn, message_id)

    def messages(self, conversation_id: int) -> list[Message]:
        """The conversation's messages in the order they were added (none if it is gone)."""
        with self._reading() as conn:
            rows = conn.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                                (conversation_id,)).fetchall()
        return [Message.from_row(row) for row in rows]

    def _message(self, conn: sqlite3.Connection, message_id: int) -> Message:
        row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no message {message_id} (it may have been deleted).")
        return Message.from_row(row)

    # Settings

    def get_setting(self, key: str, default: Any = None) -> Any:
        """The setting's value as stored (JSON), or `default` when it was never set."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return default if row is None else json.loads(row["value"])

    def set_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value (TypeError/ValueError otherwise) under `key`."""
        text = _to_json(value)
        with self._writing() as conn:
            conn.execute("INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)",
                         (key, text))

    def delete_setting(self, key: str) -> None:
        """Forget a setting, so get_setting() returns its default again."""
        with self._writing() as conn:
            conn.execute("DELETE FROM settings WHERE key = ?", (key,))

    # Export

    def export_markdown(self, conversation_id: int) -> str:
        """The conversation as a Markdown transcript (see export.render_markdown)."""
        with self._lock:  # one consistent snapshot of the conversation and its messages
            conversation = self.get_conversation(conversation_id)
            return render_markdown(conversation, self.messages(conversation_id))


def _update(conn: sqlite3.Connection, table: str, row_id: int, changes: dict[str, Any]) -> None:
    """UPDATE one row by id, or NotFoundError. Table and column names are ours, not input."""
    assignments = ", ".join(f"{column} = ?" for column in changes)
    cursor = conn.execute(f"UPDATE {table} SET {assignments} WHERE id = ?",
                          (*changes.values(), row_id))
    if cursor.rowcount != 1:
        noun = "conversation" if table == "conversations" else "message"
        raise NotFoundError(f"There is no {noun} {row_id} (it may have been deleted).")
