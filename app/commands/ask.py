"""`amicus ask ASSISTANT "text"`: one question, the answer streamed to stdout.

Documents come in with `--file` (repeatable): each becomes a delimited block of the message,
before the question (app.documents). A long prompt is announced on stderr with its tokens
against num_ctx and the reading time, then read with a progress bar; Ctrl-C stops reading
between chunks, and what was read is saved, so running the same command again continues
from there (unless --incognito).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
from typing import TYPE_CHECKING, Any

from app.assistants.runtime import DEMO_NOTICE, Assistant, open_assistant
from app.commands.progress import ReadingBar, announce, cancel_on_interrupt
from app.commands.servers import add_api_argument, add_server_arguments, server_target
from app.commands.settings import command_config, context_size, kv_budget_bytes
from app.documents import Document, compose_message, read_documents
from app.engine.errors import EngineError
from app.engine.events import AnswerDelta, Finished, ThinkingDelta
from converters.errors import EXIT_BLOCKED, EXIT_INTERRUPTED, InputError

if TYPE_CHECKING:
    from app.ui.config import UIConfig


def add_ask_parser(commands: argparse._SubParsersAction) -> None:
    ask = commands.add_parser(
        "ask", help="ask an installed assistant one question (answer streamed to stdout)",
        description="Ask an installed assistant one question, about documents given with "
                    "--file if you like. The answer streams to stdout, its thinking (Qwen3 "
                    "models) and the reading progress of long prompts to stderr.",
        epilog="exit status: 0 answered, 2 bad input (a file that cannot be read, a "
               "num_ctx that does not fit), 3 blocked by the intent-safety gate, "
               "130 interrupted")
    ask.add_argument("assistant", metavar="ASSISTANT", help="an installed model's name")
    ask.add_argument("text", nargs="?", default="",
                     help="the question (- reads it from stdin; optional with --file)")
    ask.add_argument("--file", action="append", default=[], metavar="PATH",
                     help="a document to send with the question: .txt/.md (UTF-8, UTF-16, "
                          "GB18030/GBK, Big5), .docx or .pdf with a text layer (repeatable)")
    ask.add_argument("--system", help="system prompt instead of the Modelfile's")
    ask.add_argument("--no-think", action="store_true", help="thinking off (Qwen3 models)")
    ask.add_argument("--hide-thinking", action="store_true", help="do not print thinking")
    ask.add_argument("--gate", action="store_true",
                     help="classify the question with intent-safety first; block if unsafe")
    ask.add_argument("--max-tokens", type=int, help="limit the answer (num_predict)")
    ask.add_argument("--num-ctx", type=int, metavar="N",
                     help="context size in tokens (default: the config's [num_ctx] entry "
                          "for the assistant, else the Modelfile's num_ctx; at most the "
                          "model's trained context, and what memory allows; not with "
                          "--endpoint)")
    ask.add_argument("--incognito", action="store_true",
                     help="write nothing to disk: no saved reading state, no reading rate")
    ask.add_argument("--endpoint", metavar="URL",
                     help="an OpenAI-compatible server (Ollama, llama.cpp server, vLLM) "
                          "instead of the embedded engine")
    ask.add_argument("--model", help="the server's model name (with --endpoint; default: "
                                     "the assistant's name)")
    ask.add_argument("--gate-endpoint", metavar="URL",
                     help="run the --gate classifier on this server (vLLM's /classify or "
                          "llama.cpp's server's /rerank) instead of the embedded engine")
    add_api_argument(ask, "--gate-api")
    add_server_arguments(ask)
    ask.add_argument("--threads", type=int, help="CPU threads (default: adapts to load)")
    ask.add_argument("--gpu-layers", type=int, metavar="N",
                     help="layers to offload (default: all when the build has a GPU "
                          "backend; 0 forces the CPU)")
    ask.add_argument("--allow-unverified", action="store_true",
                     help="use a model whose verification FAILED (recorded in the result)")
    ask.add_argument("--json", action="store_true",
                     help="print one JSON result instead (with the answer's provenance)")
    ask.set_defaults(handler=run_ask)


def run_ask(args: argparse.Namespace) -> int:
    config = command_config(args)
    num_ctx = context_size(args, args.assistant, endpoint=args.endpoint, config=config)
    if args.gate_endpoint and not args.gate:
        raise InputError("--gate-endpoint needs --gate")
    documents = read_documents(args.file)  # a bad file stops here, before any model loads
    question = sys.stdin.read() if args.text == "-" else args.text
    text = compose_message(question, documents)
    if not text.strip():
        raise InputError("the question is empty (give a question, --file, or both)")
    gate_verdict, gate_record = _gate(args, text, config) if args.gate else (None, None)
    if gate_verdict is not None and gate_verdict.unsafe:
        return _blocked(args, gate_verdict, gate_record)
    assistant = open_assistant(args.assistant,
                               server=server_target(args, args.endpoint, model=args.model,
                                                    config=config),
                               n_threads=args.threads, n_gpu_layers=args.gpu_layers,
                               allow_unverified=args.allow_unverified, num_ctx=num_ctx,
                               persist=not args.incognito,
                               kv_budget_bytes=kv_budget_bytes(config))
    try:
        if assistant.model.demo and not args.json:
            print(f"({DEMO_NOTICE})", file=sys.stderr)
        if assistant.used_anyway and not args.json:
            print(f"(warning: {assistant.name} failed verification; used anyway)",
                  file=sys.stderr)
        finished = _stream(assistant, args, text)
        backend = assistant.engine.backend_info().describe()
        provenance = assistant.provenance(system=args.system, params=_overrides(args),
                                          think=_think(args), threads=finished.stats.threads)
    finally:
        assistant.close()  # saves what was read (unless --incognito)
    answer = assistant.finish_answer(finished.answer)
    if args.json:
        result = _result(assistant, answer, finished, gate_record, documents)
        result["backend"] = backend  # e.g. "CPU · 2 threads" or "GPU 36/36 layers · ..."
        result["provenance"] = provenance.as_dict()
        print(json.dumps(result, ensure_ascii=False, indent=2))
    elif not finished.cancelled:
        extra = answer[len(finished.answer):]  # the notice an assistant appends
        sys.stdout.write(extra + "\n")
    _report_stop(finished, args)
    return EXIT_INTERRUPTED if finished.cancelled else 0


def _gate(args: argparse.Namespace, text: str,
          config: UIConfig) -> tuple[Any, dict[str, Any]]:
    """The gate's verdict, and its record for --json (with the classifier's provenance).
    The embedded classifier shows its reading on stderr; Ctrl-C stops it (exit 130)."""
    from app.assistants.gate import IntentGate

    gate = IntentGate.open(server=server_target(args, args.gate_endpoint, api=args.gate_api,
                                                config=config),
                           allow_unverified=args.allow_unverified)
    bar = ReadingBar("intent-safety check")
    try:
        with cancel_on_interrupt() as cancel:
            verdict = gate.check([], text, cancel=cancel, progress=bar.feed)
        provenance = gate.provenance()
    finally:
        bar.close()
        gate.close()
    record = {**verdict.as_dict(),
              "provenance": provenance.as_dict() if provenance is not None else None}
    return verdict, record


def _blocked(args: argparse.Namespace, verdict: Any, record: dict[str, Any] | None) -> int:
    if args.json:
        print(json.dumps({"assistant": args.assistant, "blocked": True, "gate": record},
                         ensure_ascii=False, indent=2))
    print(f"amicus: blocked by the intent-safety gate (p_unsafe={verdict.prob_unsafe:.3f} >= "
          f"{verdict.threshold})", file=sys.stderr)
    return EXIT_BLOCKED


def _overrides(args: argparse.Namespace) -> dict[str, Any] | None:
    return {"num_predict": args.max_tokens} if args.max_tokens else None


def _think(args: argparse.Namespace) -> bool | None:
    return False if args.no_think else None


def _stream(assistant: Assistant, args: argparse.Namespace, text: str) -> Finished:
    messages = [{"role": "user", "content": text}]
    announce(assistant.estimate(messages, system=args.system, params=_overrides(args),
                                think=_think(args)))
    with cancel_on_interrupt() as cancel:
        return _print_events(assistant, args, messages, cancel)


def _print_events(assistant: Assistant, args: argparse.Namespace,
                  messages: list[dict[str, Any]], cancel: threading.Event) -> Finished:
    events = assistant.stream(messages, system=args.system, params=_overrides(args),
                              think=_think(args), cancel=cancel)
    bar = ReadingBar()
    thinking_open = False
    try:
        for event in events:
            bar.feed(event)
            if isinstance(event, ThinkingDelta) and not (args.json or args.hide_thinking):
                sys.stderr.write(event.text)
                sys.stderr.flush()
                thinking_open = True
            elif isinstance(event, AnswerDelta) and not args.json:
                if thinking_open:
                    sys.stderr.write("\n")
                    thinking_open = False
                sys.stdout.write(event.text)
                sys.stdout.flush()
            elif isinstance(event, Finished):
                return event
    finally:
        bar.close()
    raise EngineError("the engine ended without a final event")


def _report_stop(finished: Finished, args: argparse.Namespace) -> None:
    """Nothing silent: a cut-off answer and a stopped reading are said."""
    stats = finished.stats
    if finished.cancelled and stats.prompt_read >= 0:
        again = "" if args.incognito else "; run the same command again to continue from there"
        print(f"\namicus: stopped while reading the prompt: {stats.prompt_read:,} of "
              f"{stats.prompt_evaluated:,} tokens read{again}", file=sys.stderr)
    elif finished.cancelled:
        print("\namicus: stopped; the answer above is incomplete", file=sys.stderr)
    elif finished.cut_off:
        print(f"amicus: {finished.cut_off}", file=sys.stderr)


def _result(assistant: Assistant, answer: str, finished: Finished,
            gate: dict[str, Any] | None, documents: list[Document]) -> dict[str, Any]:
    return {"assistant": assistant.name, "model": assistant.model.gguf.name,
            "demo": assistant.model.demo, "answer": answer, "thinking": finished.thinking,
            "stop_reason": finished.stats.stop_reason, "cut_off": finished.cut_off,
            "dropped_turns": finished.stats.dropped_turns,
            "files": [{"name": d.name, "path": str(d.path), "kind": d.kind,
                       "read_as": d.detail, "chars": d.chars} for d in documents],
            "stats": finished.stats.as_dict(),
            "gate": gate}
