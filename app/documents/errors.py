"""The one error a document can raise: a line naming the file and what is wrong with it."""

from __future__ import annotations

from converters.errors import InputError


class DocumentError(InputError):
    """A file that cannot become part of a message: missing, of an unsupported type, empty,
    binary, too large, corrupt, encrypted, or a scan without text (exit status 2)."""

    title = "The document cannot be read"


class Unreadable(Exception):
    """What a format's reader raises: the problem alone ("is encrypted..."); `reader`
    turns it into a DocumentError that names the file. Deliberately not a ValueError, so
    the readers' own `except ValueError` clauses never swallow it."""
