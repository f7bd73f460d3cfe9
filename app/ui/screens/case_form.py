"""The sentencing assistant's case form: the sections a judgment states, in the order a
judge weighs them, with the exact Chinese prompt they render shown before it is sent."""

from __future__ import annotations

from dataclasses import fields
from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from app.assistants.sentencing_case import SECTION_TITLES, CaseError, SentencingCase, render_case
from app.ui.screens.frame_form import FormResult

HINTS = {  # the placeholder: what the section is, in English
    "charges": "charges, e.g. 盗窃罪 (required)",
    "facts": "the facts of the case (required)",
    "plea": "plea and attitude",
    "prior_record": "prior record",
    "mitigating": "mitigating circumstances",
    "aggravating": "aggravating circumstances",
}
LABELS = {"charges": "罪名 *", "facts": "案件事实 *", "plea": "认罪认罚",
          "prior_record": "前科劣迹", "mitigating": "从轻减轻", "aggravating": "从重"}
MULTILINE = {"facts"}


class CaseForm(ModalScreen[FormResult | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self) -> None:
        super().__init__(classes="form")

    def compose(self) -> ComposeResult:
        with Vertical(classes="form-box"):
            yield Label("Sentencing: the case", classes="dialog-title")
            with VerticalScroll(classes="form-fields"):
                for field in fields(SentencingCase):
                    with Horizontal(classes="form-row"):
                        yield Label(LABELS[field.name], classes="field-label")
                        hint = f"{SECTION_TITLES[field.name]}: {HINTS[field.name]}"
                        if field.name in MULTILINE:
                            yield TextArea(id=field.name, classes="field", compact=True,
                                           placeholder=hint)
                        else:
                            yield Input(id=field.name, classes="field", compact=True,
                                        placeholder=hint)
                yield Label("The prompt that will be sent", classes="preview-title")
                yield Static("", id="preview", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Send", variant="primary", id="send", compact=True)
                yield Button("Edit in message box", id="insert", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self._refresh()
        self.query_one("#charges", Input).focus()

    def case(self) -> SentencingCase:
        values = {}
        for field in fields(SentencingCase):
            widget = self.query_one(f"#{field.name}")
            values[field.name] = widget.text if isinstance(widget, TextArea) else (
                widget.value if isinstance(widget, Input) else "")
        return SentencingCase(**values)

    def prompt(self) -> str:
        """The rendered prompt; CaseError when the charges or the facts are empty."""
        return render_case(self.case())

    def _refresh(self) -> None:
        preview = self.query_one("#preview", Static)
        try:
            preview.update(self.prompt())
            preview.remove_class("invalid")
        except CaseError as exc:
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
        except CaseError as exc:
            self.notify(str(exc), severity="error")
            return
        self.dismiss(FormResult("send" if event.button.id == "send" else "insert", text))

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
