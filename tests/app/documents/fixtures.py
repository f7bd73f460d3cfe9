"""Documents written by the tests themselves: .docx with python-docx, .pdf with pypdf's own
objects (a text layer in a content stream, or a page with no text at all)."""

from __future__ import annotations

from pathlib import Path

from pypdf import PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
)


def write_docx(path: Path, blocks: list[str | list[list[str]]]) -> Path:
    """Paragraphs (str) and tables (rows of cells), in this order."""
    import docx

    document = docx.Document()
    for block in blocks:
        if isinstance(block, str):
            document.add_paragraph(block)
        else:
            table = document.add_table(rows=len(block), cols=len(block[0]))
            for r, row in enumerate(block):
                for c, value in enumerate(row):
                    table.cell(r, c).text = value
    document.save(str(path))
    return path


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")


def write_pdf(path: Path, pages: list[list[str] | None], *, password: str | None = None,
              owner_only: bool = False) -> Path:
    """One page per entry: lines of text in Helvetica, or None for a page without text (a
    scan's page holds only an image; no text operator at all is what matters here)."""
    writer = PdfWriter()
    font = DictionaryObject({
        NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
        NameObject("/BaseFont"): NameObject("/Helvetica"),
        NameObject("/Encoding"): NameObject("/WinAnsiEncoding")})
    font_ref = writer._add_object(font)
    for lines in pages:
        page = writer.add_blank_page(width=612, height=792)
        stream = DecodedStreamObject()
        if lines is None:
            stream.set_data(b"q 0.5 g 72 72 468 648 re f Q")  # a grey rectangle, no text
        else:
            ops = ["BT", "/F1 12 Tf", "72 720 Td", "14 TL"]
            ops += [f"({_escape(line)}) Tj T*" for line in lines]
            ops.append("ET")
            stream.set_data("\n".join(ops).encode("latin-1"))
        page[NameObject("/Contents")] = writer._add_object(stream)
        page[NameObject("/Resources")] = DictionaryObject({NameObject("/Font"): DictionaryObject(
            {NameObject("/F1"): font_ref})})
        page[NameObject("/MediaBox")] = ArrayObject([NumberObject(0), NumberObject(0),
                                                     NumberObject(612), NumberObject(792)])
    if password is not None or owner_only:
        writer.encrypt(user_password="" if owner_only else password or "",
                       owner_password="owner-secret", algorithm="RC4-128")
    with open(path, "wb") as handle:
        writer.write(handle)
    return path
