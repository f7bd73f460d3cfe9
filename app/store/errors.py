"""The store's errors: each one's str() is a single line the UI can show in a dialog.

sqlite3 raises a handful of exception types whose messages mean little to a user ("file is
not a database"); `translate` maps them onto these, so the UI catches `StoreError` alone.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

from converters.errors import AmicusError, one_line


class StoreError(AmicusError):
    """Any failure of the conversation store; str() is one line, fit for a dialog."""

    title = "The conversations could not be read or saved"


class CorruptDatabaseError(StoreError):
    """The database file is damaged or is not a SQLite database at all."""

    title = "The conversation database is damaged"


class SchemaTooNewError(StoreError):
    """The database was written by a newer Amicus whose schema this one does not know."""


class DiskFullError(StoreError):
    """A write failed because the disk (or the database's size limit) is full."""

    title = "The disk is full"


class ReadOnlyError(StoreError):
    """A change to a conversation kept in a file this store can read but not write."""

    title = "The conversation is read-only"


class NotFoundError(StoreError, LookupError):
    """No conversation or message with that id (deleted meanwhile, perhaps)."""


def from_sqlite(exc: sqlite3.Error, where: str) -> StoreError:
    """The StoreError that explains `exc`, which happened while using the file `where`."""
    # sqlite_errorname exists from Python 3.11; the message text works on 3.10 too.
    name = getattr(exc, "sqlite_errorname", "")
    text = one_line(str(exc))
    if name == "SQLITE_FULL" or "database or disk is full" in text:
        return DiskFullError(f"The disk is full: could not save to {where}. "
                             "Free some space and try again.")
    if name in ("SQLITE_NOTADB", "SQLITE_CORRUPT") or "not a database" in text \
            or "malformed" in text:
        return CorruptDatabaseError(f"{where} is damaged or is not an Amicus database "
                                    f"({text}); move it aside and Amicus will start afresh.")
    if name == "SQLITE_BUSY" or "database is locked" in text:
        return StoreError(f"{where} is busy: another Amicus is writing to it ({text}).")
    return StoreError(f"{where}: {text}")


def as_store_error(exc: sqlite3.Error | OSError, where: str) -> StoreError:
    """The StoreError for a sqlite3 or file-system error met while using `where`."""
    if isinstance(exc, sqlite3.Error):
        return from_sqlite(exc, where)
    return StoreError(one_line(f"{where}: {exc.strerror or exc}"))


@contextmanager
def translate(where: str) -> Iterator[None]:
    """Turn sqlite3 and file-system errors raised inside the block into StoreErrors."""
    try:
        yield
    except (sqlite3.Error, OSError) as exc:
        raise as_store_error(exc, where) from exc
