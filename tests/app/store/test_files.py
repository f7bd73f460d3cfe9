"""The database on disk: where it lives, who may read it, WAL, incognito, damaged files."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import pytest

from app.paths import data_dir
from app.store import CorruptDatabaseError, Store, StoreError, default_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _sidecars(path: Path) -> list[Path]:
    return [path.with_name(path.name + suffix) for suffix in ("-wal", "-shm")]


def test_lives_in_the_data_directory(store):
    assert store.path == default_path() == data_dir() / "amicus.sqlite3"
    assert store.path.is_file()
    assert not store.incognito


def test_files_are_readable_by_the_user_alone(tmp_path):
    path = tmp_path / "fresh" / "nested" / "amicus.sqlite3"
    with Store.open(path) as store:
        store.create_conversation("civic-qa")  # a write, so the WAL holds something
        assert _mode(path.parent) == 0o700
        assert _mode(path) == 0o600
        for sidecar in _sidecars(path):
            assert sidecar.exists()
            assert _mode(sidecar) == 0o600, sidecar


def test_group_readable_files_left_by_someone_else_are_tightened(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    sqlite3.connect(path).close()
    os.chmod(path, 0o644)
    Store.open(path).close()
    assert _mode(path) == 0o600


def test_uses_wal_foreign_keys_and_secure_delete(store):
    with closing(sqlite3.connect(store.path)) as other:  # WAL is a property of the file
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn = store._conn
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA secure_delete").fetchone()[0] == 1



def test_opening_the_file_again_keeps_the_first_stores_locks(tmp_path):
    """A second Store on the file in this process must not drop the first one's POSIX
    locks (closing any descriptor of the file would): another process closing its own
    Store would then take itself for the last user, checkpoint and delete the WAL under
    the first one (a two-process fuzz run met "disk I/O error" this way)."""
    path = tmp_path / "amicus.sqlite3"
    with Store.open(path) as first:
        first.create_conversation("general", title="before")
        Store.open(path).close()
        subprocess.run([sys.executable, "-c", "import sys; from app.store import Store; "
                        "Store.open(sys.argv[1]).close()", str(path)], check=True,
                       cwd=Path(__file__).resolve().parents[3], timeout=60)
        assert path.with_name(path.name + "-wal").exists()  # still ours: not checkpointed
        first.create_conversation("general", title="after")
    with Store.open(path) as store:
        assert sorted(c.title for c in store.list_conversations()) == ["after", "before"]

def test_incognito_keeps_nothing_on_disk(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative file named ":memory:" would land here
    home_before = sorted(data_dir().rglob("*"))
    with Store.open(incognito=True) as store:
        chat = store.create_conversation("sentencing", title="竊盜案")
        store.add_message(chat.id, "user", "被告坦承犯行" * 1000)
        store.set_setting("theme", "dark")
        assert store.incognito and store.path is None
        assert [c.title for c in store.list_conversations(search="坦承")] == ["竊盜案"]
        assert sorted(data_dir().rglob("*")) == home_before
        assert list(tmp_path.iterdir()) == []
    with Store.open(incognito=True) as again:
        assert again.list_conversations() == []


def test_incognito_refuses_a_path(tmp_path):
    with pytest.raises(ValueError, match="incognito"):
        Store.open(tmp_path / "x.sqlite3", incognito=True)


def test_a_file_that_is_not_a_database_gives_one_clear_line(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    path.write_bytes(b"not a database at all\n" * 300)
    with pytest.raises(CorruptDatabaseError) as caught:
        Store.open(path)
    message = str(caught.value)
    assert "\n" not in message
    assert str(path) in message and "not an Amicus database" in message
    assert path.read_bytes().startswith(b"not a database")  # left as it was


def test_damaged_pages_give_one_clear_line_when_read(tmp_path):
    path = tmp_path / "amicus.sqlite3"
    with Store.open(path) as store:
        for n in range(40):
            chat = store.create_conversation("general", title=f"chat {n}")
            store.add_message(chat.id, "user", "x" * 3000)
    data = bytearray(path.read_bytes())
    for offset in range(2 * 4096, len(data), 4096):  # keep the header and schema page
        data[offset:offset + 64] = b"\xff" * 64
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDatabaseError) as caught, Store.open(path) as store:
        store.list_conversations(search="x")
    assert "\n" not in str(caught.value) and "damaged" in str(caught.value)


def test_an_unopenable_path_is_a_store_error(tmp_path):
    folder = tmp_path / "amicus.sqlite3"
    folder.mkdir()
    with pytest.raises(StoreError) as caught:
        Store.open(folder)
    assert str(folder) in str(caught.value)


def test_deleted_text_does_not_linger_on_disk(store):
    secret = "當事人的身分證字號 A123456789"
    chat = store.create_conversation("civic-qa", title="私密")
    store.add_message(chat.id, "user", secret)
    store.delete_conversation(chat.id)
    on_disk = b"".join(p.read_bytes() for p in [store.path, *_sidecars(store.path)]
                       if p.exists())
    assert secret.encode() not in on_disk
