"""One line to type: a conversation's new name, the file to export to."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label


class TextDialog(ModalScreen[str | None]):
    """Dismisses with the text (Enter or OK), or None (Escape or Cancel)."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str, *, ok: str = "OK",
                 select_all: bool = False) -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.value = value
        self.ok = ok
        self.select_all = select_all  # the value starts selected: typing replaces it

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield Input(self.value, id="text", select_on_focus=self.select_all)
            with Horizontal(classes="dialog-buttons"):
                yield Button(self.ok, variant="primary", id="ok", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#text", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def _ok(self, event: Input.Submitted | Button.Pressed) -> None:
        event.stop()
        text = self.query_one("#text", Input).value
        if text.strip():
            self.dismiss(text)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
