"""The sentencing assistant's case form: the sections a judgment states, in the order a
judge weighs them, with the exact Chinese prompt they render shown before it is sent."""

from __future__ import annotations

from dataclasses import fields

from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, TextArea

from app.assistants.sentencing_case import SECTION_TITLES, CaseError, SentencingCase, render_case
from app.ui.screens.prompt_form import PromptForm

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


class CaseForm(PromptForm):
    incomplete = CaseError

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
                yield from self.compose_preview()
            yield from self.compose_buttons()

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
