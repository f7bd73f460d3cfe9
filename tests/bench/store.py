"""Benchmark: the conversation store with a clinic's worth of history.

Builds a schema-v2 database (the release before provenance and alternatives) of 1000
conversations of 50 messages (about 300 characters each, CJK), then measures: the upgrade
to the current schema (every message linked to the one before it), reading one
conversation as shown (the picked path), appending a turn, and searching every assistant
for a rare and a common string. Prints figures; no target is asserted.

Run: .venv/bin/python tests/bench/store.py
"""

from __future__ import annotations

import sqlite3
import tempfile
import time
from pathlib import Path

from app.store import Store
from app.store.schema import MIGRATIONS, migrate

CONVERSATIONS, MESSAGES = 1000, 50
STAMP = "2026-01-02T03:04:05.000000+00:00"


def build_v2(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, str(path), MIGRATIONS[:2])
    conn.execute("BEGIN")
    for c in range(1, CONVERSATIONS + 1):
        conn.execute("INSERT INTO conversations (assistant, title, created_at, updated_at)"
                     " VALUES ('general', ?, ?, ?)", (f"case {c}", STAMP, STAMP))
        for m in range(MESSAGES):
            conn.execute("INSERT INTO messages (conversation_id, role, content, created_at)"
                         " VALUES (?, ?, ?, ?)", (c, "user" if m % 2 == 0 else "assistant",
                                                  "案件事实 " * 60 + f"needle{c}-{m}", STAMP))
    conn.execute("COMMIT")
    conn.close()


def timed(label: str, repeat: int, action) -> None:
    start = time.perf_counter()
    for _ in range(repeat):
        result = action()
    each = (time.perf_counter() - start) / repeat
    extra = f" ({len(result)} returned)" if isinstance(result, list) else ""
    print(f"{label:<52} {each * 1000:9.1f} ms{extra}")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "amicus.sqlite3"
        build_v2(path)
        size = path.stat().st_size / 2**20
        print(f"{CONVERSATIONS} conversations x {MESSAGES} messages, {size:.0f} MB")
        store: list[Store] = []
        timed("upgrade v2 -> current schema (Store.open)", 1,
              lambda: store.append(Store.open(path)))
        opened = store[0]
        timed("messages() of one conversation (the picked path)", 50,
              lambda: opened.messages(7))
        timed("add_message() at the end of a conversation", 50,
              lambda: opened.add_message(8, "user", "再问一次"))
        timed("search(): a rare string", 5, lambda: opened.search("needle7-1"))
        timed("search(): a common string (limit 200)", 5, lambda: opened.search("案件"))
        opened.close()


if __name__ == "__main__":
    main()
