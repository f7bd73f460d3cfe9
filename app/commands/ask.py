"""`amicus ask ASSISTANT "text"`: one question, the answer streamed to stdout."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from app.assistants.runtime import DEMO_NOTICE, Assistant, open_assistant
from app.commands.servers import add_api_argument, add_server_arguments, server_target
from app.engine.errors import EngineError
from app.engine.events import AnswerDelta, Finished, ThinkingDelta
from converters.errors import EXIT_BLOCKED, InputError


def add_ask_parser(commands: argparse._SubParsersAction) -> None:
    ask = commands.add_parser(
        "ask", help="ask an installed assistant one question (answer streamed to stdout)",
        description="Ask an installed assistant one question. The answer streams to stdout, "
                    "its thinking (Qwen3 models) to stderr.",
        epilog="exit status: 0 answered, 2 bad input, 3 blocked by the intent-safety gate, "
               "130 interrupted")
    ask.add_argument("assistant", metavar="ASSISTANT", help="an installed model's name")
    ask.add_argument("text", help="the question (- reads it from stdin)")
    ask.add_argument("--system", help="system prompt instead of the Modelfile's")
    ask.add_argument("--no-think", action="store_true", help="thinking off (Qwen3 models)")
    ask.add_argument("--hide-thinking", action="store_true", help="do not print thinking")
    ask.add_argument("--gate", action="store_true",
                     help="classify the question with intent-safety first; block if unsafe")
    ask.add_argument("--max-tokens", type=int, help="limit the answer (num_predict)")
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
    text = sys.stdin.read() if args.text == "-" else args.text
    if not text.strip():
        raise InputError("the question is empty")
    if args.gate_endpoint and not args.gate:
        raise InputError("--gate-endpoint needs --gate")
    gate_verdict, gate_record = _gate(args, text) if args.gate else (None, None)
    if gate_verdict is not None and gate_verdict.unsafe:
        return _blocked(args, gate_verdict, gate_record)
    assistant = open_assistant(args.assistant,
                               server=server_target(args, args.endpoint, model=args.model),
                               n_threads=args.threads, n_gpu_layers=args.gpu_layers,
                               allow_unverified=args.allow_unverified)
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
        assistant.close()
    answer = assistant.finish_answer(finished.answer)
    if args.json:
        result = _result(assistant, answer, finished, gate_record)
        result["backend"] = backend  # e.g. "CPU · 2 threads" or "GPU 36/36 layers · ..."
        result["provenance"] = provenance.as_dict()
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        extra = answer[len(finished.answer):]  # the notice an assistant appends
        sys.stdout.write(extra + "\n")
    return 0


def _gate(args: argparse.Namespace, text: str) -> tuple[Any, dict[str, Any]]:
    """The gate's verdict, and its record for --json (with the classifier's provenance)."""
    from app.assistants.gate import IntentGate

    gate = IntentGate.open(server=server_target(args, args.gate_endpoint, api=args.gate_api),
                           allow_unverified=args.allow_unverified)
    try:
        verdict = gate.check([], text)
        provenance = gate.provenance()
    finally:
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
    events = assistant.stream([{"role": "user", "content": text}], system=args.system,
                              params=_overrides(args), think=_think(args))
    thinking_open = False
    for event in events:
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
    raise EngineError("the engine ended without a final event")


def _result(assistant: Assistant, answer: str, finished: Finished,
            gate: dict[str, Any] | None) -> dict[str, Any]:
    return {"assistant": assistant.name, "model": assistant.model.gguf.name,
            "demo": assistant.model.demo, "answer": answer, "thinking": finished.thinking,
            "stats": finished.stats.as_dict(),
            "gate": gate}
