"""The schema and its migrations, tracked by `PRAGMA user_version`.

Each step moves a database from version N to N+1; steps run in order, all of them in one
transaction, so an interrupted upgrade leaves the database as it was. Never edit a step
that has shipped: append a new one, so every existing database walks the same path.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from .connection import transaction
from .errors import SchemaTooNewError

Step = tuple[str, ...]

# v1: conversations, messages, settings. JSON columns are checked in Python, not with
# json_valid(), which older SQLite builds lack.
_V1: Step = (
    """CREATE TABLE conversations (
        id            INTEGER PRIMARY KEY AUTOINCREMENT,
        assistant     TEXT NOT NULL,
        title         TEXT NOT NULL DEFAULT '',
        created_at    TEXT NOT NULL,
        updated_at    TEXT NOT NULL,
        model         TEXT,
        system_prompt TEXT,
        parameters    TEXT,
        thinking      INTEGER NOT NULL DEFAULT 1 CHECK (thinking IN (0, 1)),
        safety_gate   INTEGER NOT NULL DEFAULT 0 CHECK (safety_gate IN (0, 1))
    )""",
    """CREATE TABLE messages (
        id                  INTEGER PRIMARY KEY AUTOINCREMENT,
        conversation_id     INTEGER NOT NULL
                            REFERENCES conversations (id) ON DELETE CASCADE,
        role                TEXT NOT NULL CHECK (role IN ('system', 'user', 'assistant')),
        content             TEXT NOT NULL DEFAULT '',
        thinking            TEXT,
        created_at          TEXT NOT NULL,
        status              TEXT NOT NULL DEFAULT 'complete',
        prompt_ms           REAL,
        generation_ms       REAL,
        prompt_tokens       INTEGER,
        completion_tokens   INTEGER,
        tokens_per_second   REAL,
        blocked_probability REAL
    )""",
    """CREATE TABLE settings (
        key   TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID""",
)

# v2: indexes for loading a conversation's messages (and for the cascade on delete, which
# otherwise scans every message) and for listing an assistant's conversations.
_V2: Step = (
    "CREATE INDEX messages_by_conversation ON messages (conversation_id, id)",
    "CREATE INDEX conversations_by_assistant ON conversations (assistant, updated_at)",
)

# v3: traceable answers and the editing loop.
# - provenance: the JSON record of the model, file and settings behind an assistant message.
# - parent_id / picked: messages form a tree, so a regenerated reply or an edited question is
#   an alternative (a sibling) of the earlier one, which is kept; the conversation is the path
#   that follows the picked child at every step. Existing messages become a chain, each the
#   child of the one before it in its conversation.
# - prompt_history: the prompts sent to each assistant (the input's Up/Down keys).
_V3: Step = (
    "ALTER TABLE messages ADD COLUMN provenance TEXT",
    "ALTER TABLE messages ADD COLUMN parent_id INTEGER"
    " REFERENCES messages (id) ON DELETE SET NULL",
    "ALTER TABLE messages ADD COLUMN picked INTEGER NOT NULL DEFAULT 1"
    " CHECK (picked IN (0, 1))",
    """UPDATE messages SET parent_id = (
        SELECT MAX(earlier.id) FROM messages AS earlier
        WHERE earlier.conversation_id = messages.conversation_id AND earlier.id < messages.id)""",
    # ON DELETE SET NULL looks children up by parent: without this index, a scan per delete.
    "CREATE INDEX messages_by_parent ON messages (parent_id)",
    """CREATE TABLE prompt_history (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        assistant  TEXT NOT NULL,
        text       TEXT NOT NULL,
        created_at TEXT NOT NULL
    )""",
    "CREATE INDEX prompt_history_by_assistant ON prompt_history (assistant, id)",
)

# v4: which process is streaming a reply (its pid, while status is 'streaming'), so that a
# reply left by a process that was killed can be told from one another Amicus is writing.
_V4: Step = ("ALTER TABLE messages ADD COLUMN writer INTEGER",)

# v5, stop reasons: why a reply ended ("stop", "length" = num_predict reached, "context" = the
# context window filled, "cancelled"), so a cut-off reply is marked as such when the
# conversation is reopened, and how many earlier messages the model no longer saw when it
# wrote it (the conversation's divider). NULL for replies from before this step, and for
# user turns. One small step of its own, whatever other steps come before or after it.
_STOP_REASONS: Step = (
    "ALTER TABLE messages ADD COLUMN stop_reason TEXT",
    "ALTER TABLE messages ADD COLUMN dropped_turns INTEGER",
)

MIGRATIONS: tuple[Step, ...] = (_V1, _V2, _V3, _V4, _STOP_REASONS)
SCHEMA_VERSION = len(MIGRATIONS)


def user_version(conn: sqlite3.Connection) -> int:
    """The schema version recorded in the database file (0 for a new, empty file)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, where: str,
            steps: Sequence[Step] = MIGRATIONS) -> int:
    """Bring the database up to `len(steps)`; return the version it had before.

    Raises SchemaTooNewError, before writing anything, for a database from a newer Amicus.
    """
    before = user_version(conn)
    _refuse_newer(before, len(steps), where)
    if before == len(steps):
        return before
    with transaction(conn):
        # Read again under the write lock: another process may have migrated meanwhile.
        version = user_version(conn)
        _refuse_newer(version, len(steps), where)
        for number in range(version + 1, len(steps) + 1):
            for statement in steps[number - 1]:
                conn.execute(statement)
            # PRAGMA takes no parameters; `number` is an int we computed.
            conn.execute(f"PRAGMA user_version = {number}")
    return before


def _refuse_newer(version: int, known: int, where: str) -> None:
    if version > known:
        raise SchemaTooNewError(
            f"{where} was written by a newer Amicus (schema version {version}; this one "
            f"knows up to {known}): upgrade Amicus to open it.")
