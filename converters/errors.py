"""Errors the converters raise for bad input.

`InputError` means the user gave us something we cannot use (a corrupt file, a wrong shape,
an unsupported architecture). The command line prints its message on one line and exits 2.
Anything else escaping a converter is an internal failure (exit 1).
"""

from __future__ import annotations


class InputError(Exception):
    """Bad input: the message is one line that names the problem and the file or tensor."""
