"""How a document sits in a message: a delimited block the model reads with its file name,
and that the app can find again to show it collapsed.

    <document name="判决书.txt" chars="5400">
    ...the text, exactly 5400 characters...
    </document>

The block states its text's length, so splitting a message never depends on what the
text contains (a judgment quoting "</document>" still splits right). Documents come
first and the question last: models answer better with the question after the material,
and two questions about the same document then share the document as a prompt prefix,
whose reading the KV cache keeps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from app.documents.reader import Document

_OPEN = re.compile(r'<document name="((?:[^"\\\n]|\\.)*)" chars="(\d+)">\n')
_CLOSE = "\n</document>"


@dataclass(frozen=True)
class TextPart:
    text: str


@dataclass(frozen=True)
class DocumentPart:
    name: str
    text: str

    @property
    def chars(self) -> int:
        return len(self.text)


def _quote(name: str) -> str:
    return name.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


def _unquote(name: str) -> str:
    return re.sub(r"\\(.)", r"\1", name)


def document_block(name: str, text: str) -> str:
    return f'<document name="{_quote(name)}" chars="{len(text)}">\n{text}{_CLOSE}'


def compose_message(question: str, documents: Sequence[Document]) -> str:
    """The message text: each document's block, then the question (if any)."""
    parts = [document_block(d.name, d.text) for d in documents]
    if question.strip():
        parts.append(question.strip())
    return "\n\n".join(parts)


def split_message(content: str) -> list[TextPart | DocumentPart]:
    """A message's text and document blocks in order (text between blocks stripped of the
    blank lines compose_message puts there; a malformed block stays text)."""
    parts: list[TextPart | DocumentPart] = []
    position = 0
    for found in _OPEN.finditer(content):
        if found.start() < position:
            continue  # a header inside an earlier document's text
        start, length = found.end(), int(found.group(2))
        if content[start + length:start + length + len(_CLOSE)] != _CLOSE:
            continue
        _add_text(parts, content[position:found.start()])
        parts.append(DocumentPart(_unquote(found.group(1)), content[start:start + length]))
        position = start + length + len(_CLOSE)
    _add_text(parts, content[position:])
    return parts


def _add_text(parts: list[TextPart | DocumentPart], text: str) -> None:
    if text.strip("\n"):
        parts.append(TextPart(text.strip("\n")))
