"""`amicus audit FILE.jsonl --frame F -o OUT.jsonl`: batch moral audit (seed 000 frames).

Records have the moral_stories fields (situation, intention, action or moral_action /
immoral_action, norm). A long story may sit in a file instead: `"file": "story.docx"`
(relative to the JSONL's folder; .txt/.md/.docx/.pdf) supplies the situation, so the frame
stays the seed's to the character. Resumable: a rerun skips records the output already has.
With --endpoint, `--concurrency` records are in flight at once (results land in the order
they finish, each tagged with its input line).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import Any

from app.assistants.moral_frames import FRAMES, FrameError, render_frame
from app.assistants.runtime import DEMO_NOTICE, Assistant, open_assistant
from app.commands.batch import (
    Batch,
    Record,
    Rejected,
    ResultWriter,
    check_batch_file,
    finished_lines,
    run_batch,
)
from app.commands.servers import add_server_arguments, concurrency, server_target
from app.commands.settings import command_config, context_size, kv_budget_bytes
from app.documents import DocumentError, record_document
from app.engine.errors import EngineError
from app.engine.events import Finished
from app.engine.server_client import RequestCancelled


def add_audit_parser(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser(
        "audit", help="batch moral audit of a JSONL file (resumable)",
        description="Run every record of FILE through one of seed 000's four prompt frames "
                    "with the moral-audit assistant. Results are appended to OUT as they "
                    "come; rerun the same command to resume. Bad records and records the "
                    "server failed on are reported and kept in OUT.rejected.jsonl.")
    audit.add_argument("file", metavar="FILE.jsonl", type=Path)
    audit.add_argument("--frame", required=True, choices=list(FRAMES),
                       help="direct | action | permissibility | norm")
    audit.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.jsonl")
    audit.add_argument("--assistant", default="moral-audit", help="default: moral-audit")
    audit.add_argument("--no-think", action="store_true", help="thinking off")
    audit.add_argument("--max-tokens", type=int, metavar="N",
                       help="limit each answer (num_predict)")
    audit.add_argument("--endpoint", metavar="URL", help="an OpenAI-compatible server")
    audit.add_argument("--model", help="the server's model name (with --endpoint; default: "
                                       "the assistant's name)")
    audit.add_argument("--threads", type=int, help="CPU threads (default: adapts to load)")
    audit.add_argument("--num-ctx", type=int, metavar="N",
                       help="context size in tokens (default: the config's [num_ctx] entry "
                            "for the assistant, else the Modelfile's num_ctx; not with "
                            "--endpoint)")
    audit.add_argument("--allow-unverified", action="store_true",
                       help="use a model whose verification FAILED (recorded in every result)")
    add_server_arguments(audit, batch=True)
    audit.set_defaults(handler=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    check_batch_file(args.file)
    in_flight = concurrency(args, on_server=bool(args.endpoint))
    writer = ResultWriter(args.output)  # locks the output first: one run at a time
    try:
        done = finished_lines(args.output, lambda r: r.get("frame") == args.frame)
        config = command_config(args)
        assistant = open_assistant(
            args.assistant,
            server=server_target(args, args.endpoint, model=args.model, config=config),
            n_threads=args.threads, allow_unverified=args.allow_unverified,
            num_ctx=context_size(args, args.assistant, endpoint=args.endpoint, config=config),
            kv_budget_bytes=kv_budget_bytes(config))
    except BaseException:
        writer.close()
        raise
    batch = Batch(args.file, writer, done, f"audit ({args.frame})", in_flight)
    side_file = None
    try:
        if assistant.model.demo:
            print(f"({DEMO_NOTICE})", file=sys.stderr)
        run_batch(batch, lambda record: _audit_one(assistant, args, record, batch))
    finally:
        side_file = writer.close()
        assistant.close()
    writer.report(side_file)
    return 0


def _audit_one(assistant: Assistant, args: argparse.Namespace, record: Record,
               batch: Batch) -> None:
    try:
        prompt = render_frame(args.frame, _with_file(record.data, args.file.parent))
    except (FrameError, DocumentError) as exc:
        batch.writer.reject(Rejected(record.line, str(exc), record.raw))
        return
    think = False if args.no_think else None
    finished = _ask(assistant, prompt, think=think, max_tokens=args.max_tokens,
                    cancel=batch.cancel)
    overrides = {"num_predict": args.max_tokens} if args.max_tokens else None
    provenance = assistant.provenance(params=overrides, think=think,
                                      threads=finished.stats.threads)
    result = {"line": record.line, "id": record.data.get("ID", record.data.get("id")),
              "frame": args.frame, "prompt": prompt, "answer": finished.answer,
              "thinking": finished.thinking, "stop_reason": finished.stats.stop_reason,
              "stats": finished.stats.as_dict(), "provenance": provenance.as_dict()}
    if "file" in record.data:
        result["file"] = record.data["file"]
    batch.writer.write(result)


def _with_file(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """The record's fields, the situation read from its file when it names one."""
    document = record_document(data, base)
    if document is None:
        return data
    if str(data.get("situation") or "").strip():
        raise FrameError('the record has both a "situation" and a "file"; give one')
    return {**data, "situation": document.text}


def _ask(assistant: Assistant, prompt: str, *, think: bool | None,
         max_tokens: int | None = None, cancel: threading.Event | None = None) -> Finished:
    overrides = {"num_predict": max_tokens} if max_tokens else None
    events = assistant.stream([{"role": "user", "content": prompt}], think=think,
                              params=overrides, cancel=cancel)
    for event in events:
        if isinstance(event, Finished):
            if event.stats.stop_reason == "cancelled":  # stopping: keep no partial answer
                raise RequestCancelled("cancelled")
            return event
    raise EngineError("the engine ended without a final event")
