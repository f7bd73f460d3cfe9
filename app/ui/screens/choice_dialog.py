"""A question with a few answers, each with its own key (delete? keep or discard?)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static


@dataclass(frozen=True)
class Choice:
    value: str
    label: str
    key: str  # one letter that picks it
    variant: str = "default"


class ChoiceDialog(ModalScreen[str]):
    """Dismisses with the chosen value; Escape gives `escape_value`."""

    def __init__(self, title: str, message: str, choices: Sequence[Choice], *,
                 escape_value: str) -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.message = message
        self.choices = list(choices)
        self.escape_value = escape_value

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title", markup=False)
            yield Static(self.message, classes="dialog-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                for choice in self.choices:
                    yield Button(f"{choice.label} ({choice.key})", id=f"choice-{choice.value}",
                                 variant=choice.variant, compact=True)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.query(Button).first().focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss((event.button.id or "").removeprefix("choice-"))

    def on_key(self, event: events.Key) -> None:
        if event.key == "escape":
            event.stop()
            self.dismiss(self.escape_value)
            return
        for choice in self.choices:
            if event.key == choice.key:
                event.stop()
                self.dismiss(choice.value)
                return


def confirm(title: str, message: str, yes: str = "Delete") -> ChoiceDialog:
    return ChoiceDialog(title, message, [Choice("yes", yes, "y", "error"),
                                         Choice("no", "Cancel", "n")], escape_value="no")
