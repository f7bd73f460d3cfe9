"""Replies left 'streaming' by a process that died are recovered when the database opens
(an empty one removed, a partial one kept as cancelled); another running Amicus' reply is
left alone."""

from __future__ import annotations

import subprocess
import sys

from app.store import Store


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
