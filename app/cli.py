"""`amicus` and its subcommands.

Exit codes: 0 success, 2 bad input (one line on stderr naming the problem), 1 internal
failure, 130 interrupted. Subcommands import their heavy modules lazily so `--help` is fast.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from app import __version__

EXIT_OK, EXIT_FAILURE, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amicus",
        description=(
            "Fine-tuned models as offline domain assistants: convert checkpoints to Q4_K_M "
            "GGUF with Ollama Modelfiles, and run them in a terminal app. No network at run "
            "time."
        ),
    )
    parser.add_argument("--version", action="version", version=f"amicus {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="build tiny random-weight stand-ins for the five assistants (offline, minutes)",
        description=(
            "Build deterministic tiny random-weight checkpoints shaped like the five seed "
            "systems. Demo weights produce meaningless text: they exist to exercise the "
            "whole pipeline and app on a machine without the real models."
        ),
    )
    demo.add_argument("--out", help="where to write the sources (default: the data directory)")
    demo.set_defaults(handler=_run_demo)
    return parser


def _run_demo(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.paths import demo_sources_dir
    from converters.demo import build_demo_sources

    root = Path(args.out) if args.out else demo_sources_dir()
    for system in build_demo_sources(root, progress=lambda line: print(line, flush=True)):
        print(f"  {system.name:<14} {system.summary}")
    print(f"Demo sources in {root} (random weights: their text is meaningless).")
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return EXIT_OK
    return _dispatch(handler, args)


def _dispatch(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    from converters.errors import InputError

    try:
        return handler(args)
    except InputError as exc:
        print(f"amicus: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("amicus: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
