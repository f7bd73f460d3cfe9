"""PDF files: the text layer of every page, with pypdf (pure Python, never the network).

A scanned PDF is pictures of pages: it has no text layer, and Amicus does no OCR, so it
is refused with a line that says so instead of sending the model an empty document. A PDF
encrypted with an empty user password (only printing or copying restricted) opens as any
other; one that needs a password is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

from app.documents.errors import Unreadable

# pypdf logs every oddity of a damaged file as a warning; we report one line ourselves.
logging.getLogger("pypdf").setLevel(logging.ERROR)


def read_pdf(path: Path) -> tuple[str, int]:
    """The pages' text, pages separated by a blank line, and the page count."""
    from pypdf import PdfReader
    from pypdf.errors import DependencyError, FileNotDecryptedError, PyPdfError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted and not reader.decrypt(""):
            raise Unreadable("is encrypted (password-protected): save an unprotected copy")
        pages = [page.extract_text() or "" for page in reader.pages]
    except (FileNotDecryptedError, DependencyError) as exc:
        raise Unreadable("is encrypted (password-protected): save an unprotected "
                            "copy") from exc
    except (PyPdfError, ValueError, KeyError, TypeError, AttributeError, IndexError,
            RecursionError) as exc:  # what a damaged file raises inside pypdf's parser
        raise Unreadable(f"is not a valid PDF file ({_reason(exc)})") from exc
    if not pages:
        raise Unreadable("has no pages")
    if not any(text.strip() for text in pages):
        raise Unreadable(f"has no text layer ({len(pages)} page(s) of images, a scan?); "
                            "Amicus does not do OCR: use a PDF with text or a .txt/.docx")
    return "\n\n".join(text.strip() for text in pages if text.strip()), len(pages)


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
