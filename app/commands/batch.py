"""Resumable JSONL batches (`amicus audit`, `amicus classify`), one record at a time or
many in flight on a server.

Each input line is a JSON record; each result is one JSON line in the output, tagged with
the input line number. A result is flushed and fsync'ed as soon as it exists, in whatever
order results complete, so an interrupted run loses only the records in flight; a rerun
skips every line already in the output. Records that cannot be processed (bad input, or a
server that failed on them after its retries) are reported on stderr and written, with the
original text and the reason, to `<output>.rejected.jsonl`, and done again by a rerun. A
failure that every other record would meet too (the server unreachable, its certificate
untrusted, the key refused) stops the batch instead, keeping what is done.

With `concurrency` N > 1, N worker threads each process one record at a time (a server
batches the requests in flight); Ctrl-C stops at once: requests in flight are cancelled and
every finished result is already on disk.
"""

from __future__ import annotations

import json
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from app.engine.server_client import RequestCancelled
from converters.errors import AmicusError, InputError

_POLL_S = 0.1  # how often a waiting main thread looks up (Ctrl-C, a fatal error)


@dataclass(frozen=True)
class Record:
    line: int  # 1-based line number in the input
    data: dict[str, Any]

    @property
    def raw(self) -> str:
        return json.dumps(self.data, ensure_ascii=False)


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
            if not text.strip():
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
    """Appends results durably, from any thread; collects rejected records for the side
    file. After close() (Ctrl-C, a fatal error), late results are dropped, never half
    written."""

    def __init__(self, output: Path | None) -> None:
        self.output = output
        self._handle: IO[str] = (open(output, "a", encoding="utf-8")  # noqa: SIM115
                                 if output else sys.stdout)
        self.rejected: list[Rejected] = []
        self.written = 0
        self.failed = 0  # rejected because processing failed (not because of the input)
        self._lock = threading.Lock()
        self._closed = False

    def write(self, result: dict[str, Any]) -> None:
        with self._lock:
            if self._closed:
                return
            self._handle.write(json_line(result))
            self._handle.flush()
            if self.output:
                os.fsync(self._handle.fileno())
            self.written += 1

    def reject(self, rejected: Rejected) -> None:
        """A record the input got wrong."""
        self._keep(rejected, "skipped")

    def fail(self, record: Record, reason: str) -> None:
        """A record whose processing failed (a server error after retries, a timeout)."""
        self._keep(Rejected(record.line, reason, record.raw), "failed")

    def _keep(self, rejected: Rejected, verb: str) -> None:
        with self._lock:
            if self._closed:
                return
            print(f"amicus: line {rejected.line}: {verb}: {rejected.reason}", file=sys.stderr)
            self.rejected.append(rejected)
            self.failed += verb == "failed"

    def close(self) -> Path | None:
        """Close the output; write the rejected records beside it (when results go to a
        file; on stdout the stderr report and the input itself keep them). Returns that
        file."""
        with self._lock:
            self._closed = True
            if not self.output:
                return None
            self._handle.close()
            if not self.rejected:
                return None
            side = self.output.with_name(self.output.name + ".rejected.jsonl")
            with open(side, "w", encoding="utf-8") as handle:
                for item in sorted(self.rejected, key=lambda r: r.line):
                    handle.write(json_line({"line": item.line, "reason": item.reason,
                                            "raw": item.raw}))
            return side

    def report(self, side_file: Path | None) -> None:
        """The final count on stderr: results written, records failed and skipped."""
        if not self.rejected:
            return
        skipped = len(self.rejected) - self.failed
        parts = [f"{self.written} done"]
        if self.failed:
            parts.append(f"{self.failed} failed (rerun to try them again)")
        if skipped:
            parts.append(f"{skipped} skipped")
        where = f": see {side_file}" if side_file else " (listed above)"
        print(f"amicus: {', '.join(parts)}{where}", file=sys.stderr)


