"""`amicus audit FILE.jsonl --frame F -o OUT.jsonl`: batch moral audit (seed 000 frames).

Records have the moral_stories fields (situation, intention, action or moral_action /
immoral_action, norm). Resumable: a rerun skips records the output already has.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from app.assistants.moral_frames import FRAMES, FrameError, render_frame
from app.assistants.runtime import DEMO_NOTICE, Assistant, open_assistant
from app.commands.batch import (
    Record,
    Rejected,
    ResultWriter,
    check_batch_file,
    finished_lines,
    run_batch,
)
from app.engine.events import Finished


def add_audit_parser(commands: argparse._SubParsersAction) -> None:
    audit = commands.add_parser(
        "audit", help="batch moral audit of a JSONL file (resumable)",
        description="Run every record of FILE through one of seed 000's four prompt frames "
                    "with the moral-audit assistant. Results are appended to OUT as they "
                    "come; rerun the same command to resume. Bad records are reported and "
                    "kept in OUT.rejected.jsonl.")
    audit.add_argument("file", metavar="FILE.jsonl", type=Path)
    audit.add_argument("--frame", required=True, choices=list(FRAMES),
                       help="direct | action | permissibility | norm")
    audit.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.jsonl")
    audit.add_argument("--assistant", default="moral-audit", help="default: moral-audit")
    audit.add_argument("--no-think", action="store_true", help="thinking off")
    audit.add_argument("--endpoint", metavar="URL", help="an OpenAI-compatible server")
    audit.add_argument("--model", help="the server's model name (with --endpoint)")
    audit.add_argument("--threads", type=int, help="CPU threads (default: adapts to load)")
    audit.set_defaults(handler=run_audit)


def run_audit(args: argparse.Namespace) -> int:
    check_batch_file(args.file)
    writer = ResultWriter(args.output)  # locks the output first: one run at a time
    try:
        done = finished_lines(args.output, lambda r: r.get("frame") == args.frame)
        assistant = open_assistant(args.assistant, endpoint=args.endpoint,
                                   remote_model=args.model, n_threads=args.threads)
    except BaseException:
        writer.close()
        raise
    try:
        if assistant.model.demo:
            print(f"({DEMO_NOTICE})", file=sys.stderr)
        run_batch(args.file, writer, done, f"audit ({args.frame})",
                  lambda record: _audit_one(assistant, args, record, writer))
    finally:
        rejected = writer.close()
        assistant.close()
    if rejected:
        print(f"amicus: {len(writer.rejected)} record(s) skipped: see {rejected}",
              file=sys.stderr)
    return 0


def _audit_one(assistant: Assistant, args: argparse.Namespace, record: Record,
               writer: ResultWriter) -> None:
    try:
        prompt = render_frame(args.frame, record.data)
    except FrameError as exc:
        writer.reject(Rejected(record.line, str(exc), _raw(record)))
        return
    finished = _ask(assistant, prompt, think=False if args.no_think else None)
    writer.write({"line": record.line, "id": record.data.get("ID", record.data.get("id")),
                  "frame": args.frame, "prompt": prompt, "answer": finished.answer,
                  "thinking": finished.thinking, "stats": finished.stats.as_dict()})


def _ask(assistant: Assistant, prompt: str, *, think: bool | None) -> Finished:
    events = assistant.stream([{"role": "user", "content": prompt}], think=think)
    for event in events:
        if isinstance(event, Finished):
            return event
    raise RuntimeError("the engine ended without a final event")


def _raw(record: Record) -> str:
    import json

    return json.dumps(record.data, ensure_ascii=False)
