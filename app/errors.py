"""The one mapping from exceptions to what the user sees: exit code, one line, dialog title.

Every error Amicus raises on purpose derives from `AmicusError` (converters.errors), which
carries its exit code and title. The command line (`app.cli`) and the terminal app
(`app.ui`) both describe failures through `describe`, so a missing model, an unreachable
server or a full disk reads the same in both, and only a bug says "internal error".
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

from converters.errors import (
    EXIT_BAD_INPUT,
    EXIT_BLOCKED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    AmicusError,
    InputError,
    one_line,
)

__all__ = [
    "DISK_FULL",
    "EXIT_BAD_INPUT",
    "EXIT_BLOCKED",
    "EXIT_INTERNAL",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "AmicusError",
    "Failure",
    "InputError",
    "describe",
]


@dataclass(frozen=True)
class Failure:
    """How one exception is reported."""

    exit_code: int
    title: str  # the app's dialog title
    line: str  # one line naming the problem
    internal: bool = False  # a bug: the CLI says "internal error" and offers the traceback


def describe(exc: BaseException) -> Failure:
    """The report for `exc`: AmicusError as it says, Ctrl-C, file-system errors (bad
    environment: exit 2), anything else a bug (exit 1)."""
    if isinstance(exc, AmicusError):
        return Failure(exc.exit_code, exc.title, one_line(str(exc)))
    if isinstance(exc, KeyboardInterrupt):
        return Failure(EXIT_INTERRUPTED, "Interrupted",
                       "interrupted; nothing was left under a final name")
    if isinstance(exc, OSError):
        return Failure(EXIT_BAD_INPUT, _os_title(exc), _os_line(exc))
    return Failure(EXIT_INTERNAL, "Unexpected error",
                   one_line(f"{type(exc).__name__}: {exc}"), internal=True)


DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


def _os_title(exc: OSError) -> str:
    if exc.errno in DISK_FULL:
        return "The disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "Permission denied"
    return "A file could not be read or written"


def _os_line(exc: OSError) -> str:
    where = f": {exc.filename}" if exc.filename else ""
    return one_line(f"{exc.strerror or exc}{where}")
