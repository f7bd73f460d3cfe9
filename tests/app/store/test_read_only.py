"""A data folder that can be read but not written (read-only, someone else's, or locked by
another Amicus in the middle of a migration): past conversations open read-only, new ones
live in memory, nothing is written to the folder."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

from app.store import ReadOnlyError, Store, StoreError
from app.store import connection as connection_module
from app.store.schema import MIGRATIONS, migrate
from tests.app.store.conftest import read_only


def _fingerprint(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def _with_a_case(path: Path) -> int:
    with Store.open(path) as store:
        chat = store.create_conversation("sentencing", title="盗窃罪 · 张某")
        store.add_message(chat.id, "user", "被告人张某盗窃。")
        store.add_message(chat.id, "assistant", "判处有期徒刑一年。")
        return chat.id


def test_a_read_only_folder_shows_past_conversations_and_keeps_new_ones_in_memory(folder):
    path = folder / "amicus.sqlite3"
    old = _with_a_case(path)
    before = _fingerprint(folder)
    with read_only(folder), Store.open(path) as store:
        assert store.read_only is not None and str(path) in store.read_only
        assert "\n" not in store.read_only and not store.incognito
        assert [c.id for c in store.list_conversations()] == [old]
        assert store.is_read_only(old)
        assert [m.content for m in store.messages(old)][-1] == "判处有期徒刑一年。"
        assert "判处有期徒刑一年。" in store.export_markdown(old)
        assert store.search("张某")[0].conversation.id == old
        for change in (lambda: store.add_message(old, "user", "再问"),
                       lambda: store.rename_conversation(old, "x"),
                       lambda: store.delete_conversation(old),
                       lambda: store.add_alternative(store.messages(old)[-1].id, "y")):
            with pytest.raises(ReadOnlyError) as caught:
                change()
            assert "\n" not in str(caught.value) and "read" in str(caught.value)
        new = store.create_conversation("civic-qa", title="新的")
        assert not store.is_read_only(new.id)
        store.add_message(new.id, "user", "押金？")
        assert "押金？" in store.export_markdown(new.id)
        store.set_setting("last_assistant", "civic-qa")
        store.add_prompt("civic-qa", "押金？")
    assert _fingerprint(folder) == before  # nothing written, no -wal or -shm left behind
    with Store.open(path) as store:
        assert [c.id for c in store.list_conversations()] == [old]


def test_a_missing_database_in_a_read_only_folder_is_an_error(folder):
    with read_only(folder), pytest.raises(StoreError) as caught:
        Store.open(folder / "amicus.sqlite3")
    assert str(folder) in str(caught.value) and "\n" not in str(caught.value)


def test_a_database_locked_during_its_migration_opens_read_only(tmp_path, monkeypatch):
    """Another Amicus holds the write lock while this one would migrate the file."""
    monkeypatch.setattr(connection_module, "BUSY_TIMEOUT_S", 0.1)
    path = tmp_path / "amicus.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    migrate(conn, str(path), MIGRATIONS[:2])
    conn.execute("PRAGMA journal_mode = WAL").fetchone()
    conn.execute("INSERT INTO conversations (assistant, title, created_at, updated_at) VALUES"
                 " ('general', 'kept', '2026-01-01T00:00:00+00:00', '2026-01-01T00:00:00+00:00')")
    conn.execute("BEGIN IMMEDIATE")
    try:
        with Store.open(path) as store:
            assert store.read_only is not None and "locked" in store.read_only
            assert [c.title for c in store.list_conversations()] == ["kept"]
    finally:
        conn.execute("ROLLBACK")
        conn.close()
    with Store.open(path) as store:  # the lock gone, the file migrates as usual
        assert store.read_only is None