@dataclass
class Batch:
    """One run over a file: which records, how many at once, and the cancel signal that
    reaches every request in flight."""

    path: Path
    writer: ResultWriter
    done: set[int]
    description: str
    concurrency: int = 1
    cancel: threading.Event = field(default_factory=threading.Event)


def run_batch(batch: Batch, process: Callable[[Record], None]) -> None:
    """Feed every record not yet done to `process` (which writes its result), rejected
    lines to the writer, with a progress bar in records/s. A record whose processing
    raises an AmicusError is failed and kept aside, unless the error stops the batch."""
    total = count_lines(batch.path)
    already = len(batch.done)
    with progress_bar(total, batch.description, initial=already) as bar:
        runner = _Runner(batch, process, bar)
        if batch.concurrency <= 1:
            runner.sequential()
        else:
            runner.concurrent()


class _Runner:
    def __init__(self, batch: Batch, process: Callable[[Record], None], bar: Any) -> None:
        self.batch = batch
        self.process = process
        self.bar = bar
        self.fatal: BaseException | None = None
        self._lock = threading.Lock()

    def pending(self) -> Iterator[Record]:
        """Records to process; rejected lines go to the writer as they are read."""
        for item in read_records(self.batch.path):
            if isinstance(item, Rejected):
                self.batch.writer.reject(item)
                self._advance()
            elif item.line not in self.batch.done:
                yield item

    def sequential(self) -> None:
        for record in self.pending():
            self.one(record)
            if self.fatal is not None:
                raise self.fatal

    def concurrent(self) -> None:
        work: queue.Queue[Record | None] = queue.Queue(maxsize=self.batch.concurrency)
        workers = [threading.Thread(target=self._worker, args=(work,), daemon=True,
                                    name=f"amicus-batch-{i}")
                   for i in range(self.batch.concurrency)]
        for worker in workers:
            worker.start()
        try:
            for record in self.pending():
                if not self._put(work, record):
                    break
            for _ in workers:
                self._put(work, None)
            for worker in workers:
                # Joined in slices, so that Ctrl-C lands at once; a fatal error stops the
                # waiting (the workers' requests are being cancelled, their results dropped).
                while worker.is_alive() and not self.batch.cancel.is_set():
                    worker.join(_POLL_S)
        except BaseException:
            self.batch.cancel.set()  # requests in flight are cut; finished ones are on disk
            raise
        if self.fatal is not None:
            raise self.fatal

    def one(self, record: Record) -> None:
        try:
            self.process(record)
        except RequestCancelled:
            return  # stopping: the record is neither done nor failed
        except AmicusError as exc:  # this record's failure, unless every record would fail
            if getattr(exc, "stops_batch", False):
                self._stop(exc)
                return
            self.batch.writer.fail(record, str(exc))
        except BaseException as exc:  # a bug in a worker: stop and report it
            self._stop(exc)
            return
        self._advance()

    def _worker(self, work: queue.Queue[Record | None]) -> None:
        while not self.batch.cancel.is_set():
            try:
                record = work.get(timeout=_POLL_S)
            except queue.Empty:
                continue
            if record is None:
                return
            self.one(record)

    def _put(self, work: queue.Queue[Record | None], item: Record | None) -> bool:
        while not self.batch.cancel.is_set():
            try:
                work.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def _stop(self, exc: BaseException) -> None:
        with self._lock:
            if self.fatal is None:
                self.fatal = exc
        self.batch.cancel.set()

    def _advance(self) -> None:
        with self._lock:
            self.bar.update(1)
            if self.batch.writer.rejected:
                self.bar.set_postfix(failed=self.batch.writer.failed,
                                     skipped=len(self.batch.writer.rejected)
                                     - self.batch.writer.failed, refresh=False)


def count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for raw in handle if raw.strip())


def progress_bar(total: int, description: str, initial: int = 0) -> Any:
    """tqdm on stderr; its rate counts only this run's records (`initial` were done)."""
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=description, unit="rec", file=sys.stderr,
                dynamic_ncols=True, smoothing=0.1)
