"""The one error root of Amicus, and the exit codes the command line documents.

Every error Amicus reports on purpose derives from `AmicusError`: its str() is one line that
names the problem (and the file, tensor, server or option involved), `exit_code` is what
the command line exits with, and `title` heads the terminal app's dialog. Anything else
that escapes is a bug: exit 1, "internal error". The mapping from exceptions to exit codes,
lines and titles lives in one place, `app.errors`.

It lives here, in the lower layer, because converters never import app.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_INTERNAL = 1  # a bug in Amicus
EXIT_BAD_INPUT = 2  # bad input or environment: a missing or corrupt file, a full disk,
#                     an unreachable server, an unsupported model
EXIT_BLOCKED = 3  # the intent-safety gate blocked the message
EXIT_INTERRUPTED = 130  # Ctrl-C


class AmicusError(Exception):
    """Root of every error Amicus reports: one line, an exit code, a dialog title.

    Subclasses set `exit_code` and `title` for their kind; one instance may override
    either (`AmicusError("...", title="The model could not be loaded")`).
    """

    exit_code: int = EXIT_BAD_INPUT
    title: str = "Something went wrong"

    def __init__(self, message: str, *, exit_code: int | None = None,
                 title: str | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        if title is not None:
            self.title = title


class InputError(AmicusError):
    """Bad input: the message names the problem and the file, tensor or option."""

    title = "The input cannot be used"


class VerificationError(InputError):
    """A converted model does not behave like its source."""

    title = "The model failed verification"


def one_line(text: str) -> str:
    """Whitespace collapsed, so that a message never spills over several lines."""
    return " ".join(text.split())
