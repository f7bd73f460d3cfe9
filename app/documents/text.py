"""Plain-text files in the encodings clinic documents come in.

Chinese court documents are often GBK (GB18030 is its superset, so we decode with that),
Taiwanese ones Big5; Windows editors write UTF-16 or UTF-8 with a byte-order mark. Order:
a BOM decides; strict UTF-8 next (it almost never decodes anything else by accident);
then charset-normalizer chooses between GB18030 and Big5 by how coherent each decoding
reads (both decode many byte strings, so the choice is statistical: short texts of a few
characters can be taken for the other one). Nothing else is guessed: a file in another
encoding is refused rather than shown as mojibake.
"""

from __future__ import annotations

import codecs

from charset_normalizer import from_bytes

from app.documents.errors import Unreadable

_BOMS: tuple[tuple[bytes, str, str], ...] = (
    (codecs.BOM_UTF32_LE, "utf-32", "UTF-32"),  # before UTF-16 LE: it starts the same way
    (codecs.BOM_UTF32_BE, "utf-32", "UTF-32"),
    (codecs.BOM_UTF8, "utf-8-sig", "UTF-8 (BOM)"),
    (codecs.BOM_UTF16_LE, "utf-16", "UTF-16"),
    (codecs.BOM_UTF16_BE, "utf-16", "UTF-16"),
)
# Python codec -> how we name it to the user.
_CANDIDATES = {"gb18030": "GB18030/GBK", "big5": "Big5"}


def decode_text(data: bytes) -> tuple[str, str]:
    """The text and the name of its encoding."""
    for bom, codec, name in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(codec), name
            except UnicodeDecodeError as exc:
                raise Unreadable(f"starts with a {name} byte-order mark but is not "
                                      f"{name} text (byte {exc.start})") from exc
    if b"\x00" in data:
        raise Unreadable("is not a text file (binary data)")
    try:
        return data.decode("utf-8"), "UTF-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(data, cp_isolation=list(_CANDIDATES)).best()
    if best is None or best.encoding not in _CANDIDATES:
        raise Unreadable("is not text in a known encoding (UTF-8, UTF-16, GB18030/GBK "
                              "or Big5)")
    return str(best), _CANDIDATES[best.encoding]
