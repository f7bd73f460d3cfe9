"""The Amicus terminal app: themes, keymap, command palette, and the main screen.

Startup opens the conversation store and reads the models folder's manifests; no model is
loaded until the first message is sent (a GGUF takes seconds to map).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import events
from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.screen import Screen

from app.store import Store, StoreError
from app.ui.bindings import bindings
from app.ui.config import DEFAULT_THEME, LIGHT_THEME, UIConfig
from app.ui.keymap import actions, first_key, unbound, with_keys
from app.ui.screens.error_dialog import ErrorDialog
from app.ui.screens.main_screen import MainScreen
from app.ui.services import (
    Services,
    real_assistant_opener,
    real_gate_opener,
    server_targets,
)

STYLES = Path(__file__).parent / "styles"


class AmicusApp(App[None]):
    TITLE = "Amicus"
    CSS_PATH: ClassVar = [STYLES / "amicus.tcss"]
    BINDINGS: ClassVar[list[BindingType]] = bindings("app")

    def __init__(self, config: UIConfig, services: Services, *,
                 startup_problem: tuple[str, str] | None = None) -> None:
        super().__init__()
        self.config = config
        self.services = services
        self.startup_problem = startup_problem
        # The dark theme to come back to from the light one (the config's, if dark).
        self._dark_theme = config.theme if config.theme != LIGHT_THEME else DEFAULT_THEME
        self._main: MainScreen | None = None

    def get_default_screen(self) -> Screen:
        self._main = MainScreen(self.services, self.config)
        return self._main

    def on_mount(self) -> None:
        self.set_keymap(self.config.keymap)
        self.theme = self.config.theme
        given_away = unbound(self.config.keymap)
        if given_away:
            taken = "; ".join(f"{action.title} ({action.keys} went to {taker})"
                              for action, taker in given_away)
            self.notify(f"Without a key now: {taken}. The command palette "
                        f"({first_key(self.config.keymap, 'palette')}) still runs them.",
                        title="Keymap", timeout=10)
        if self.startup_problem is not None:
            self.push_screen(ErrorDialog(*self.startup_problem))

    @property
    def busy(self) -> bool:
        """A reply is being generated (or was, when the app exited mid-reply: its thread
        may still be finishing, so its model must not be freed under it)."""
        return self._main is not None and self._main.pane.busy

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Headless runs (tests, screenshots) need the same pixels every time: no blinking.
        if self.is_headless and hasattr(event.widget, "cursor_blink"):
            event.widget.cursor_blink = False

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        keymap = self.config.keymap
        if isinstance(screen, MainScreen):
            for spec in actions("main"):
                yield SystemCommand(with_keys(spec.title, keymap[spec.id]), spec.help,
                                    partial(screen.run_action, spec.action))
            yield SystemCommand(with_keys("Send", keymap["submit"]),
                                "Send the message box's text",
                                partial(screen.run_action, "send_prompt"))
        yield SystemCommand(with_keys("Light/dark theme", keymap["toggle_dark"]),
                            "Switch between the light and the dark theme",
                            self.action_toggle_dark)

    def action_toggle_dark(self) -> None:
        self.theme = self._dark_theme if self.theme == LIGHT_THEME else LIGHT_THEME

    def action_toggle_help(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    async def action_quit(self) -> None:
        # A running reply would keep its thread (and the process) alive: stop it first.
        job = self._main.pane.job if self._main is not None else None
        if job is not None:
            job.cancel.set()
        self.exit()


def open_store(config: UIConfig) -> tuple[Store, tuple[str, str] | None]:
    """The conversation store; if it cannot be opened, an in-memory one and the reason."""
    if config.incognito:
        return Store.open(incognito=True), None
    try:
        store = Store.open()
    except StoreError as exc:
        problem = ("Conversations unavailable", f"{exc}\n\nThis session keeps nothing on disk "
                   "(incognito) until the problem is fixed.")
        return Store.open(incognito=True), problem
    if store.read_only is not None:  # past conversations are shown; new ones stay in memory
        return store, ("Conversations are read-only", f"{store.read_only}.\n\nPast "
                       "conversations can be read and exported; new ones are kept until "
                       "Amicus closes.")
    return store, None


def build_app(config: UIConfig) -> AmicusApp:
    store, problem = open_store(config)
    chat_server, gate_server = server_targets(config)
    services = Services(store, open_assistant=real_assistant_opener(
        server=chat_server, threads=config.threads, gpu_layers=config.gpu_layers,
        server_models=config.server_models, num_ctx=config.num_ctx,
        persist=not store.incognito,  # incognito writes no KV state, no reading rate
        kv_budget_bytes=config.kv_cache_mb * 1024 * 1024),
        open_gate=real_gate_opener(threads=config.threads, server=gate_server))
    return AmicusApp(config, services, startup_problem=problem)
