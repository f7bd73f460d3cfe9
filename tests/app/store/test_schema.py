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
                                         "conversations_by_assistant", "messages_by_parent",
                                         "prompt_history_by_assistant"}
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


def _v2_database(path):
    """A database as the release before provenance wrote it (schema v2): two
    conversations, one with a streamed and a blocked turn, and a setting."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, str(path), MIGRATIONS[:2])
    stamp = "2026-01-02T03:04:05.000000+00:00"
    for assistant, title in (("sentencing", "旧案件"), ("general", "old chat")):
        conn.execute("INSERT INTO conversations (assistant, title, created_at, updated_at,"
                     " model, parameters) VALUES (?, ?, ?, ?, NULL, '{\"temperature\": 0.2}')",
                     (assistant, title, stamp, stamp))
    rows = [(1, "user", "被告人张某盗窃。", "complete", None),
            (2, "user", "hello", "complete", None),
            (1, "assistant", "判处有期徒刑一年。", "complete", None),
            (2, "user", "bad", "blocked", 0.91),
            (1, "user", "缓刑？", "complete", None),
            (1, "assistant", "可以", "cancelled", None)]
    for conversation_id, role, content, status, probability in rows:
        conn.execute("INSERT INTO messages (conversation_id, role, content, created_at, status,"
                     " completion_tokens, blocked_probability) VALUES (?, ?, ?, ?, ?, 7, ?)",
                     (conversation_id, role, content, stamp, status, probability))
    conn.execute("INSERT INTO settings (key, value) VALUES ('last_assistant', '\"general\"')")
    conn.close()


def test_a_v2_database_migrates_to_provenance_and_alternatives_keeping_its_data(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    _v2_database(path)
    with Store.open(path) as store:
        assert user_version(store._conn) == SCHEMA_VERSION
        case, chat = sorted(store.list_conversations(), key=lambda c: c.id)
        assert (case.title, case.parameters, chat.title) == ("旧案件", {"temperature": 0.2},
                                                            "old chat")
        messages = store.messages(case.id)
        assert [(m.role, m.content, m.status) for m in messages] == [
            ("user", "被告人张某盗窃。", "complete"),
            ("assistant", "判处有期徒刑一年。", "complete"),
            ("user", "缓刑？", "complete"), ("assistant", "可以", "cancelled")]
        # Each message follows the one before it in its conversation (not in the table).
        assert [m.parent_id for m in messages] == [None, 1, 3, 5]
        assert all(m.picked and m.provenance is None and m.completion_tokens == 7
                   for m in messages)
        assert [(m.content, m.status, m.blocked_probability)
                for m in store.messages(chat.id)] == [("hello", "complete", None),
                                                      ("bad", "blocked", 0.91)]
        assert store.get_setting("last_assistant") == "general"
        assert store.alternative_positions(case.id) == {}
        # The migrated conversations take new turns and alternatives at their end.
        again = store.add_alternative(messages[-1].id, "可以适用缓刑")
        assert [m.content for m in store.messages(case.id)][-1] == "可以适用缓刑"
        assert store.alternative_positions(case.id) == {again.id: (2, 2)}
        store.add_prompt("general", "remembered")
        assert store.prompt_history("general") == ["remembered"]


@pytest.mark.parametrize("version", [2, 3, 4], ids=["from-v2", "from-v3", "from-v4"])
def test_the_stop_reason_step_upgrades_an_earlier_database(tmp_path, version):
    """The stop-reason step (v5) comes after provenance (v3) and the streaming writer (v4),
    as its own step: an earlier database goes through the steps it lacks, a v4 one through
    this one alone; old replies read as unknown (None)."""
    path = tmp_path / "amicus.sqlite3"
    _v2_database(path)
    with closing(sqlite3.connect(path, isolation_level=None)) as conn:
        migrate(conn, str(path), MIGRATIONS[:version])
        assert user_version(conn) == version
        columns = {row[1] for row in conn.execute("PRAGMA table_info(messages)")}
        assert "stop_reason" not in columns and ("provenance" in columns) == (version >= 3)
        assert ("writer" in columns) == (version >= 4)
    with Store.open(path) as store:
        assert user_version(store._conn) == SCHEMA_VERSION == 5
        case = min(store.list_conversations(), key=lambda c: c.id)
        old = store.messages(case.id)
        assert [m.parent_id for m in old] == [None, 1, 3, 5]
        assert all((m.stop_reason, m.dropped_turns) == (None, None) for m in old)
        reply = store.add_message(case.id, "assistant", "", status="streaming")
        store.update_message(reply.id, content="判处有期徒刑", status="complete",
                             stop_reason="length", dropped_turns=4)
        cut = store.add_message(case.id, "assistant", "…", stop_reason="context",
                                dropped_turns=0)
    with Store.open(path) as store:
        again = store.get_message(reply.id)
        assert (again.stop_reason, again.dropped_turns, again.parent_id) == ("length", 4,
                                                                             old[-1].id)
        assert (store.get_message(cut.id).stop_reason,
                store.get_message(cut.id).dropped_turns) == ("context", 0)
