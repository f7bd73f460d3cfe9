"""The moral-audit frames of seed 000 as a form: pick a frame, fill its fields, read the exact
prompt it renders, then send it (or put it in the message box to edit first)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static, TextArea

from app.assistants.moral_frames import FRAMES, FrameError, render_frame

FIELD_LABELS = {  # label, and the placeholder that says what to write
    "situation": ("Situation", "the context or background"),
    "intention": ("Intention", "what the person wants to achieve"),
    "action": ("Action", "what they do or propose to do"),
    "norm": ("Norm", "the moral rule at stake"),
}


@dataclass(frozen=True)
class FormResult:
    how: Literal["send", "insert"]
    text: str


class FrameForm(ModalScreen[FormResult | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, frame_id: str = "direct") -> None:
        super().__init__(classes="form")
        self.frame_id = frame_id

    def compose(self) -> ComposeResult:
        with Vertical(classes="form-box"):
            yield Label("Moral audit: a structured prompt", classes="dialog-title")
            with VerticalScroll(classes="form-fields"):
                yield Select([(f.title, f.id) for f in FRAMES.values()], value=self.frame_id,
                             allow_blank=False, id="frame", compact=True)
                for name, (label, hint) in FIELD_LABELS.items():
                    with Horizontal(id=f"row-{name}", classes="form-row"):
                        yield Label(label, classes="field-label")
                        if name == "situation":
                            yield TextArea(id=name, classes="field", compact=True,
                                           placeholder=hint)
                        else:
                            yield Input(id=name, classes="field", compact=True,
                                        placeholder=hint)
                yield Label("The prompt that will be sent", classes="preview-title")
                yield Static("", id="preview", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send", variant="primary", id="send", compact=True)
                yield Button("Edit in message box", id="insert", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self._refresh()
        self.query_one("#situation", TextArea).focus()

    def record(self) -> dict[str, str]:
        values = {"situation": self.query_one("#situation", TextArea).text}
        for name in ("intention", "action", "norm"):
            values[name] = self.query_one(f"#{name}", Input).value
        return values

    def prompt(self) -> str:
        """The rendered prompt; FrameError when a field the frame needs is empty."""
        return render_frame(self.frame_id, self.record())

    def _refresh(self) -> None:
        needed = FRAMES[self.frame_id].fields
        for name in FIELD_LABELS:
            self.query_one(f"#row-{name}").display = name in needed
        preview = self.query_one("#preview", Static)
        try:
            preview.update(self.prompt())
            preview.remove_class("invalid")
        except FrameError as exc:
            preview.update(f"({exc})")
            preview.add_class("invalid")

    @on(Select.Changed, "#frame")
    def _frame_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.frame_id = event.value
            self._refresh()

    @on(Input.Changed)
    @on(TextArea.Changed)
    def _field_changed(self) -> None:
        self._refresh()

    @on(Button.Pressed, "#send")
    @on(Button.Pressed, "#insert")
    def _done(self, event: Button.Pressed) -> None:
        try:
            text = self.prompt()
        except FrameError as exc:
            self.notify(str(exc), severity="error")
            return
        self.dismiss(FormResult("send" if event.button.id == "send" else "insert", text))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
