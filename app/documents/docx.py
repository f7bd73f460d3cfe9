"""Word documents (.docx): the body's paragraphs and tables, in reading order.

python-docx walks the body in document order (`iter_inner_content`), so a table sits
between the paragraphs around it, as on the page. A table becomes one line per row, its
cells separated by " | " (a merged cell, which python-docx repeats for every grid column it
spans, is written once); a table inside a cell is flattened into that cell's text. Headers,
footers, comments and tracked deletions are not part of the text a reader sees first, and
are left out.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from app.documents.errors import Unreadable

# An OLE compound file: what Word writes for a password-protected .docx (and old .doc).
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"


def read_docx(path: Path) -> str:
    with open(path, "rb") as handle:
        head = handle.read(8)
    if head == _OLE_MAGIC:
        raise Unreadable("is encrypted (password-protected) or an old Word .doc file: "
                             "save it as a .docx without a password")
    from docx import Document as open_docx  # imported on use: lxml is not small
    from docx.opc.exceptions import PackageNotFoundError

    try:
        document = open_docx(str(path))
        return "\n".join(_blocks(document))
    except (zipfile.BadZipFile, PackageNotFoundError, KeyError, ValueError) as exc:
        raise Unreadable(f"is not a valid .docx file ({_reason(exc)})") from exc
    except Exception as exc:  # lxml's XMLSyntaxError and friends: a damaged part
        if type(exc).__module__.startswith(("lxml", "docx")):
            raise Unreadable(f"is a damaged .docx file ({_reason(exc)})") from exc
        raise


def _blocks(container: Any) -> Iterator[str]:
    from docx.table import Table

    for item in container.iter_inner_content():
        if isinstance(item, Table):
            yield from _rows(item)
        else:
            yield item.text


def _rows(table: Any) -> Iterator[str]:
    for row in table.rows:
        cells, seen = [], set()
        for cell in row.cells:
            if id(cell._tc) in seen:  # one merged cell, repeated per spanned column
                continue
            seen.add(id(cell._tc))
            cells.append(" ".join(line for line in _blocks(cell) if line.strip()))
        yield " | ".join(cells)


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
