"""`amicus classify FILE.jsonl`: batch intent-safety verdicts (seed 002).

Each record holds a dialogue under "turns", "messages" or "dialogue": a list of
{"role", "content"}. The classifier judges the user's current intent from the last 8
lines (a trailing assistant turn is dropped), exactly as it was trained: the installed
model on the embedded engine, or with --endpoint the same model on vLLM (/classify) or
llama.cpp's server (/rerank), `--concurrency` dialogues in flight. A record may name a
document, `"file": "request.pdf"` (relative to the JSONL's folder): it is attached to the
last user turn as `amicus ask --file` attaches it (a record with only a file is a single
user turn holding the document).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.commands.batch import (
    Batch,
    Record,
    Rejected,
    ResultWriter,
    check_batch_file,
    finished_lines,
    run_batch,
)
from app.commands.servers import (
    add_api_argument,
    add_server_arguments,
    concurrency,
    server_target,
)
from app.documents import DocumentError, compose_message, record_document
from converters.errors import InputError

_DIALOGUE_KEYS = ("turns", "messages", "dialogue")


def add_classify_parser(commands: argparse._SubParsersAction) -> None:
    classify = commands.add_parser(
        "classify", help="batch intent-safety verdicts for a JSONL file of dialogues",
        description="Classify the user's current intent in each dialogue (records with "
                    "turns/messages/dialogue: [{role, content}, ...]). Results go to stdout, "
                    "or are appended to -o OUT.jsonl (rerun to resume).")
    classify.add_argument("file", metavar="FILE.jsonl", type=Path)
    classify.add_argument("-o", "--output", type=Path, metavar="OUT.jsonl")
    classify.add_argument("--threshold", type=float,
                          help="unsafe when prob_unsafe >= this (default: 0.5, the seed's)")
    classify.add_argument("--threads", type=int, help="CPU threads (default: adapts to load)")
    classify.add_argument("--allow-unverified", action="store_true",
                          help="use a classifier whose verification FAILED (recorded in "
                               "every result)")
    classify.add_argument("--endpoint", metavar="URL",
                          help="classify on a server: vLLM serving the classifier, or "
                               "llama.cpp's server started with --rerank")
    classify.add_argument("--model", help="the server's model name (with --endpoint)")
    add_api_argument(classify)
    add_server_arguments(classify, batch=True)
    classify.set_defaults(handler=run_classify)


def run_classify(args: argparse.Namespace) -> int:
    from app.assistants.gate import IntentGate

    check_batch_file(args.file)
    if args.threshold is not None and not 0.0 <= args.threshold <= 1.0:
        raise InputError("--threshold must be between 0 and 1")
    if args.api and not args.endpoint:
        raise InputError("--api needs --endpoint")
    in_flight = concurrency(args, on_server=bool(args.endpoint))
    server = server_target(args, args.endpoint, model=args.model, api=args.api)
    writer = ResultWriter(args.output)  # locks the output first: one run at a time
    try:
        done = finished_lines(args.output, lambda _r: True) if args.output else set()
        gate = IntentGate.open(n_threads=args.threads, server=server,
                               allow_unverified=args.allow_unverified)
    except BaseException:
        writer.close()
        raise
    batch = Batch(args.file, writer, done, "classify", in_flight)
    side_file = None
    try:
        run_batch(batch, lambda record: _classify_one(gate, args, record, writer))
    finally:
        side_file = writer.close()
        gate.close()  # on a server: cuts the requests still in flight
    writer.report(side_file)
    return 0


def _dialogue(record: Record, base: Path) -> list[dict[str, Any]]:
    document = record_document(record.data, base)
    turns = _turns(record, required=document is None)
    if document is None:
        return turns
    last = max((i for i, t in enumerate(turns) if t.get("role") == "user"), default=None)
    if last is None:
        return [*turns, {"role": "user", "content": compose_message("", [document])}]
    attached = {**turns[last], "content": compose_message(turns[last]["content"], [document])}
    return [*turns[:last], attached, *turns[last + 1:]]


def _turns(record: Record, *, required: bool) -> list[dict[str, Any]]:
    for key in _DIALOGUE_KEYS:
        turns = record.data.get(key)
        if isinstance(turns, list) and turns and all(
                isinstance(t, dict) and isinstance(t.get("content"), str) for t in turns):
            return turns
    if not required and not any(key in record.data for key in _DIALOGUE_KEYS):
        return []
    raise ValueError(f"no dialogue: expected a non-empty list of {{role, content}} under "
                     f"{' / '.join(_DIALOGUE_KEYS)}")


def _classify_one(gate: Any, args: argparse.Namespace, record: Record,
                  writer: ResultWriter) -> None:
    try:
        turns = _dialogue(record, args.file.parent)
    except (ValueError, DocumentError) as exc:
        writer.reject(Rejected(record.line, str(exc), record.raw))
        return
    verdict = gate.classify(turns, threshold=args.threshold)
    provenance = gate.provenance(verdict.threshold)
    named = {"file": record.data["file"]} if "file" in record.data else {}
    writer.write({"line": record.line, "id": record.data.get("id"), **named,
                  **verdict.as_dict(),
                  "provenance": provenance.as_dict() if provenance is not None else None})
