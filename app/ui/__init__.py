"""The Textual terminal app: the only package that imports textual.

`amicus` (no subcommand) calls `run`; the app's modules are imported only then, so the other
subcommands and `amicus --help` never pay for Textual.

Its shape: `app` (the App: themes, keymap, command palette) shows `screens/main_screen`,
which lays out `widgets/` (the sidebar; the chat pane, which runs the turns) and answers the
actions of `keymap` (bound through `bindings`); `screens/` also holds the dialogs, forms,
options editor and model manager. The parts talk with the messages of `messages`. Below
the widgets, free of them: `services` (store, installed models, the loaded assistant and
gate), `inference` (the thread worker's body), `job` (a turn in flight), `turns`
(conversation rules), `failures` (error dialogs, store calls), `config`, `exporting`.
"""

from __future__ import annotations

from pathlib import Path


def run(*, config_file: Path | None = None, theme: str | None = None,
        endpoint: str | None = None, incognito: bool = False) -> int:
    """Start the app: settings from the command line, then the config file, then the
    defaults (ConfigError, an InputError, for a bad config file)."""
    from app.ui.config import load_config, with_command_line

    config = with_command_line(load_config(config_file), theme=theme, endpoint=endpoint,
                               incognito=incognito)
    from app.ui.app import build_app

    app = build_app(config)
    try:
        app.run()
    finally:
        if not app.busy:  # never free a model a worker thread may still be using
            app.services.close()
    return app.return_code or 0
