"""Conversation titles from their content, so that cases can be told apart in the list.

A sentencing case is titled by its charge and defendant ("盗窃罪 · 张某"), a framed
moral-audit prompt by its frame and the start of its situation ("Action · Mike found a
wallet…"), anything else by its first line; each rule is the catalog's (`title_from`).
Titles fit TITLE_CELLS terminal cells (a CJK character takes two) and hold no control
character.
"""

from __future__ import annotations

from rich.cells import cell_len

from app.assistants.catalog import spec_of

DEFAULT_TITLE = "New conversation"
TITLE_CELLS = 40
SEPARATOR = " · "

# C0/C1 control characters (but tab and newline) would reach the terminal as they are: a
# demo model's random bytes, or a crafted reply, could move the cursor or retitle the window.
_CONTROLS = {code: "\ufffd" for code in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)]
             if chr(code) not in "\t\n"}


def printable(text: str) -> str:
    """`text` safe to show in a terminal: control characters become U+FFFD."""
    return text.translate(_CONTROLS)


def conversation_title(assistant: str, text: str, max_cells: int = TITLE_CELLS) -> str:
    """The title of a conversation whose first prompt to `assistant` is `text`."""
    spec = spec_of(assistant)
    parts = spec.title_from(text) if spec is not None and spec.title_from else None
    if parts:
        return fit(SEPARATOR.join(" ".join(printable(p).split()) for p in parts), max_cells)
    return first_line_title(text, max_cells)


def first_line_title(text: str, max_cells: int = TITLE_CELLS) -> str:
    """A title from the first line of `text`, cut to `max_cells` terminal cells."""
    line = " ".join(printable(text).strip().splitlines()[0].split()) if text.strip() else ""
    return fit(line, max_cells) or DEFAULT_TITLE


def fit(line: str, max_cells: int = TITLE_CELLS) -> str:
    """`line` cut to `max_cells` terminal cells, with an ellipsis when cut; words written
    with spaces are cut between words when that keeps most of the room."""
    if cell_len(line) <= max_cells:
        return line
    kept, width = [], 0
    for char in line:
        width += cell_len(char)
        if width > max_cells - 1:
            break
        kept.append(char)
    text = "".join(kept)
    space = text.rfind(" ")
    if not line[len(text)].isspace() and space > len(text) * 2 // 3:
        text = text[:space]
    return text.rstrip() + "…"
