"""A file on disk -> a Document (its name, its text, how it was read), or one DocumentError.

Limits: a file over MAX_FILE_BYTES is refused before it is opened (a 2 GB video given by
mistake must not be read into memory), and so is text over MAX_TEXT_CHARS once extracted
(far more than any model's context: at one token per one to two characters, 2 million
characters would not fit even the 262,144-token context of Qwen3.5). What fits the
context is decided later, when the prompt is built, with the token count in the message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.documents.errors import DocumentError, Unreadable

MAX_FILE_BYTES = 50 * 1024 * 1024
MAX_TEXT_CHARS = 2_000_000


@dataclass(frozen=True)
class Document:
    name: str  # the file name the model sees
    path: Path
    text: str
    kind: str  # "text", "docx" or "pdf"
    detail: str  # how it was read: "GB18030/GBK", "UTF-8", "12 pages"...

    @property
    def chars(self) -> int:
        return len(self.text)


def _read_text(path: Path) -> tuple[str, str]:
    from app.documents.text import decode_text

    return decode_text(path.read_bytes())


def _read_docx(path: Path) -> tuple[str, str]:
    from app.documents.docx import read_docx

    return read_docx(path), "Word"


def _read_pdf(path: Path) -> tuple[str, str]:
    from app.documents.pdf import read_pdf

    text, pages = read_pdf(path)
    return text, f"{pages} page{'s' if pages != 1 else ''}"


_READERS: dict[str, tuple[str, Callable[[Path], tuple[str, str]]]] = {
    ".txt": ("text", _read_text), ".text": ("text", _read_text), ".md": ("text", _read_text),
    ".markdown": ("text", _read_text), ".docx": ("docx", _read_docx),
    ".pdf": ("pdf", _read_pdf),
}
SUFFIXES: tuple[str, ...] = tuple(_READERS)


def read_document(path: Path | str) -> Document:
    """Read one document; DocumentError (exit status 2) names the file and the problem."""
    path = Path(path)
    kind, read = _reader_for(path)
    _check_file(path)
    try:
        text, detail = read(path)
    except Unreadable as exc:
        raise DocumentError(f"{path}: {exc}") from exc
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    text = _normalized(text)
    if not text.strip():
        raise DocumentError(f"{path}: is empty (no text)")
    if len(text) > MAX_TEXT_CHARS:
        raise DocumentError(f"{path}: holds {len(text):,} characters of text; documents of up "
                            f"to {MAX_TEXT_CHARS:,} are read")
    return Document(path.name, path, text, kind, detail)


def read_documents(paths: Iterable[Path | str]) -> list[Document]:
    """Several documents, in order; the first bad one raises."""
    return [read_document(path) for path in paths]


FILE_FIELD = "file"


def record_document(record: Mapping[str, Any], base: Path) -> Document | None:
    """The document a batch record (`amicus audit`, `classify`) names in its "file" field,
    a path relative to the batch file's folder (or absolute); None when it names none."""
    if FILE_FIELD not in record:
        return None
    name = record[FILE_FIELD]
    if not isinstance(name, str) or not name.strip():
        raise DocumentError(f'"{FILE_FIELD}" must be a file name, not {name!r}')
    return read_document(base / Path(name).expanduser())


def _reader_for(path: Path) -> tuple[str, Callable[[Path], tuple[str, str]]]:
    found = _READERS.get(path.suffix.lower())
    if found is None:
        what = f"'{path.suffix}'" if path.suffix else "without an extension"
        raise DocumentError(f"{path}: unsupported file type {what} (Amicus reads "
                            ".txt, .md, .docx and .pdf; save other formats as one of these)")
    return found


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except FileNotFoundError as exc:
        raise DocumentError(f"{path}: no such file") from exc
    except OSError as exc:
        raise DocumentError(f"{path}: cannot be read ({exc.strerror or exc})") from exc
    if path.is_dir():
        raise DocumentError(f"{path}: is a folder, not a document")
    if size == 0:
        raise DocumentError(f"{path}: is empty (0 bytes)")
    if size > MAX_FILE_BYTES:
        raise DocumentError(f"{path}: is {size / 2**20:.0f} MB; documents of up to "
                            f"{MAX_FILE_BYTES // 2**20} MB are read")


def _normalized(text: str) -> str:
    """One kind of line end, no NUL characters (they end C strings in llama.cpp's
    tokenizer), no blanks trailing the whole text."""
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "").rstrip()
