"""Resumable JSONL batches (`amicus audit`, `amicus classify`).

Each input line is a JSON record; each result is one JSON line in the output, tagged with
the input line number. A result is flushed and fsync'ed as soon as it exists, so an
interrupted run loses at most the record in progress; a rerun skips every line already in
the output. Records that cannot be processed are reported on stderr and written, with the
original text and the reason, to `<output>.rejected.jsonl`: skipped, never lost.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from app.engine.errors import ContextOverflowError
from converters.errors import InputError

# Errors that concern one record, not the run: that record is rejected, the batch goes on.
RECORD_ERRORS: tuple[type[Exception], ...] = (ContextOverflowError,)


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line number in the input
    data: dict[str, Any]


@dataclass(frozen=True)
class Rejected:
    line: int
    reason: str
    raw: str


# Characters str.splitlines() (and many JSONL readers) take for line ends, which
# json.dumps(ensure_ascii=False) leaves raw: escaped, so one result is one line everywhere.
_LINE_BREAKS = {"\u0085": "\\u0085", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def json_line(value: Any) -> str:
    """One JSON value as a single line (CJK kept readable, every line break escaped)."""
    text = json.dumps(value, ensure_ascii=False)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    return text + "\n"


_SNIFF_BYTES = 4096  # a NUL byte this early means a binary file, not JSONL
# A blank line holds JSON's whitespace only (str.strip() would also take control characters
# such as \x1c for blanks, and silently skip a line that is neither a result nor rejected).
_BLANK = " \t\r\n"


def check_batch_file(path: Path) -> None:
    """Refuse, before any output is created, a batch file that is missing, unreadable or
    not text at all (a PDF or a model given by mistake)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        with open(path, "rb") as handle:
            head = handle.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    if b"\x00" in head:
        raise InputError(f"{path}: not a JSONL text file (binary data)")


def read_records(path: Path) -> Iterator[Record | Rejected]:
    """Every non-empty line of a JSONL file (checked by check_batch_file), parsed, or
    rejected with the reason."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror})") from exc
    with handle:
        for number, raw_bytes in enumerate(handle, start=1):
            try:
                text = raw_bytes.decode("utf-8").rstrip("\r\n").removeprefix("\ufeff")
            except UnicodeDecodeError as exc:
                yield Rejected(number, f"not UTF-8 text ({exc.reason} at byte {exc.start})",
                               raw_bytes.decode("utf-8", "replace").rstrip("\r\n"))
                continue
            if not text.strip(_BLANK):
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                yield Rejected(number, f"not valid JSON ({exc.msg})", text)
                continue
            if not isinstance(data, dict):
                yield Rejected(number, "not a JSON object", text)
                continue
            yield Record(number, data)


def finished_lines(output: Path, same_run: Callable[[dict[str, Any]], bool]) -> set[int]:
    """Input lines the output already has results for. A last line cut short by a crash is
    removed, so the file stays valid JSONL."""
    if not output.exists():
        return set()
    done: set[int] = set()
    keep = 0
    with open(output, "rb") as handle:
        for raw in handle:
            try:
                result = json.loads(raw)
            except ValueError:
                break  # a partial line from an interrupted write: drop it and what follows
            keep += len(raw)
            if isinstance(result, dict) and isinstance(result.get("line"), int) and same_run(
                    result):
                done.add(result["line"])
    if keep != output.stat().st_size:
        os.truncate(output, keep)
    return done


class ResultWriter:
    """Appends results durably; collects rejected records for the side file.

    Create it before reading what the output already holds (finished_lines): it locks the
    output, so a second run on the same file is refused instead of interleaving with this
    one (the lock goes with the process, however it ends)."""

    def __init__(self, output: Path | None) -> None:
        self.output = output
        self._created = output is not None and not output.exists()
        self._handle: IO[str] = (open(output, "a", encoding="utf-8")  # noqa: SIM115
                                 if output else sys.stdout)
        if output is not None:
            try:
                lock_exclusively(self._handle, output)
            except BaseException:
                self._handle.close()
                raise
        self.rejected: list[Rejected] = []

    def write(self, result: dict[str, Any]) -> None:
        self._handle.write(json_line(result))
        self._handle.flush()
        if self.output:
            os.fsync(self._handle.fileno())

    def reject(self, rejected: Rejected) -> None:
        print(f"amicus: line {rejected.line}: skipped: {rejected.reason}", file=sys.stderr)
        self.rejected.append(rejected)

    def close(self) -> Path | None:
        """Close the output; write the rejected records beside it (when results go to a
        file; on stdout the stderr report and the input itself keep them). Returns that
        file."""
        if not self.output:
            return None
        self._handle.close()
        if self._created and self.output.stat().st_size == 0:
            self.output.unlink()  # nothing was written: leave no empty file behind
        if not self.rejected:
            return None
        side = self.output.with_name(self.output.name + ".rejected.jsonl")
        with open(side, "w", encoding="utf-8") as handle:
            for item in self.rejected:
                handle.write(json_line({"line": item.line, "reason": item.reason,
                                        "raw": item.raw}))
        return side


def lock_exclusively(handle: IO[str], path: Path) -> None:
    """Hold an exclusive lock on an open file, or refuse: another run is writing it."""
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        raise InputError(f"{path}: another amicus run is writing to it; let it finish (or "
                         "stop it), then run again to resume") from exc


def run_batch(path: Path, writer: ResultWriter, done: set[int], description: str,
              process: Callable[[Record], None]) -> None:
    """Feed every record not yet done to `process`, rejected ones to the writer, with a
    progress bar counting all of them. A record `process` fails on with one of
    RECORD_ERRORS (too long for the context) is rejected like any other bad record."""
    with progress_bar(count_lines(path), description) as bar:
        for item in read_records(path):
            bar.update(1)
            if isinstance(item, Rejected):
                writer.reject(item)
            elif item.line not in done:
                try:
                    process(item)
                except RECORD_ERRORS as exc:
                    writer.reject(Rejected(item.line, str(exc),
                                           json.dumps(item.data, ensure_ascii=False)))


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for raw in handle if raw.strip(_BLANK.encode()))


def progress_bar(total: int, description: str):
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="rec", file=sys.stderr,
                dynamic_ncols=True)
