"""A conversation's system prompt, sampling parameters and context size (num_ctx). Blank
fields follow the Modelfile (the values then used are shown as placeholders); "Modelfile
defaults" clears them all.

num_ctx shows the memory the model takes at the size typed, and a size the model was not
trained for or that would not fit the memory free now is refused with the reason (the
estimate comes from the GGUF's header: app.engine.memory). A new size reloads the model
with the conversation's next message.

Under it, the disk its saved reading (the KV cache state that spares reading the case
again) takes, looked up in a thread worker, with a button to forget it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Grid, Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea

from app.assistants.profiles import AssistantProfile
from app.assistants.saved_reading import SavedReading
from app.engine.params import GenerationParams
from app.errors import describe
from app.store import Conversation
from converters.errors import AmicusError


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
class ContextChoice:
    """What the num_ctx field needs: the size used when it is blank, the most the model was
    trained for (None: unknown; shown as a hint), and the memory estimate at a size, as
    one line, raising an AmicusError when the size cannot be used (ContextSizeError over
    the trained context, InsufficientMemoryError over the memory free)."""

    current: int
    maximum: int | None
    estimate: Callable[[int], str]


NUM_CTX = Param("num_ctx", int, 1)


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

    def __init__(self, conversation: Conversation, profile: AssistantProfile | None,
                 context: ContextChoice | None = None,
                 saved_reading: Callable[[], SavedReading] | None = None) -> None:
        """`saved_reading`: the conversation's saved reading (blocking: run in a worker)."""
        super().__init__(classes="form")
        self.conversation = conversation
        self.profile = profile
        self.context = context
        self.saved_reading = saved_reading
        self.reading: SavedReading | None = None

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
                if self.context is not None:
                    yield from self.compose_context(overrides.get("num_ctx"))
                if self.saved_reading is not None:
                    with Horizontal(id="saved-reading-row"):
                        yield Static("Saved reading: looking…", id="saved-reading",
                                     markup=False)
                        yield Button("Forget it", id="forget", compact=True, disabled=True)
                yield Static("", id="errors", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Save", variant="primary", id="save", compact=True)
                yield Button("Modelfile defaults", id="reset", compact=True)
                yield Button("Cancel", id="cancel", compact=True)

    def compose_context(self, value: Any) -> ComposeResult:
        assert self.context is not None
        limit = f", at most {self.context.maximum:,}" if self.context.maximum else ""
        with Grid(id="context"):
            yield Label("num_ctx")
            yield Input(_text(value), id="num-ctx", compact=True,
                        placeholder=f"default {self.context.current}{limit}")
        yield Static("", id="memory", markup=False)

    def on_mount(self) -> None:
        self.query_one("#system", TextArea).focus()
        if self.context is not None:
            self._show_memory()
        if self.saved_reading is not None:
            self._look_up_reading()

    @on(Input.Changed, "#num-ctx")
    def _show_memory(self) -> None:
        """The estimate at the size typed (or the default), or why it cannot be used."""
        try:
            line = f"Memory: {self._check_context(self._num_ctx())}"
        except ValueError as exc:
            line = str(exc)
        self.query_one("#memory", Static).update(line)

    def _num_ctx(self) -> int | None:
        """The size typed (None: blank); ValueError when it is not a positive number."""
        raw = self.query_one("#num-ctx", Input).value.strip()
        return NUM_CTX.parse(raw) if raw else None

    def _check_context(self, n_ctx: int | None) -> str:
        """The estimate's line; ValueError with the reason when the size is refused."""
        assert self.context is not None
        try:
            return self.context.estimate(n_ctx or self.context.current)
        except (AmicusError, OSError) as exc:  # over the trained context, over the memory
            raise ValueError(describe(exc).line) from exc  # free, a GGUF that cannot be read

    def result(self) -> OptionsResult:
        """What the fields say; ValueError naming the first bad parameter."""
        text = self.query_one("#system", TextArea).text
        system = None if text == default_system(self.profile) else text
        values = {}
        for param in PARAMS:
            raw = self.query_one(f"#param-{param.name}", Input).value.strip()
            if raw:
                values[param.name] = param.parse(raw)
        if self.context is not None:
            n_ctx = self._num_ctx()
            if n_ctx is not None:
                self._check_context(n_ctx)
                values["num_ctx"] = n_ctx
        return OptionsResult(system, values or None)

    @work(thread=True, exclusive=True, group="saved-reading", exit_on_error=False)
    def _look_up_reading(self, forget: SavedReading | None = None) -> None:
        """Look the saved reading up (after forgetting `forget`'s states) and show it."""
        assert self.saved_reading is not None
        try:
            if forget is not None:
                forget.forget()
            found = self.saved_reading()
            reading, line = found, found.describe()
        except (AmicusError, OSError) as exc:  # an unreadable model file or state folder
            reading, line = None, f"Saved reading: {describe(exc).line}"
        self.app.call_from_thread(self._show_reading, reading, line)

    def _show_reading(self, reading: SavedReading | None, line: str) -> None:
        if not self.is_attached:  # closed before the lookup answered
            return
        self.reading = reading
        self.query_one("#saved-reading", Static).update(line)
        self.query_one("#forget", Button).disabled = not (reading and reading.states)

    @on(Button.Pressed, "#forget")
    def _forget(self) -> None:
        self.query_one("#forget", Button).disabled = True
        self._look_up_reading(self.reading)

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
        for field in self.query("#num-ctx").results(Input):
            field.value = ""
        self.query_one("#errors", Static).update("")

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


def _text(value: Any) -> str:
    return "" if value is None else str(value)
