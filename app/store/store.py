"""The conversation store: conversations, messages and settings in one SQLite database.

One connection serves every thread (the UI's thread workers write while the UI reads); an
RLock serialises its use, which also keeps one thread's transaction from swallowing
another's statements. WAL still matters: the command line may use the same file at once.

A database that can be read but not written (a read-only or locked data folder) opens as a
copy in memory: `read_only` says why, the conversations it held cannot be changed (a
ReadOnlyError), and new ones are kept in memory until the store is closed.
"""

from __future__ import annotations

import enum
import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from app.paths import data_dir
from converters.processes import process_alive

from . import branches, connection, schema
from .errors import NotFoundError, ReadOnlyError, as_store_error, translate
from .export import render_markdown
from .provenance import Provenance
from .records import (
    ROLES,
    STATUSES,
    Conversation,
    DamagedRowError,
    Message,
    Role,
    Status,
    now,
    parse_json,
    to_text,
)
from .search import SearchHit, find, like_pattern, snippet

DB_FILENAME = "amicus.sqlite3"
INCOGNITO = "the incognito store"


class _Unset(enum.Enum):
    UNSET = enum.auto()


# "Leave it as it is", where None already means "use the Modelfile's" or "no figure".
UNSET = _Unset.UNSET


def default_path() -> Path:
    """Where the conversations live: the data directory's amicus.sqlite3."""
    return data_dir() / DB_FILENAME


def _to_json(value: Any) -> str:
    # allow_nan=False: NaN is not JSON, and would not read back in other tools.
    return json.dumps(value, ensure_ascii=False, allow_nan=False)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValueError(f"unknown message role {role!r}; use one of {sorted(ROLES)}")


def _check_status(status: str) -> None:
    if status not in STATUSES:
        raise ValueError(f"unknown message status {status!r}; use one of {sorted(STATUSES)}")


MAX_PROMPTS = 500  # prompts remembered per assistant (the input's Up/Down history)
SEARCH_LIMIT = 200  # hits returned by one search


