"""The API key a server may want (vLLM started with `--api-key`, a clinic's gateway).

Where it comes from, first found wins: the environment (`AMICUS_API_KEY`, then
`OPENAI_API_KEY`, the name every OpenAI-compatible tool reads), then a key file named in
the config (`api_key_file`). Never from the command line: other users of the machine see
every process's arguments. A key file that others can read is refused, as ssh refuses such
a private key: the key is as good as published.

The key travels as a `Secret`, whose str() and repr() never show it, so it cannot slip into
a log line, a manifest, an export or an error message by being formatted; the client also
scrubs it out of anything a server answers (a gateway may echo the header it refused).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from converters.errors import InputError

KEY_VARIABLES = ("AMICUS_API_KEY", "OPENAI_API_KEY")
_MASK = "***"
_MAX_KEY_FILE_BYTES = 16 * 1024  # a key is a line; anything bigger is the wrong file


class ApiKeyError(InputError):
    """The API key cannot travel in an HTTP header (the message names where it came from,
    never the key)."""

    title = "The API key cannot be used"


class KeyFileError(ApiKeyError):
    """The key file is missing, empty, too open or unreadable (the message names it)."""

    title = "The API key file cannot be used"


class Secret:
    """A value that must never be written anywhere but the request that needs it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The key itself: only for the Authorization header."""
        return self._value

    def redact(self, text: str) -> str:
        """`text` with every occurrence of the key replaced by ***."""
        return text.replace(self._value, _MASK) if self._value else text

    def __repr__(self) -> str:
        return f"Secret({_MASK!r})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


def load_api_key(key_file: Path | None = None) -> Secret | None:
    """The key from the environment, else from `key_file`; None when neither has one."""
    for name in KEY_VARIABLES:
        value = os.environ.get(name, "").strip()
        if value:
            _check_header_safe(value, f"${name}", ApiKeyError)
            return Secret(value)
    return read_key_file(key_file) if key_file is not None else None


def _check_header_safe(key: str, where: str, error: type[ApiKeyError]) -> None:
    """An API key travels in an HTTP header: printable ASCII without spaces. Anything else
    (a curly quote pasted with it, a file in another encoding) would fail in the middle of
    the first request; it is refused here, by position, never showing the key."""
    for position, char in enumerate(key, 1):
        if not "!" <= char <= "~":
            raise error(f"{where}: the API key has a character an HTTP header cannot "
                        f"carry at position {position} (a key is printable ASCII without "
                        "spaces)")


def read_key_file(path: Path) -> Secret:
    """The first line of a key file only the user can read (KeyFileError otherwise)."""
    path = path.expanduser()
    try:
        info = path.stat()
    except FileNotFoundError as exc:
        raise KeyFileError(f"{path}: no such API key file") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the API key file ({exc.strerror})") from exc
    if not stat.S_ISREG(info.st_mode):
        raise KeyFileError(f"{path}: the API key file is not a regular file")
    _check_private(path, info.st_mode)
    if info.st_size > _MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"{path}: too large for an API key file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read the API key file ({exc.strerror})") from exc
    try:  # utf-8-sig: Notepad's byte-order mark is not part of the key
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:  # its message would show a byte of the key
        raise KeyFileError(f"{path}: the API key file is not UTF-8 text (at byte "
                           f"{exc.start + 1})") from exc
    lines = text.strip().splitlines()
    key = lines[0].strip() if lines else ""
    if not key:
        raise KeyFileError(f"{path}: the API key file is empty")
    _check_header_safe(key, str(path), KeyFileError)
    return Secret(key)


def _check_private(path: Path, mode: int) -> None:
    """Refuse group or other permissions (ssh's rule for private keys). Windows has no
    such bits: its ACLs are the user's profile's."""
    if os.name == "nt":
        return
    if mode & 0o077:
        raise KeyFileError(
            f"{path}: the API key file can be read by other users (mode "
            f"{stat.S_IMODE(mode):04o}); run: chmod 600 {path}")
