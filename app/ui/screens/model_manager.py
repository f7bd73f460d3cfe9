"""The installed models: size, quantization, checksum status, the highlighted model's
quality report, which is loaded and where it runs (GPU or CPU); with no model installed,
how to get one. With a server (`--endpoint`), also what the server offers (its
/v1/models) and which assistants are asked for which."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Label, Markdown, Static

from app.assistants.registry import InstalledModel, human_size
from app.assistants.server import ServerListing, list_server_models
from app.errors import describe
from app.ui.config import UIConfig
from app.ui.messages import BackendProbed, ModelVerified, ServerListed
from app.ui.services import Services, server_targets
from converters.verify.summary import report_rows

GUIDANCE = """\
**No model is installed yet.** Amicus runs models from its data folder; to get some:

- `amicus demo` builds tiny stand-ins for all five assistants in about a minute, offline
  (random weights: their text is meaningless, but every screen works).
- `amicus convert moral-audit` (or civic-qa, sentencing, general, intent-safety) converts
  the real checkpoints to Q4_K_M GGUF.
- `amicus models import-ollama NAME` installs a model from a local Ollama store.

Then come back here, or restart Amicus.
"""
COLUMNS = ("Name", "Kind", "Quant", "Size", "Checksum")
SERVER_COLUMNS = ("Model on the server", "Asked for by")


def model_row(model: InstalledModel, loaded: str | None) -> tuple[Text | str, ...]:
    """One row; the name cell carries the notes on a second line, which keeps the table
    inside 80 columns."""
    name = Text(model.name + (" (loaded)" if model.name == loaded else ""))
    if model.demo:
        name.append("\ndemo: meaningless text", style="italic")
    return (name, "classifier" if model.is_classifier else "chat", model.quantization,
            human_size(model.size), model.checksum_status())


class ModelManager(Screen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "close", "Back"),
        Binding("v", "verify", "Verify checksums"),
        Binding("r", "reload", "Reload"),
    ]

    def __init__(self, services: Services, config: UIConfig | None = None) -> None:
        super().__init__(id="models")
        self.services = services
        self.config = config or UIConfig()
        self.endpoint = self.config.endpoint  # the chat server, if one answers

    def compose(self) -> ComposeResult:
        with Vertical(id="models-body"):
            yield Label("Installed models", classes="screen-title")
            yield DataTable(id="model-table", cursor_type="row", zebra_stripes=True)
            yield Static("", id="quality", markup=False)
            yield Static("", id="backend", markup=False)
            yield Markdown(GUIDANCE, id="guidance", open_links=False)
            if self.endpoint is not None:
                yield Label(f"On the server {self.endpoint}", id="server-title",
                            classes="screen-title", markup=False)
                yield DataTable(id="server-table", cursor_type="row", zebra_stripes=True)
                yield Static("asking the server for its models…", id="server-note",
                             markup=False)
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#model-table", DataTable)
        table.add_columns(*COLUMNS)
        self._fill()
        self._probe_backend()
        if self.endpoint is not None:
            self.query_one("#server-table", DataTable).add_columns(*SERVER_COLUMNS)
            self._list_server()

    def _fill(self) -> None:
        models = self.services.models()
        loaded = self.services.loaded.name if self.services.loaded else None
        table = self.query_one("#model-table", DataTable)
        table.clear()
        for model in models:
            row = model_row(model, loaded)
            table.add_row(*row, key=model.name, height=2 if model.demo else 1)
        table.display = bool(models)
        self.query_one("#guidance").display = not models
        if models:
            table.focus()

    @on(DataTable.RowHighlighted)
    def _show_quality(self, event: DataTable.RowHighlighted) -> None:
        model = self.services.model(str(event.row_key.value))
        self.query_one("#quality", Static).update(quality_text(model) if model else "")

    @work(thread=True, exclusive=True, group="probe", exit_on_error=False)
    def _probe_backend(self) -> None:
        self.post_message(BackendProbed(backend_line(self.services)))

    @on(BackendProbed)
    def _backend(self, event: BackendProbed) -> None:
        self.query_one("#backend", Static).update(event.text)

    @work(thread=True, exclusive=True, group="server", exit_on_error=False)
    def _list_server(self) -> None:
        names = [entry.name for entry in self.services.assistants()]
        try:  # with the chat's own client settings: its API key and certificate authority
            chat, _gate = server_targets(self.config)
            assert chat is not None
            listing = list_server_models(chat.client(), names, self.config.server_models)
        except Exception as exc:  # unreachable, refused, not OpenAI-compatible: say so
            self.post_message(ServerListed(None, describe(exc).line))
            return
        self.post_message(ServerListed(listing))

    @on(ServerListed)
    def _server_listed(self, event: ServerListed) -> None:
        note = self.query_one("#server-note", Static)
        listing = event.listing
        if listing is None:
            note.update(f"The server could not be listed: {event.problem}")
            return
        table = self.query_one("#server-table", DataTable)
        table.clear()
        for model in listing.models:
            table.add_row(model.id, ", ".join(model.assistants) or "-")
        note.update(server_note(listing))

    def selected(self) -> InstalledModel | None:
        table = self.query_one("#model-table", DataTable)
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        return self.services.model(str(key))

    def action_verify(self) -> None:
        model = self.selected()
        if model is not None:
            self.notify(f"Verifying {model.name}…")
            self._verify(model)

    @work(thread=True, exclusive=True, group="verify", exit_on_error=False)
    def _verify(self, model: InstalledModel) -> None:
        self.post_message(ModelVerified(model.name, self.services.verify(model)))

    @on(ModelVerified)
    def _verified(self, event: ModelVerified) -> None:
        self._fill()
        if event.problems:
            self.notify("; ".join(event.problems), title=f"{event.name}: checksum FAILED",
                        severity="error", timeout=10, markup=False)
        else:
            self.notify(f"{event.name}: every file matches its manifest")

    def action_close(self) -> None:
        self.dismiss(None)

    def action_reload(self) -> None:
        self.services.refresh()
        self._fill()


def server_note(listing: ServerListing) -> str:
    """Which assistants the server cannot answer: the model each is asked for is not
    among its models (`[server_models]` in config.toml names another)."""
    if not listing.missing:
        return f"{len(listing.models)} models; every assistant's model is there."
    missing = ", ".join(f"{name} (asks for {model})" for name, model in
                        listing.missing.items())
    return (f"Not on the server: {missing}. Name the server's model for an assistant in "
            "config.toml's [server_models].")


def quality_text(model: InstalledModel) -> str:
    """The highlighted model's importance matrix and quality report (wrapped to the
    screen's width: it must fit under the table on an 80x24 terminal)."""
    rows = report_rows(model.manifest)
    if not rows:
        return f"{model.name}: no quality report (converted without one, or imported)"
    return f"{model.name} · " + " · ".join(f"{label}: {value}" for label, value in rows)


def backend_line(services: Services) -> str:
    """Where inference runs now, or would run: the loaded model's backend, else what
    this llama.cpp build supports."""
    loaded = services.loaded
    if loaded is not None:
        return f"In use: {loaded.name} on {loaded.engine.backend_info().describe()}"
    try:
        from app.engine.backend import gpu_offload_supported

        where = "GPU offload available" if gpu_offload_supported() else "CPU only (this " \
                "llama.cpp build has no GPU offload)"
    except Exception as exc:  # llama.cpp missing or broken: say so, do not crash
        where = f"llama.cpp unavailable ({type(exc).__name__}: {exc})"
    return f"No model loaded yet (models load when first used) · backend: {where}"
