"""A conversation's system prompt and sampling parameters. Blank fields follow the
Modelfile (the values then used are shown as placeholders); "Modelfile defaults" clears
them all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from app.assistants.profiles import AssistantProfile
from app.engine.params import GenerationParams
from app.store import Conversation


@dataclass(frozen=True)
class Param:
    name: str
    kind: type
    low: float | None = None  # inclusive bounds
    high: float | None = None

    def parse(self, text: str) -> Any:
        """The typed value; ValueError with a message naming the parameter."""
        try:
            value = self.kind(text)
        except ValueError:
            noun = "a whole number" if self.kind is int else "a number"
            raise ValueError(f"{self.name} must be {noun}, not {text!r}") from None
        if (self.low is not None and value < self.low) or (
                self.high is not None and value > self.high):
            span = f"{self.low if self.low is not None else '…'} to " \
                   f"{self.high if self.high is not None else '…'}"
            raise ValueError(f"{self.name} must be from {span}, not {value}")
        return value


PARAMS: tuple[Param, ...] = (
    Param("temperature", float, 0.0, 2.0), Param("top_p", float, 0.0, 1.0),
    Param("top_k", int, 0), Param("min_p", float, 0.0, 1.0),
    Param("repeat_penalty", float, 0.0), Param("repeat_last_n", int, -1),
    Param("num_predict", int, -1), Param("seed", int),
)


@dataclass(frozen=True)
class OptionsResult:
    system_prompt: str | None  # None: the Modelfile's
    parameters: dict[str, Any] | None  # None: the Modelfile's


def default_system(profile: AssistantProfile | None) -> str:
    return (profile.system or "") if profile is not None else ""


def default_value(profile: AssistantProfile | None, name: str) -> str:
    """What the engine samples with when the field is blank: the Modelfile's value, else
    the engine's default (GenerationParams), as it would be used."""
    params = GenerationParams.from_mapping(dict(profile.parameters) if profile else None)
    value = getattr(params, name)
    return "random" if value is None else str(value)


class OptionsEditor(ModalScreen[OptionsResult | None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, conversation: Conversation, profile: AssistantProfile | None) -> None:
        super().__init__(classes="form")
        self.conversation = conversation
        self.profile = profile

    def compose(self) -> ComposeResult:
        overrides = self.conversation.parameters or {}
        system = self.conversation.system_prompt
        with Vertical(classes="form-box"):
            yield Label(f"System prompt and parameters · {self.conversation.assistant}",
                        classes="dialog-title", markup=False)
            with VerticalScroll(classes="form-fields"):
                yield Label("System prompt (as in the Modelfile unless you change it)")
                yield TextArea(default_system(self.profile) if system is None else system,
                               id="system", compact=True)
                with Grid(id="params"):
                    for param in PARAMS:
                        default = default_value(self.profile, param.name)
                        yield Label(param.name)
                        yield Input(_text(overrides.get(param.name)), id=f"param-{param.name}",
                                    placeholder=f"default {default}", compact=True)
                yield Static("", id="errors", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save", compact=True)
                yield Button("Modelfile defaults", id="reset", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def on_mount(self) -> None:
        self.query_one("#system", TextArea).focus()

    def result(self) -> OptionsResult:
        """What the fields say; ValueError naming the first bad parameter."""
        text = self.query_one("#system", TextArea).text
        system = None if text == default_system(self.profile) else text
        values = {}
        for param in PARAMS:
            raw = self.query_one(f"#param-{param.name}", Input).value.strip()
            if raw:
                values[param.name] = param.parse(raw)
        return OptionsResult(system, values or None)

    @on(Button.Pressed, "#save")
    def _save(self) -> None:
        try:
            result = self.result()
        except ValueError as exc:
            self.query_one("#errors", Static).update(str(exc))
            return
        self.dismiss(result)

    @on(Button.Pressed, "#reset")
    def _reset(self) -> None:
        self.query_one("#system", TextArea).load_text(default_system(self.profile))
        for param in PARAMS:
            self.query_one(f"#param-{param.name}", Input).value = ""
        self.query_one("#errors", Static).update("")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
