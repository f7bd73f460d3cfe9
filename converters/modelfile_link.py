"""Point a Modelfile at the GGUF the converter produced (`FROM ./<file>.gguf`).

Ollama takes a FROM path that does not exist as a model name, silently; the converter
therefore always rewrites FROM to the file it wrote, relative to the Modelfile.
"""

from __future__ import annotations

import re
from pathlib import Path

from converters.errors import InputError

_FROM_LINE = re.compile(r"^\s*FROM\s+\S.*$", re.IGNORECASE)
_TRIPLE = '"""'


def retarget_from(text: str, gguf_file: str) -> str:
    """Replace the FROM command (outside triple-quoted values) with `FROM ./gguf_file`."""
    lines = text.replace("\r\n", "\n").split("\n")
    inside = False
    replaced = False
    for i, line in enumerate(lines):
        if not inside and not replaced and _FROM_LINE.match(line):
            lines[i] = f"FROM ./{gguf_file}"
            replaced = True
            continue
        if line.count(_TRIPLE) % 2 == 1:
            inside = not inside
    if not replaced:
        lines.insert(0, f"FROM ./{gguf_file}")
    return "\n".join(lines)


def write_linked_modelfile(template: Path, target: Path, gguf_file: str) -> None:
    try:
        text = template.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{template}: cannot read Modelfile ({exc})") from exc
    target.write_text(retarget_from(text, gguf_file), encoding="utf-8", newline="\n")
