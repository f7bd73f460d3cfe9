"""Migrations through PRAGMA user_version: forward from v1, newer refused, atomic steps."""

from __future__ import annotations

import sqlite3
from contextlib import closing

import pytest

from app.store import SCHEMA_VERSION, SchemaTooNewError, Store
from app.store.schema import MIGRATIONS, migrate, user_version


def _v1_database(path):
    """A database as the first release wrote it, holding one conversation."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, str(path), MIGRATIONS[:1])
    conn.execute("INSERT INTO conversations (assistant, title, created_at, updated_at)"
                 " VALUES ('civic-qa', '舊對話', '2025-01-01T00:00:00.000000+00:00',"
                 " '2025-01-01T00:00:00.000000+00:00')")
    conn.execute("INSERT INTO messages (conversation_id, role, content, created_at)"
                 " VALUES (1, 'user', '你好', '2025-01-01T00:00:00.000000+00:00')")
    conn.close()


def _indexes(conn) -> set[str]:
    rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'"
                        " AND name NOT LIKE 'sqlite_%'")
    return {name for (name,) in rows}


def test_a_new_database_is_at_the_current_version(store):
    assert SCHEMA_VERSION == len(MIGRATIONS) >= 2
    assert user_version(store._conn) == SCHEMA_VERSION


def test_a_v1_database_migrates_forward_keeping_its_data(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    _v1_database(path)
    with closing(sqlite3.connect(path)) as conn:
        assert user_version(conn) == 1 and _indexes(conn) == set()
    with Store.open(path) as store:
        assert user_version(store._conn) == SCHEMA_VERSION
        assert _indexes(store._conn) == {"messages_by_conversation",
                                         "conversations_by_assistant"}
        [chat] = store.list_conversations(assistant="civic-qa")
        assert chat.title == "舊對話" and chat.thinking and not chat.safety_gate
        assert [m.content for m in store.messages(chat.id)] == ["你好"]
    Store.open(path).close()  # opening again is a no-op


def test_a_database_from_a_newer_amicus_is_refused_untouched(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    Store.open(path).close()
    with closing(sqlite3.connect(path)) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(SchemaTooNewError) as caught:
        Store.open(path)
    message = str(caught.value)
    assert "\n" not in message and "newer Amicus" in message and str(path) in message
    with closing(sqlite3.connect(path)) as conn:
        assert user_version(conn) == SCHEMA_VERSION + 1


def test_a_failing_step_rolls_the_whole_upgrade_back(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    _v1_database(path)
    broken = (*MIGRATIONS, ("CREATE TABLE extra (x)", "SELECT no_such_function()"))
    conn = sqlite3.connect(path, isolation_level=None)
    with pytest.raises(sqlite3.OperationalError):
        migrate(conn, str(path), broken)
    assert user_version(conn) == 1
    assert _indexes(conn) == set()  # v2 was rolled back with the broken v3
    assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'extra'").fetchone() is None
    conn.close()


def test_replies_keep_their_stop_reason_across_the_migration(tmp_path):
    """A v2 database gains the stop-reason columns; old replies read as unknown (None)."""
    path = tmp_path / "amicus.sqlite3"
    _v1_database(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, str(path), MIGRATIONS[:2])
    with Store.open(path) as store:
        [chat] = store.list_conversations()
        [old] = store.messages(chat.id)
        assert (old.stop_reason, old.dropped_turns) == (None, None)
        reply = store.add_message(chat.id, "assistant", "", status="streaming")
        reply = store.update_message(reply.id, content="判处有期徒刑", status="complete",
                                     stop_reason="length", dropped_turns=4)
    with Store.open(path) as store:
        again = store.get_message(reply.id)
        assert (again.stop_reason, again.dropped_turns) == ("length", 4)
        cut = store.add_message(chat.id, "assistant", "…", stop_reason="context",
                                dropped_turns=0)
        assert store.get_message(cut.id).stop_reason == "context"
