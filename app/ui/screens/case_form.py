"""The sentencing assistant's case form: the sections a judgment states, in the order a
judge weighs them, with the exact Chinese prompt they render shown before it is sent. The
facts can come from a document (a judgment or case file: .txt in any common Chinese
encoding, .docx, .pdf); they stay editable, and a file that cannot be read leaves what was
typed as it was."""

from __future__ import annotations

from dataclasses import fields

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Input, Label, TextArea

from app.assistants.sentencing_case import (
    SECTION_TITLES,
    CaseError,
    SentencingCase,
    facts_from_file,
    render_case,
)
from app.documents import DocumentError
from app.ui.failures import show_failure
from app.ui.screens.file_dialog import FileDialog
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
                    if field.name in MULTILINE:
                        with Horizontal(classes="form-row"):
                            yield Label("", classes="field-label")
                            yield Button("Facts from a file…", id="facts-file", compact=True)
                yield from self.compose_preview()
            yield from self.compose_buttons()

    def on_mount(self) -> None:
        self._refresh()
        self.query_one("#charges", Input).focus()

    @on(Button.Pressed, "#facts-file")
    def _facts_file(self) -> None:
        self.app.push_screen(FileDialog("Read the facts from a document", ok="Read"),
                             self.fill_facts)

    def fill_facts(self, path: str | None) -> None:
        """The document's text in the facts field (a bad file: its dialog, facts kept)."""
        if not path:
            return
        try:
            text = facts_from_file(path)
        except DocumentError as exc:
            show_failure(self, exc)
            return
        facts = self.query_one("#facts", TextArea)
        facts.load_text(text)
        facts.focus()

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
