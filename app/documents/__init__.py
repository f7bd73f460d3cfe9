"""Case documents in: plain text in any common Chinese encoding, .docx and .pdf text layers.

    from app.documents import read_document, compose_message, split_message
    doc = read_document("判决书.txt")            # DocumentError: one line naming the file
    content = compose_message("量刑建议？", [doc])  # delimited blocks, then the question
    split_message(content)                        # [DocumentPart, TextPart] for the app

One concept per module: `errors`, `text` (encodings), `docx` (Word), `pdf` (text layer),
`reader` (file type, size limits, the Document), `blocks` (how a document sits in a
message). Headless: never imports textual.
"""

from __future__ import annotations

from app.documents.blocks import (
    DocumentPart,
    TextPart,
    compose_message,
    document_block,
    split_message,
)
from app.documents.errors import DocumentError
from app.documents.reader import (
    MAX_FILE_BYTES,
    MAX_TEXT_CHARS,
    SUFFIXES,
    Document,
    read_document,
    read_documents,
    record_document,
)

__all__ = [
    "MAX_FILE_BYTES",
    "MAX_TEXT_CHARS",
    "SUFFIXES",
    "Document",
    "DocumentError",
    "DocumentPart",
    "TextPart",
    "compose_message",
    "document_block",
    "read_document",
    "read_documents",
    "record_document",
    "split_message",
]
