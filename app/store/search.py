"""Finding text in conversations: matching as SQLite's LIKE does, and a snippet around it.

LIKE matches ASCII letters in any case and every other character (CJK included) exactly, so
`find` folds ASCII letters only: the folded text keeps every character where it was, and
the offsets it returns point into the original. Snippets are sized in terminal cells (a CJK
character takes two), never start inside a combining sequence, and put every run of blanks
or line breaks on one line as a single space.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from rich.cells import cell_len

from .records import Conversation

SNIPPET_CELLS = 60
ELLIPSIS = "…"
_ASCII_FOLD = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_BLANKS = re.compile(r"\s+")


def like_pattern(text: str) -> str:
    r"""A LIKE pattern matching `text` anywhere, with \, % and _ taken literally."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def find(haystack: str, needle: str) -> int:
    """Where `needle` first occurs in `haystack` as LIKE would match it (-1: nowhere)."""
    return haystack.translate(_ASCII_FOLD).find(needle.translate(_ASCII_FOLD))


@dataclass(frozen=True)
class Snippet:
    """A line of text around a match; `text[start:end]` is the match (to highlight)."""

    text: str
    start: int
    end: int


@dataclass(frozen=True)
class SearchHit:
    """One match: in the conversation's title (`message_id` None) or in a message."""

    conversation: Conversation
    message_id: int | None
    role: str | None
    snippet: Snippet


def snippet(text: str, start: int, end: int, cells: int = SNIPPET_CELLS) -> Snippet:
    """The match `text[start:end]` with as much context on each side as fits in `cells`
    (half each, or more on one side when the other is short); "…" marks a cut."""
    match, whole_before, whole_after = (_flat(text[start:end]), _flat(text[:start]),
                                        _flat(text[end:]))
    room = max(0, cells - cell_len(match))
    before = _cut(whole_before, max(room // 2, room - cell_len(whole_after)), _tail)
    after = _cut(whole_after, room - cell_len(before), _head)
    return Snippet(before + match + after, len(before), len(before) + len(match))


def _cut(text: str, cells: int, keep: Callable[[str, int], str]) -> str:
    """`text` if it fits in `cells`, else the part `keep` leaves room for, with "…"."""
    if cell_len(text) <= cells:
        return text
    if cells < 1:
        return ""
    part = keep(text, cells - 1)
    return ELLIPSIS + part if keep is _tail else part + ELLIPSIS


def _flat(text: str) -> str:
    return _BLANKS.sub(" ", text)


def _tail(text: str, cells: int) -> str:
    """The end of `text` that fits in `cells`, not starting with a combining mark."""
    kept, used = len(text), 0
    while kept > 0 and used + cell_len(text[kept - 1]) <= cells:
        kept -= 1
        used += cell_len(text[kept])
    while kept < len(text) and unicodedata.combining(text[kept]):
        kept += 1
    return text[kept:]


def _head(text: str, cells: int) -> str:
    """The start of `text` that fits in `cells` (combining marks take no cell, so they
    always stay with their base character)."""
    kept, used = 0, 0
    while kept < len(text) and used + cell_len(text[kept]) <= cells:
        used += cell_len(text[kept])
        kept += 1
    return text[:kept]
