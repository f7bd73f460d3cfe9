"""The moral-audit frames of seed 000 as a form: pick a frame, fill its fields, read the exact
prompt it renders, then send it (or put it in the message box to edit first)."""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Select, TextArea

from app.assistants.moral_frames import FRAMES, FrameError, render_frame
from app.ui.screens.prompt_form import PromptForm

FIELD_LABELS = {  # label, and the placeholder that says what to write
    "situation": ("Situation", "the context or background"),
    "intention": ("Intention", "what the person wants to achieve"),
    "action": ("Action", "what they do or propose to do"),
    "norm": ("Norm", "the moral rule at stake"),
}


class FrameForm(PromptForm):
    incomplete = FrameError

    def __init__(self, frame_id: str = "direct") -> None:
        super().__init__()
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
                yield from self.compose_preview()
            yield from self.compose_buttons()

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
        super()._refresh()

    @on(Select.Changed, "#frame")
    def _frame_changed(self, event: Select.Changed) -> None:
        if isinstance(event.value, str):
            self.frame_id = event.value
            self._refresh()