class Store:
    """Conversations, messages and settings. Every method is safe to call from any thread.

    Errors are StoreError subclasses with one-line messages: CorruptDatabaseError,
    SchemaTooNewError, DiskFullError, NotFoundError, ReadOnlyError. Use `Store.open()`.
    """

    def __init__(self, conn: sqlite3.Connection, path: Path | None, *,
                 read_only: str | None = None) -> None:
        self._conn = conn
        self._lock = threading.RLock()
        self.path = path
        self._where = str(path) if path is not None else INCOGNITO
        # Why the file could not be opened for writing (None: it was, or incognito).
        self.read_only = read_only
        self._frozen_up_to = 0  # conversations up to this id came from a read-only file
        if read_only is not None:
            row = conn.execute("SELECT COALESCE(MAX(id), 0) FROM conversations").fetchone()
            self._frozen_up_to = int(row[0])

    @classmethod
    def open(cls, path: Path | str | None = None, *, incognito: bool = False) -> Store:
        """Open (creating and migrating) the database at `path`, by default in the data
        directory; with `incognito`, a database in memory that leaves nothing on disk. A
        file that can be read but not written opens read-only (see `read_only`)."""
        if incognito and path is not None:
            raise ValueError("an incognito store keeps nothing on disk: give it no path")
        if incognito:
            with translate(INCOGNITO):
                return cls(_migrated(connection.open_memory(), INCOGNITO), None)
        with translate("the Amicus data directory"):  # data_dir() creates it
            file = Path(path) if path is not None else default_path()
        where = str(file)
        with translate(where):  # what a damaged file makes sqlite3 raise besides its errors
            try:
                conn = _migrated(connection.open_file(file), where)
            except (sqlite3.Error, OSError) as exc:
                if not connection.cannot_write(exc):
                    raise as_store_error(exc, where) from exc
                store = cls._read_only_copy(file, exc)
            else:
                store = cls(conn, file)
        try:
            store.recover_interrupted()  # in a read-only copy: what it shows, the file kept
        except BaseException:
            store.close()
            raise
        return store

    def recover_interrupted(self) -> int:
        """Replies left 'streaming' by a process that died (killed, a power cut): an empty
        one is removed, one with text is kept as 'cancelled'. Replies another running
        Amicus is streaming are left alone. Returns how many were recovered."""
        with self._writing() as conn:
            rows = conn.execute("SELECT id, conversation_id, parent_id, picked, content,"
                                " thinking, writer FROM messages WHERE status = 'streaming'"
                                ).fetchall()
            dead = [row for row in rows if not _alive(row["writer"])]
            for row in dead:
                if (row["content"] or "").strip() or (row["thinking"] or "").strip():
                    conn.execute("UPDATE messages SET status = 'cancelled', writer = NULL"
                                 " WHERE id = ?", (row["id"],))
                else:
                    _delete(conn, row["id"], row)
        return len(dead)

    @classmethod
    def _read_only_copy(cls, file: Path, cause: sqlite3.Error | OSError) -> Store:
        where = str(file)
        try:
            conn = connection.open_snapshot(file)
        except sqlite3.Error as exc:
            # No file at all: why it could not be created says more than "unable to open".
            raise as_store_error(exc if os.path.exists(file) else cause, where) from cause
        with translate(where):
            conn = _migrated(conn, where)  # in memory: the file is left as it is
        detail = (cause.strerror if isinstance(cause, OSError) and cause.strerror
                  else str(cause))
        return cls(conn, file, read_only=f"{where} can be read but not written ({detail})")

    @property
    def incognito(self) -> bool:
        return self.path is None

    def is_read_only(self, conversation_id: int) -> bool:
        """Whether the conversation came from a file this store cannot write."""
        return self.read_only is not None and conversation_id <= self._frozen_up_to

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

    def _check_writable(self, conversation_id: int) -> None:
        if self.is_read_only(conversation_id):
            raise ReadOnlyError(f"This conversation cannot be changed: {self.read_only}. "
                                "New conversations are kept until Amicus closes.")

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

    def list_conversations(self, assistant: str | None = None, search: str | None = None,
                           *, limit: int | None = None, offset: int = 0) -> list[Conversation]:
        """Conversations, most recently updated first, optionally one assistant's only;
        at most `limit` of them (None: all), the first `offset` left out.

        `search` (surrounding blanks ignored) matches titles and message text as a literal
        substring: CJK text as typed, ASCII letters in any case, % and _ as themselves.
        """
        clauses: list[str] = []
        args: list[str | int] = []
        if assistant is not None:
            clauses.append("assistant = ?")
            args.append(assistant)
        if search and search.strip():
            pattern = like_pattern(search.strip())
            clauses.append("(title LIKE ? ESCAPE '\\' OR id IN (SELECT conversation_id"
                           " FROM messages WHERE content LIKE ? ESCAPE '\\'))")
            args += [pattern, pattern]
        where = " AND ".join(clauses) or "1"
        # SQLite: LIMIT -1 is no limit.
        args += [-1 if limit is None else max(limit, 0), max(offset, 0)]
        with self._reading() as conn:
            rows = conn.execute(f"SELECT * FROM conversations WHERE {where}"
                                " ORDER BY updated_at DESC, id DESC LIMIT ? OFFSET ?",
                                args).fetchall()
            return [Conversation.from_row(row) for row in rows]

    def search(self, text: str, *, limit: int = SEARCH_LIMIT) -> list[SearchHit]:
        """Every match of `text` (matched as in list_conversations) across all assistants:
        a conversation's title, then its messages as the conversation shows them (earlier
        alternatives are not searched), each with a snippet around the match and the
        message's id; most recently updated conversations first, at most `limit` hits."""
        needle = text.strip()
        if not needle:
            return []
        pattern = like_pattern(needle)
        hits: list[SearchHit] = []
        with self._reading() as conn:
            for conversation in self.list_conversations(search=needle):
                at = find(conversation.title, needle)
                if at >= 0:
                    hits.append(SearchHit(conversation, None, None, snippet(
                        conversation.title, at, at + len(needle))))
                hits += self._message_hits(conn, conversation, needle, pattern)
                if len(hits) >= limit:
                    break
        return hits[:limit]

    def _message_hits(self, conn: sqlite3.Connection, conversation: Conversation,
                      needle: str, pattern: str) -> list[SearchHit]:
        shown = set(branches.current_path(_nodes(conn, conversation.id)))
        rows = conn.execute(
            "SELECT id, role, content FROM messages WHERE conversation_id = ?"
            " AND content LIKE ? ESCAPE '\\' ORDER BY id", (conversation.id, pattern))
        hits = []
        for row in rows:
            at = find(row["content"], needle)
            if row["id"] in shown and at >= 0:
                hits.append(SearchHit(conversation, row["id"], row["role"],
                                      snippet(row["content"], at, at + len(needle))))
        return hits

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
        """Delete the conversation, its messages and the prompts it sent from the prompt
        history; deleting it twice is no error.

        The deleted text is zeroed in the file (secure_delete) and flushed out of the WAL,
        so it does not linger on disk."""
        with self._writing() as conn:
            self._check_writable(conversation_id)
            conn.execute("DELETE FROM prompt_history WHERE text IN (SELECT content FROM"
                         " messages WHERE conversation_id = ? AND role = 'user')",
                         (conversation_id,))
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
            self._check_writable(conversation_id)
            _update(conn, "conversations", conversation_id,
                    {**changes, "updated_at": to_text(now())})
            return self._conversation(conn, conversation_id)

    def _checkpoint(self) -> None:
        if not self.incognito and self.read_only is None:
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
                    provenance: Provenance | None = None,
                    stop_reason: str | None = None,
                    dropped_turns: int | None = None) -> Message:
        """Append a turn after the last message the conversation shows. For a streamed
        reply, add it with status="streaming" and finalise it with update_message() (once,
        not per token). An assistant message's `provenance` also names the conversation's
        model (`Conversation.model`)."""
        _check_role(role)
        _check_status(status)
        values = {"conversation_id": conversation_id, "role": role, "content": content,
                  "thinking": thinking, "status": status, "prompt_ms": prompt_ms,
                  "generation_ms": generation_ms, "prompt_tokens": prompt_tokens,
                  "completion_tokens": completion_tokens,
                  "tokens_per_second": tokens_per_second,
                  "blocked_probability": blocked_probability, "stop_reason": stop_reason,
                  "dropped_turns": dropped_turns}
        with self._writing() as conn:
            self._check_writable(conversation_id)
            path = branches.current_path(_nodes(conn, conversation_id))
            values["parent_id"] = path[-1] if path else None
            return self._insert(conn, values, provenance)

    def add_alternative(self, message_id: int, content: str = "", *,
                        thinking: str | None = None, status: Status = "complete",
                        provenance: Provenance | None = None) -> Message:
        """A new version of a message, kept beside it and picked: regenerating a reply
        (typically status="streaming", finalised with update_message), or editing a question
        before sending it again (its reply is then added with add_message, after it). The
        earlier versions stay, see `alternatives`."""
        _check_status(status)
        with self._writing() as conn:
            original = self._message(conn, message_id)
            self._check_writable(original.conversation_id)
            values = {"conversation_id": original.conversation_id, "role": original.role,
                      "content": content, "thinking": thinking, "status": status,
                      "parent_id": original.parent_id}
            message = self._insert(conn, values, provenance)
            _pick(conn, message)
            return message

    def pick_alternative(self, message_id: int) -> Message:
        """Make this version the one the conversation shows (and the model is sent)."""
        with self._writing() as conn:
            message = self._message(conn, message_id)
            self._check_writable(message.conversation_id)
            _pick(conn, message)
            return self._message(conn, message_id)

    def alternatives(self, message_id: int) -> list[Message]:
        """The message and its other versions (same place in the conversation), oldest
        first; a message never regenerated or edited is its only version."""
        with self._reading() as conn:
            message = self._message(conn, message_id)
            rows = conn.execute("SELECT * FROM messages WHERE conversation_id = ? AND"
                                " parent_id IS ? ORDER BY id",
                                (message.conversation_id, message.parent_id)).fetchall()
            return [Message.from_row(row) for row in rows]

    def alternative_positions(self, conversation_id: int) -> dict[int, tuple[int, int]]:
        """For each message the conversation shows that has other versions: its place among
        them and how many there are, e.g. {42: (2, 3)} for "reply 2 of 3"."""
        with self._reading() as conn:
            nodes = _nodes(conn, conversation_id)
        return branches.positions(nodes, branches.current_path(nodes))

    def ancestors(self, message_id: int) -> list[Message]:
        """The messages before this one on its path, first message first: what a
        regenerated reply answers (the last of them is its question) or what an edited
        question follows."""
        with self._reading() as conn:
            message = self._message(conn, message_id)
            rows = conn.execute("SELECT * FROM messages WHERE conversation_id = ?",
                                (message.conversation_id,)).fetchall()
            by_id = {row["id"]: row for row in rows}
            chain: list[Message] = []
            parent = message.parent_id
            while parent is not None and parent in by_id and len(chain) < len(by_id):
                chain.append(Message.from_row(by_id[parent]))
                parent = by_id[parent]["parent_id"]
            return chain[::-1]

    def update_message(
            self, message_id: int, *, content: str | _Unset = UNSET,
            thinking: str | _Unset | None = UNSET, status: Status | _Unset = UNSET,
            prompt_ms: float | _Unset | None = UNSET,
            generation_ms: float | _Unset | None = UNSET,
            prompt_tokens: int | _Unset | None = UNSET,
            completion_tokens: int | _Unset | None = UNSET,
            tokens_per_second: float | _Unset | None = UNSET,
            blocked_probability: float | _Unset | None = UNSET,
            provenance: Provenance | _Unset | None = UNSET,
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
            changes["writer"] = os.getpid() if changes["status"] == "streaming" else None
        conversation_changes: dict[str, Any] = {"updated_at": to_text(now())}
        if not isinstance(provenance, _Unset):
            changes["provenance"] = None if provenance is None else provenance.to_json()
            if provenance is not None:
                conversation_changes["model"] = provenance.label
        with self._writing() as conn:
            message = self._message(conn, message_id)
            self._check_writable(message.conversation_id)
            if changes:
                _update(conn, "messages", message_id, changes)
                _update(conn, "conversations", message.conversation_id,
                        conversation_changes)
            return self._message(conn, message_id)

    def delete_message(self, message_id: int) -> None:
        """Remove one message (e.g. a cancelled reply the user chose to discard); what
        followed it follows its parent, and if it was the version shown, the newest other
        version is shown instead."""
        with self._writing() as conn:
            row = conn.execute("SELECT conversation_id, parent_id, picked FROM messages"
                               " WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return
            self._check_writable(row["conversation_id"])
            _delete(conn, message_id, row)

    def get_message(self, message_id: int) -> Message:
        """The message, or NotFoundError."""
        with self._reading() as conn:
            return self._message(conn, message_id)

    def messages(self, conversation_id: int) -> list[Message]:
        """The conversation as it shows: from its first message, the picked version at
        every step (none if it is gone). Earlier versions: see `alternatives`."""
        with self._reading() as conn:
            rows = conn.execute("SELECT * FROM messages WHERE conversation_id = ? ORDER BY id",
                                (conversation_id,)).fetchall()
            by_id = {row["id"]: row for row in rows}
            path = branches.current_path(_node(row) for row in rows)
            return [Message.from_row(by_id[message_id]) for message_id in path]

    def _message(self, conn: sqlite3.Connection, message_id: int) -> Message:
        row = conn.execute("SELECT * FROM messages WHERE id = ?", (message_id,)).fetchone()
        if row is None:
            raise NotFoundError(f"There is no message {message_id} (it may have been deleted).")
        return Message.from_row(row)

    def _insert(self, conn: sqlite3.Connection, values: dict[str, Any],
                provenance: Provenance | None) -> Message:
        stamp = to_text(now())
        values = {**values, "created_at": stamp,
                  "writer": os.getpid() if values["status"] == "streaming" else None,
                  "provenance": None if provenance is None else provenance.to_json()}
        conversation_changes = {"updated_at": stamp}
        if provenance is not None:
            conversation_changes["model"] = provenance.label
        _update(conn, "conversations", values["conversation_id"], conversation_changes)
        columns = ", ".join(values)  # our own names, never the caller's
        marks = ", ".join("?" * len(values))
        cursor = conn.execute(f"INSERT INTO messages ({columns}) VALUES ({marks})",
                              tuple(values.values()))
        return self._message(conn, int(cursor.lastrowid or 0))

    # Prompt history (the input's Up/Down keys), per assistant

    def add_prompt(self, assistant: str, text: str) -> None:
        """Remember a prompt sent to `assistant` (not in incognito, not twice in a row);
        the oldest are forgotten beyond MAX_PROMPTS."""
        if self.incognito or not text.strip():
            return
        with self._writing() as conn:
            last = conn.execute("SELECT text FROM prompt_history WHERE assistant = ?"
                                " ORDER BY id DESC LIMIT 1", (assistant,)).fetchone()
            if last is not None and last["text"] == text:
                return
            conn.execute("INSERT INTO prompt_history (assistant, text, created_at)"
                         " VALUES (?, ?, ?)", (assistant, text, to_text(now())))
            conn.execute("DELETE FROM prompt_history WHERE assistant = ? AND id <= (SELECT id"
                         " FROM prompt_history WHERE assistant = ? ORDER BY id DESC"
                         " LIMIT 1 OFFSET ?)", (assistant, assistant, MAX_PROMPTS))

    def prompt_history(self, assistant: str, limit: int = MAX_PROMPTS) -> list[str]:
        """The prompts sent to `assistant`, oldest first (Up walks back from the end)."""
        with self._reading() as conn:
            rows = conn.execute("SELECT text FROM prompt_history WHERE assistant = ?"
                                " ORDER BY id DESC LIMIT ?", (assistant, limit)).fetchall()
        return [row["text"] for row in reversed(rows)]

    def clear_prompt_history(self, assistant: str | None = None) -> None:
        """Forget the prompt history of one assistant, or of all."""
        with self._writing() as conn:
            if assistant is None:
                conn.execute("DELETE FROM prompt_history")
            else:
                conn.execute("DELETE FROM prompt_history WHERE assistant = ?", (assistant,))

    # Settings

    def get_setting(self, key: str, default: Any = None) -> Any:
        """The setting's value as stored (JSON), or `default` when it was never set."""
        with self._reading() as conn:
            row = conn.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            if row is None:
                return default
            if not isinstance(row["value"], str):
                raise DamagedRowError(f"setting {key!r} is not text")
            return parse_json(row["value"], f"setting {key!r}")

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
            return render_markdown(conversation, self.messages(conversation_id),
                                   self.alternative_positions(conversation_id))


def _migrated(conn: sqlite3.Connection, where: str) -> sqlite3.Connection:
    """`conn` with its schema brought up to date (closed if that fails)."""
    try:
        schema.migrate(conn, where)
    except BaseException:
        conn.close()
        raise
    return conn


def _node(row: sqlite3.Row) -> branches.Node:
    return branches.Node(row["id"], row["parent_id"], bool(row["picked"]))


def _nodes(conn: sqlite3.Connection, conversation_id: int) -> list[branches.Node]:
    rows = conn.execute("SELECT id, parent_id, picked FROM messages WHERE conversation_id = ?"
                        " ORDER BY id", (conversation_id,))
    return [_node(row) for row in rows]


def _pick(conn: sqlite3.Connection, message: Message) -> None:
    """Show `message` among its versions (the siblings sharing its parent)."""
    conn.execute("UPDATE messages SET picked = (id = ?) WHERE conversation_id = ?"
                 " AND parent_id IS ?", (message.id, message.conversation_id,
                                         message.parent_id))


def _delete(conn: sqlite3.Connection, message_id: int, row: sqlite3.Row) -> None:
    """Remove a message (`row` holds its conversation_id, parent_id, picked): what followed
    it follows its parent; if it was the version shown, the newest other one is shown."""
    if not row["picked"]:  # its followers were not shown: they stay hidden
        conn.execute("UPDATE messages SET picked = 0 WHERE parent_id = ?",
                     (message_id,))
    conn.execute("UPDATE messages SET parent_id = ? WHERE parent_id = ?",
                 (row["parent_id"], message_id))
    conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
    conn.execute(
        "UPDATE messages SET picked = 1 WHERE id = (SELECT MAX(id) FROM messages"
        " WHERE conversation_id = ? AND parent_id IS ?) AND NOT EXISTS (SELECT 1"
        " FROM messages WHERE conversation_id = ? AND parent_id IS ? AND picked)",
        (row["conversation_id"], row["parent_id"], row["conversation_id"],
         row["parent_id"]))


def _alive(pid: object) -> bool:
    """Whether the process that was streaming a reply still runs (None: unknown, an older
    Amicus wrote it; taken as gone, as that Amicus is not running now)."""
    if not isinstance(pid, int):
        return False
    return pid == os.getpid() or process_alive(pid)


def _update(conn: sqlite3.Connection, table: str, row_id: int, changes: dict[str, Any]) -> None:
    """UPDATE one row by id, or NotFoundError. Table and column names are ours, not input."""
    assignments = ", ".join(f"{column} = ?" for column in changes)
    cursor = conn.execute(f"UPDATE {table} SET {assignments} WHERE id = ?",
                          (*changes.values(), row_id))
    if cursor.rowcount != 1:
        noun = "conversation" if table == "conversations" else "message"
        raise NotFoundError(f"There is no {noun} {row_id} (it may have been deleted).")
