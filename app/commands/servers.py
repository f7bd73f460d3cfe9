"""What every command that talks to a server shares: its flags, the config file's server
settings (api_key_file, ca_file) and the API key, so `ask`, `audit` and `classify` reach a
server exactly as the terminal app does.

The key is never a flag (other users see every process's arguments): AMICUS_API_KEY,
OPENAI_API_KEY, or `api_key_file` in the config (see app.engine.credentials).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from app.engine.credentials import load_api_key
from app.engine.server_client import (
    DEFAULT_TIMEOUT_S,
    SERVER_APIS,
    ServerOptions,
    ServerTarget,
)
from converters.errors import InputError

if TYPE_CHECKING:
    from app.ui.config import UIConfig

DEFAULT_CONCURRENCY = 8  # requests in flight: enough to fill a GPU server's batch


def add_server_arguments(parser: argparse.ArgumentParser, *, batch: bool = False) -> None:
    parser.add_argument("--ca-file", type=Path, metavar="PEM",
                        help="verify https servers against this certificate authority only "
                             "(default: the system's store; also ca_file in the config)")
    parser.add_argument("--timeout", type=float, metavar="S",
                        help="seconds to wait for the server, to connect and for each part "
                             f"of an answer (default {DEFAULT_TIMEOUT_S:g})")
    if batch:
        parser.add_argument("--concurrency", type=int, metavar="N",
                            help=f"requests in flight on the server (with --endpoint; "
                                 f"default {DEFAULT_CONCURRENCY})")


def add_api_argument(parser: argparse.ArgumentParser, flag: str = "--api") -> None:
    parser.add_argument(flag, choices=SERVER_APIS,
                        help="the classifier server's API (default: asked of the server)")


def server_target(args: argparse.Namespace, url: str | None, *, model: str | None = None,
                  api: str | None = None, config: UIConfig | None = None
                  ) -> ServerTarget | None:
    """The server a command was pointed at (None: the embedded engine). `config`: the
    config file when the command has already read it."""
    if not url:
        return None
    return ServerTarget(url, model=model, api=api, options=server_options(args, config))


def server_options(args: argparse.Namespace, config: UIConfig | None = None) -> ServerOptions:
    """Flags first, then the config file; the key from the environment or the key file."""
    from app.commands.settings import command_config

    config = config or command_config(args)
    timeout = getattr(args, "timeout", None)
    if timeout is not None and timeout <= 0:
        raise InputError("--timeout must be a positive number of seconds")
    return ServerOptions(api_key=load_api_key(config.api_key_file),
                         ca_file=getattr(args, "ca_file", None) or config.ca_file,
                         timeout=timeout or DEFAULT_TIMEOUT_S)


def concurrency(args: argparse.Namespace, on_server: bool) -> int:
    """Records in flight: DEFAULT_CONCURRENCY on a server, one on the embedded engine
    (which runs one sequence at a time)."""
    wanted = args.concurrency
    if wanted is not None and wanted < 1:
        raise InputError("--concurrency must be at least 1")
    if not on_server:
        if wanted not in (None, 1):
            raise InputError("--concurrency needs --endpoint: the embedded engine reads one "
                             "record at a time")
        return 1
    return wanted or DEFAULT_CONCURRENCY
