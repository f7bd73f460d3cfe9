"""Opening the SQLite connection: a private file (0600 in a 0700 folder), memory only, or a
copy in memory of a file that can be read but not written (a read-only or locked folder).

One connection serves every thread (`check_same_thread=False`); the Store serialises its
use with a lock. Transactions are explicit (`isolation_level=None`), so a migration's DDL
and its `user_version` bump commit or roll back together.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
BUSY_TIMEOUT_S = 5.0  # another Amicus process (the CLI beside the UI) may hold the write lock


def open_file(path: Path) -> sqlite3.Connection:
    """Connect to the database at `path`, creating it readable by the user alone."""
    _create_private(path)
    conn = sqlite3.connect(path, timeout=BUSY_TIMEOUT_S, check_same_thread=False,
                           isolation_level=None)
    try:
        _configure(conn)
        # WAL lets the UI read while a worker writes; on a file system without shared
        # memory SQLite answers with another mode, which still works, only slower.
        conn.execute("PRAGMA journal_mode = WAL").fetchone()
        _tighten(path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm"))
    except BaseException:
        conn.close()
        raise
    return conn


def open_memory() -> sqlite3.Connection:
    """A database that lives in this process only: incognito keeps nothing on disk."""
    conn = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    _configure(conn)
    return conn


def open_snapshot(path: Path) -> sqlite3.Connection:
    """A copy in memory of the database at `path`, opened without writing anything to its
    folder; changes to the copy stay in memory. Raises sqlite3.Error if it cannot be read.

    A WAL database needs its -shm file, which a reader creates; in a folder it may not
    write, SQLite can only read it as immutable (the main file alone, without the WAL's
    last changes, which a clean close has already checkpointed into it)."""
    uri = f"file:{quote(str(path.resolve()))}?mode=ro"
    error: sqlite3.Error | None = None
    for suffix in ("", "&immutable=1"):
        source = sqlite3.connect(uri + suffix, uri=True, timeout=BUSY_TIMEOUT_S,
                                 isolation_level=None)
        try:
            copy = open_memory()
            source.backup(copy)
            return copy
        except sqlite3.Error as exc:
            error = error or exc
        finally:
            source.close()
    assert error is not None
    raise error


# Errors that mean "this file can be read but not written here": permissions, a read-only
# file system, a folder where the -wal/-shm files cannot be created, another process's lock.
_READ_ONLY_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
_READ_ONLY_SQLITE = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_BUSY",
                     "SQLITE_LOCKED")
_READ_ONLY_TEXTS = ("readonly", "read-only", "unable to open", "locked")


def cannot_write(exc: BaseException) -> bool:
    """Whether opening for writing failed for a reason a read-only copy may get around."""
    if isinstance(exc, OSError):
        return exc.errno in _READ_ONLY_ERRNOS
    if isinstance(exc, sqlite3.Error):
        # sqlite_errorname exists from Python 3.11; the message text works on 3.10 too.
        name = getattr(exc, "sqlite_errorname", "")
        return name.startswith(_READ_ONLY_SQLITE) or any(
            text in str(exc) for text in _READ_ONLY_TEXTS)
    return False


def _configure(conn: sqlite3.Connection) -> None:
    conn.row_factory = sqlite3.Row
    # The first statement that reads the file: a file that is not a database fails here.
    conn.execute("PRAGMA foreign_keys = ON")
    conn.execute("PRAGMA schema_version").fetchone()
    # Sorts and temporary indexes would otherwise spill into files under /tmp.
    conn.execute("PRAGMA temp_store = MEMORY")
    # Deleted conversations are overwritten with zeros, not left readable in free pages.
    conn.execute("PRAGMA secure_delete = ON")
    # In WAL mode NORMAL never corrupts; it skips an fsync per commit (streaming updates).
    conn.execute("PRAGMA synchronous = NORMAL")


def _create_private(path: Path) -> None:
    """Create the folder (0700) and an empty database file (0600) before SQLite opens it.

    Creating the file ourselves with an explicit mode avoids touching the process-wide
    umask, which other threads would see; SQLite then gives its -wal and -shm files the
    main file's mode.
    """
    path.parent.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    fd = os.open(path, os.O_CREAT | os.O_RDWR, PRIVATE_FILE)
    os.close(fd)
    _tighten(path)


def _tighten(*paths: Path) -> None:
    """Drop group and other permissions from files an older run may have left open."""
    for path in paths:
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(path, mode & 0o700)


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK if the block raises.

    IMMEDIATE takes the write lock at once, so two processes never both read, then both
    try to upgrade to writing (which SQLite would refuse to one of them, without waiting).
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")  # inside the try: a commit can fail too (a full disk)
    except BaseException:
        # SQLite rolls back by itself after some errors (a full disk): check first.
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
