"""What the structured-prompt forms share: a live preview of the exact prompt, and the
Send / Edit in message box / Cancel buttons. Subclasses say how to render the prompt and
which error means "not filled in yet"."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea


@dataclass(frozen=True)
class FormResult:
    how: Literal["send", "insert"]
    text: str


class PromptForm(ModalScreen[FormResult | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]
    incomplete: ClassVar[type[Exception]] = ValueError  # raised by prompt() while unfilled

    def __init__(self) -> None:
        super().__init__(classes="form")

    def prompt(self) -> str:
        raise NotImplementedError

    def compose_preview(self) -> ComposeResult:
        yield Label("The prompt that will be sent", classes="preview-title")
        yield Static("", id="preview", markup=False)

    def compose_buttons(self) -> ComposeResult:
        with Horizontal(classes="dialog-buttons"):
            yield Button("Send", variant="primary", id="send", compact=True)
            yield Button("Edit in message box", id="insert", compact=True)
            yield Button("Cancel", id="cancel", compact=True)

    def _refresh(self) -> None:
        preview = self.query_one("#preview", Static)
        try:
            preview.update(self.prompt())
            preview.remove_class("invalid")
        except self.incomplete as exc:
            preview.update(f"({exc})")
            preview.add_class("invalid")

    @on(Input.Changed)
    @on(TextArea.Changed)
    def _field_changed(self) -> None:
        self._refresh()

    @on(Button.Pressed, "#send")
    @on(Button.Pressed, "#insert")
    def _done(self, event: Button.Pressed) -> None:
        try:
            text = self.prompt()
        except self.incomplete as exc:
            self.notify(str(exc), severity="error")
            return
        self.dismiss(FormResult("send" if event.button.id == "send" else "insert", text))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
