"""The config file's settings the commands share with the terminal app.

There is one config file (app.ui.config reads and validates it); `ask`, `audit` and
`classify` honour the entries that concern them, flags first: the server settings
(app.commands.servers), each assistant's context size (`[num_ctx]`) and the disk budget of
saved reading states (`kv_cache_mb`).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from converters.errors import InputError

if TYPE_CHECKING:
    from app.ui.config import UIConfig


def command_config(args: argparse.Namespace) -> UIConfig:
    """The config file (`--config` where a command has it, else the default one)."""
    from app.ui.config import load_config  # the one config file, also the app's

    config_file = getattr(args, "config", None)
    return load_config(Path(config_file) if config_file else None)


def context_size(args: argparse.Namespace, assistant: str, *, endpoint: str | None,
                 config: UIConfig) -> int | None:
    """The num_ctx to load `assistant` at: `--num-ctx`, else the config's `[num_ctx]`
    entry, else None (the Modelfile's). A server reads with the context it was started
    with, which no request can change: `--num-ctx` with `--endpoint` is refused, and the
    config's table, written for the embedded engine, does not apply there."""
    wanted = getattr(args, "num_ctx", None)
    if wanted is not None and wanted < 1:
        raise InputError(f"--num-ctx must be a positive number of tokens, not {wanted}")
    if endpoint:
        if wanted is not None:
            raise InputError("--num-ctx sizes the embedded engine's context; a server "
                             "(--endpoint) reads with the context it was started with")
        return None
    return wanted if wanted is not None else config.num_ctx.get(assistant)


def kv_budget_bytes(config: UIConfig) -> int:
    """The disk budget of saved reading states (`kv_cache_mb`; 0: never save one)."""
    return config.kv_cache_mb * 1024 * 1024
