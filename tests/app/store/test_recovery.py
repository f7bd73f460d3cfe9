"""Replies left 'streaming' by a process that died are recovered when the database opens
(an empty one removed, a partial one kept as cancelled); another running Amicus' reply is
left alone. Databases from before the streaming process was recorded (schema v2, v3)
upgrade to v4 and are recovered the same way."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest

from app.store import SCHEMA_VERSION, Store
from app.store.schema import MIGRATIONS, migrate, user_version


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_replies_of_dead_processes_are_recovered_and_live_ones_kept(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with Store.open(path) as store:
            chat = store.create_conversation("general")
            store.add_message(chat.id, "user", "hi")
            empty = store.add_message(chat.id, "assistant", status="streaming")
            partial = store.add_message(chat.id, "assistant", "half an ans",
                                        status="streaming")
            live = store.add_message(chat.id, "assistant", "still going",
                                     status="streaming")
            done = store.add_message(chat.id, "assistant", "done", status="streaming")
            store.update_message(done.id, status="complete")
            dead = _dead_pid()
            conn = store._conn
            conn.execute("UPDATE messages SET writer = ? WHERE id IN (?, ?)",
                         (dead, empty.id, partial.id))
            conn.execute("UPDATE messages SET writer = ? WHERE id = ?", (other.pid, live.id))
        with Store.open(path) as store:
            statuses = {m.id: m.status for m in store.messages(chat.id)}
        assert empty.id not in statuses
        assert statuses[partial.id] == "cancelled"
        assert statuses[live.id] == "streaming"
        assert statuses[done.id] == "complete"
    finally:
        other.kill()
        other.wait()


STAMP = "2026-01-02T03:04:05.000000+00:00"


def _old_database(path, version: int) -> None:
    """A database as Amicus wrote it at schema `version` (2: before provenance and
    alternatives; 3: before the streaming process was recorded), left by a process killed
    while two replies streamed: one with some text, one (a regeneration, at v3) empty."""
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, str(path), MIGRATIONS[:version])
    conn.execute("INSERT INTO conversations (assistant, title, created_at, updated_at)"
                 " VALUES ('general', 'old', ?, ?)", (STAMP, STAMP))
    rows = [("user", "question", "complete"), ("assistant", "answer", "complete"),
            ("user", "again", "complete"), ("assistant", "half an ans", "streaming")]
    for role, content, status in rows:
        conn.execute("INSERT INTO messages (conversation_id, role, content, created_at, status)"
                     " VALUES (1, ?, ?, ?, ?)", (role, content, STAMP, status))
    if version >= 3:  # the chain is v3's; a regenerated answer 2, left empty and picked
        conn.execute("UPDATE messages SET parent_id = id - 1 WHERE id > 1")
        conn.execute("UPDATE messages SET picked = 0 WHERE id = 2")
        conn.execute("INSERT INTO messages (conversation_id, role, content, created_at, status,"
                     " parent_id, picked) VALUES (1, 'assistant', '', ?, 'streaming', 1, 1)",
                     (STAMP,))
    conn.close()


@pytest.mark.parametrize("version", [2, 3])
def test_an_older_database_upgrades_and_its_interrupted_replies_are_recovered(tmp_path,
                                                                              version):
    path = tmp_path / "amicus.sqlite3"
    _old_database(path, version)
    with Store.open(path) as store:
        assert user_version(store._conn) == SCHEMA_VERSION == len(MIGRATIONS)
        columns = {row["name"] for row in store._conn.execute("PRAGMA table_info(messages)")}
        assert {"provenance", "parent_id", "picked", "writer"} <= columns
        [chat] = store.list_conversations()
        shown = [(m.content, m.status) for m in store.messages(chat.id)]
        # The empty regeneration is gone and the answer it would have replaced shows again;
        # the partial reply (no writer recorded: its Amicus is not running) is cancelled.
        assert shown == [("question", "complete"), ("answer", "complete"),
                         ("again", "complete"), ("half an ans", "cancelled")]
        answer = store.messages(chat.id)[1]
        assert answer.picked and [m.content for m in store.alternatives(answer.id)] == [
            "answer"]
        reply = store.add_message(chat.id, "assistant", status="streaming")
        assert store._conn.execute("SELECT writer FROM messages WHERE id = ?",
                                   (reply.id,)).fetchone()[0] == os.getpid()
    Store.open(path).close()  # opening again changes nothing


def test_a_killed_regeneration_shows_the_earlier_reply_again(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    with Store.open(path) as store:
        chat = store.create_conversation("general")
        store.add_message(chat.id, "user", "hi")
        earlier = store.add_message(chat.id, "assistant", "hello")
        again = store.add_alternative(earlier.id, status="streaming")
        store._conn.execute("UPDATE messages SET writer = ? WHERE id = ?",
                            (_dead_pid(), again.id))
    with Store.open(path) as store:
        assert [(m.content, m.picked) for m in store.messages(chat.id)] == [
            ("hi", True), ("hello", True)]
        assert store.alternative_positions(chat.id) == {}
