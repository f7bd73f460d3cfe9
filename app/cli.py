"""`amicus` and its subcommands.

Exit codes (converters.errors): 0 success, 2 bad input or environment (one line on stderr
naming the problem), 1 internal failure (a bug), 3 blocked by the intent-safety gate,
130 interrupted. Subcommands import their heavy modules lazily so `--help` is fast.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence

from app import __version__


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="amicus",
        description=(
            "Fine-tuned models as offline domain assistants: convert checkpoints to Q4_K_M "
            "GGUF with Ollama Modelfiles, and run them in a terminal app (`amicus` with no "
            "command opens it). No network at run time."
        ),
    )
    parser.add_argument("--version", action="version", version=f"amicus {__version__}")
    _add_app_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser(
        "demo",
        help="build tiny random-weight stand-ins for the five assistants (offline, seconds)",
        description=(
            "Build deterministic tiny random-weight checkpoints shaped like the five seed "
            "systems. Demo weights produce meaningless text: they exist to exercise the "
            "whole pipeline and app on a machine without the real models."
        ),
    )
    demo.add_argument("--out", help="where to install the models (default: the data directory)")
    demo.add_argument("--rebuild", action="store_true",
                      help="build demo models again even when installed (real models are "
                           "never replaced)")
    demo.add_argument("--sources-only", action="store_true",
                      help="only build the synthetic checkpoints, do not convert them")
    demo.set_defaults(handler=_run_demo)
    _add_convert_parser(commands)
    _add_models_parser(commands)
    from app.commands.ask import add_ask_parser
    from app.commands.audit import add_audit_parser
    from app.commands.classify import add_classify_parser

    add_ask_parser(commands)
    add_audit_parser(commands)
    add_classify_parser(commands)
    return parser


def _add_app_options(parser: argparse.ArgumentParser) -> None:
    """Options of the terminal app (`amicus` with no command opens it)."""
    app = parser.add_argument_group("terminal app (amicus with no command)")
    app.add_argument("--incognito", action="store_true",
                     help="keep no conversation on disk this session")
    app.add_argument("--endpoint", metavar="URL",
                     help="chat through an OpenAI-compatible server instead of the embedded "
                          "engine")
    app.add_argument("--theme", help="a Textual theme, e.g. textual-light (over the config)")
    app.add_argument("--config", metavar="PATH",
                     help="config file (default: config.toml in the Amicus config folder)")


def _run_app(args: argparse.Namespace) -> int:
    from pathlib import Path

    from app.ui import run

    return run(config_file=Path(args.config) if args.config else None, theme=args.theme,
               endpoint=args.endpoint, incognito=args.incognito)


def _add_convert_parser(commands: argparse._SubParsersAction) -> None:
    from app.commands.convert import ASSISTANTS, QUANT_CHOICES, run_convert

    convert = commands.add_parser(
        "convert",
        help="checkpoint (+ LoRA adapters) -> Q4_K_M GGUF + Modelfile + manifest",
        description=(
            "Merge LoRA adapters into their base and write a GGUF (Q4_K_M by default), "
            "verified with llama.cpp, with an Ollama Modelfile and a manifest of checksums. "
            "SRC is a local directory or a Hugging Face repo id with an optional @revision. "
            "Either name an assistant (its recipe knows the sources) or give --base."
        ),
        epilog=(
            "examples:\n"
            "  amicus convert moral-audit\n"
            "  amicus convert intent-safety --base ./intent_safety_clf_4b\n"
            "  amicus convert --base Qwen/Qwen3-4B@main --adapter ./my-lora --name mine "
            "--out ./out\n"
            "exit status: 0 success, 2 bad input, 1 internal failure"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    convert.add_argument("assistant", nargs="?", choices=ASSISTANTS, metavar="ASSISTANT",
                         help=f"convert from a recipe: {', '.join(ASSISTANTS)}")
    convert.add_argument("--base", metavar="SRC",
                         help="base checkpoint (with ASSISTANT: a local fine-tune to use)")
    convert.add_argument("--adapter", metavar="SRC", action="append", default=[],
                         help="PEFT LoRA adapter to merge (repeatable, applied in order)")
    convert.add_argument("--name", help="model name (file names: NAME.QUANT.gguf)")
    convert.add_argument("--out", metavar="DIR",
                         help="output directory (with ASSISTANT: the installed models folder)")
    convert.add_argument("--quant", choices=QUANT_CHOICES, default="Q4_K_M",
                         help="output type (default: Q4_K_M)")
    convert.add_argument("--modelfile", metavar="PATH",
                         help="Modelfile to ship next to the GGUF (FROM is rewritten to it)")
    convert.add_argument("--keep-intermediate", action="store_true",
                         help="also keep the unquantized F16 GGUF")
    convert.add_argument("--no-verify", dest="verify", action="store_false",
                         help="skip loading the result and checking tokenizer parity (and "
                              "the quality report)")
    convert.add_argument("--imatrix", metavar="FILE|off",
                         help="importance matrix for quantization: a file from llama-imatrix "
                              "(GGUF or legacy .dat), or off (default for Q4_K_M/Q5_K_M: "
                              "collected from calibration text)")
    convert.add_argument("--imatrix-out", metavar="FILE",
                         help="also write the importance matrix used, in llama.cpp's GGUF "
                              "imatrix format")
    convert.add_argument("--calibration", metavar="FILE",
                         help="plain UTF-8 calibration text instead of the assistant's "
                              "shipped set (read as llama-imatrix reads it: chunks of 512 "
                              "tokens, at least two)")
    convert.add_argument("--no-quality", dest="quality", action="store_false",
                         help="skip the quality report (KL divergence and top-1 agreement "
                              "against the merged F16 on held-out text)")
    convert.add_argument("--threads", type=int,
                         help="threads for quantization and evaluation (default: physical "
                              "cores minus those other programs keep busy)")
    convert.add_argument("--json", action="store_true",
                         help="print a machine-readable summary on stdout")
    convert.set_defaults(handler=run_convert)


def _add_models_parser(commands: argparse._SubParsersAction) -> None:
    from app.commands.models import add_models_parser

    add_models_parser(commands)


def _run_demo(args: argparse.Namespace) -> int:
    from app.commands.demo import run_demo

    return run_demo(args)


def _opens_app(argv: Sequence[str]) -> argparse.Namespace | None:
    """The app's options when `argv` names no command (and asks for no help): then the
    full parser, whose subcommands import the converter, is never built, so the app
    starts sooner."""
    light = argparse.ArgumentParser(prog="amicus", add_help=False)
    _add_app_options(light)
    args, rest = light.parse_known_args(argv)
    return None if rest else args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    app_args = _opens_app(argv)
    if app_args is not None:
        return _dispatch(_run_app, app_args)
    parser = _build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int] | None = getattr(args, "handler", None)
    if handler is None:  # no command (reached with e.g. `amicus -- `): the terminal app
        handler = _run_app
    return _dispatch(handler, args)


def _dispatch(handler: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a command; whatever fails is reported as app.errors describes it: one line on
    stderr and the documented exit code (a bug: "internal error", the traceback on request)."""
    try:
        return handler(args)
    except BaseException as exc:
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        from app.errors import describe

        failure = describe(exc)
        if failure.internal:
            if os.environ.get("AMICUS_DEBUG"):
                raise
            print(f"amicus: internal error: {failure.line} "
                  "(set AMICUS_DEBUG=1 for the traceback)", file=sys.stderr)
        elif isinstance(exc, KeyboardInterrupt):
            print(f"amicus: {failure.line}", file=sys.stderr)
        else:
            print(f"amicus: error: {failure.line}", file=sys.stderr)
        return failure.exit_code


if __name__ == "__main__":
    sys.exit(main())
