"""Choosing a document to read: a path typed with completion (Tab, or → at the end, takes the
suggestion; the folders and documents that match are listed under it)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, Static

from app.documents import SUFFIXES

LISTED = 8  # matches listed under the path


def matches(value: str) -> list[str]:
    """The entries `value` may go on to: folders (with a trailing "/") and documents Amicus
    reads, whose names start with what follows the last "/"; hidden ones only when asked
    for with a leading dot. Sorted, folders first."""
    folder, _, prefix = value.rpartition("/")
    where = Path(os.path.expanduser(folder + "/" if folder or value.startswith("/") else "."))
    try:
        entries = list(os.scandir(where))
    except OSError:
        return []
    found: list[tuple[bool, str]] = []
    for entry in entries:
        if not entry.name.startswith(prefix) or (entry.name.startswith(".")
                                                 and not prefix.startswith(".")):
            continue
        try:
            is_dir = entry.is_dir()
        except OSError:
            continue
        if is_dir or Path(entry.name).suffix.lower() in SUFFIXES:
            found.append((not is_dir, entry.name + ("/" if is_dir else "")))
    return [name for _, name in sorted(found)]


def complete(value: str) -> str | None:
    """`value` completed as far as its matches agree (one match: all of it); None when
    that adds nothing."""
    names = matches(value)
    if not names:
        return None
    folder, slash, prefix = value.rpartition("/")
    common = os.path.commonprefix(names)  # noqa: RUF071 (names, not paths: by character)
    if len(common) <= len(prefix):
        return None
    return folder + slash + common


class PathSuggester(Suggester):
    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        return complete(value)


class FileDialog(ModalScreen[str | None]):
    """Dismisses with the path typed (Enter or the button), or None (Escape or Cancel)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel"),
        Binding("tab", "complete", "Complete", priority=True),
    ]

    def __init__(self, title: str, start: Path | None = None, *, ok: str = "Attach") -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.start = start or Path.cwd()
        self.ok = ok

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield Input(f"{str(self.start).rstrip('/')}/", id="path", select_on_focus=False,
                        suggester=PathSuggester(),
                        placeholder="a .txt, .md, .docx or .pdf file · Tab completes")
            yield Static("", id="matches", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.ok, variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#path", Input).focus()
        self._list(self.query_one("#path", Input).value)

    @on(Input.Changed, "#path")
    def _changed(self, event: Input.Changed) -> None:
        self._list(event.value)

    def _list(self, value: str) -> None:
        names = matches(value)
        more = f"\n… {len(names) - LISTED} more" if len(names) > LISTED else ""
        self.query_one("#matches", Static).update("\n".join(names[:LISTED]) + more)

    def action_complete(self) -> None:
        field = self.query_one("#path", Input)
        completed = complete(field.value)
        if completed is not None:
            field.value = completed
            field.cursor_position = len(completed)

    @on(Input.Submitted, "#path")
    @on(Button.Pressed, "#ok")
    def _ok(self, event: Input.Submitted | Button.Pressed) -> None:
        event.stop()
        path = self.query_one("#path", Input).value.strip()
        if path and not path.endswith("/"):
            self.dismiss(os.path.expanduser(path))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
