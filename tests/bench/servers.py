"""Benchmark: batches on a server, records/s by requests in flight.

1. `amicus audit --endpoint` and `amicus classify --endpoint` against a loopback server
   (its own process, so it does not share the client's interpreter) that answers each
   model request (chat completion, /classify) after a fixed delay and records how many are
   in flight (tokenization answers at once, as it costs a real server next to nothing).
   Each run has `rounds` x c records, so every run keeps the server equally long busy and
   the command's fixed start-up cost weighs the same. Target: at concurrency c, at least
   0.8 x c x the sequential rate while the server keeps up (it always does here: one
   thread per request).
2. The same audit batch against llama-cpp-python's own server on the demo moral-audit GGUF
   (started with --interrupt_requests False; it runs one request at a time, so this shows
   the client's overhead, not a gain).

Everything runs in a temporary AMICUS_HOME with the demo models; commands run in-process
through `amicus`'s own entry point (app.cli.main), timed from call to return.

Run: .venv/bin/python tests/bench/servers.py [--delay S] [--rounds N]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from app.cli import main  # noqa: E402
from tests.loopback import Loopback, Reply, chat_app, llama_cpp_server  # noqa: E402

CONCURRENCY = (1, 4, 8, 16)


def delayed(app, delay_s: float, paths: tuple[str, ...]):
    def answer(request):
        if request.path in paths:
            time.sleep(delay_s)
        return app(request)
    return answer


def classifier_app(request):
    """vLLM's classification API with a fixed verdict (the client's work is the same)."""
    return {"/v1/models": Reply(body={"data": [{"id": "clf", "owned_by": "vllm"}]}),
            "/tokenize": Reply(body={"tokens": list(range(40))}),
            "/detokenize": Reply(body={"prompt": "[user] text"}),
            "/classify": Reply(body={"data": [{"probs": [0.7, 0.3]}]})}[request.path]


def write_inputs(root: Path, count: int) -> tuple[Path, Path]:
    root.mkdir(parents=True, exist_ok=True)
    stories = root / "stories.jsonl"
    stories.write_text("".join(json.dumps({"ID": i, "situation": f"Situation {i}.",
                                           "intention": f"Intention {i}."}) + "\n"
                               for i in range(count)), encoding="utf-8")
    dialogues = root / "dialogues.jsonl"
    dialogues.write_text("".join(json.dumps({"id": i, "turns": [
        {"role": "user", "content": f"turn {i}"}]}) + "\n" for i in range(count)),
        encoding="utf-8")
    return stories, dialogues


def _serve(kind: str, delay_s: float, conn: Connection) -> None:
    """The server process: answers requests until told to stop; reports max in flight."""
    if kind == "chat":
        app = delayed(chat_app(), delay_s, ("/v1/chat/completions",))
    else:
        app = delayed(classifier_app, delay_s, ("/classify",))
    with Loopback(app) as server:
        conn.send(server.url)
        while (message := conn.recv()) != "stop":
            conn.send(server.max_in_flight)
            if message == "reset":
                server.max_in_flight = 0


@contextlib.contextmanager
def server_process(kind: str, delay_s: float) -> Iterator[tuple[str, Connection]]:
    ours, theirs = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(
        target=_serve, args=(kind, delay_s, theirs), daemon=True)
    process.start()
    try:
        yield ours.recv(), ours
    finally:
        ours.send("stop")
        process.join(10)


def timed(argv: list[str]) -> float:
    """Seconds for one command, its progress bar kept off the screen."""
    started = time.perf_counter()
    with contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(argv)
    elapsed = time.perf_counter() - started
    if code != 0:
        raise SystemExit(f"amicus {' '.join(argv)} failed ({code}): {err.getvalue()[-2000:]}")
    return elapsed


def _command(kind: str, stories: Path, dialogues: Path) -> list[str]:
    if kind == "chat":
        return ["audit", str(stories), "--frame", "direct"]
    return ["classify", str(dialogues)]


def sweep(name: str, kind: str, delay_s: float, rounds: int, home: Path) -> None:
    print(f"\n{name}: {rounds} x concurrency records per run")
    print(f"{'concurrency':>11} | {'records':>7} | {'seconds':>7} | {'records/s':>9} | "
          f"{'x sequential':>12} | {'target':>6} | {'max in flight':>13}")
    sequential = None
    with server_process(kind, delay_s) as (url, control):
        # Warm up (imports, first connections), so the sequential run is not the one paying.
        stories, dialogues = write_inputs(home / f"{kind}-warm", 2)
        timed([*_command(kind, stories, dialogues), "--endpoint", url, "-o",
               str(home / f"{kind}-warm.jsonl")])
        for concurrency in CONCURRENCY:
            count = rounds * concurrency
            stories, dialogues = write_inputs(home / f"{kind}-{concurrency}", count)
            out = home / f"{kind}-{concurrency}.jsonl"
            command = _command(kind, stories, dialogues)
            control.send("reset")
            control.recv()
            seconds = timed([*command, "--endpoint", url, "-o", str(out),
                             "--concurrency", str(concurrency)])
            control.send("max")
            in_flight = control.recv()
            done = sum(1 for _ in out.open(encoding="utf-8"))
            assert done == count, f"{done} results for {count} records"
            rate = count / seconds
            sequential = sequential or rate
            print(f"{concurrency:>11} | {count:>7} | {seconds:>7.2f} | {rate:>9.2f} | "
                  f"{rate / sequential:>12.2f} | {0.8 * concurrency:>6.1f} | "
                  f"{in_flight:>13}")


def llama_cpp_python(home: Path, stories: Path, out: Path, count: int, repeats: int) -> None:
    """The same audit batch, alternating concurrency 1 and 4 `repeats` times (this shared
    machine's load comes and goes): every run's records/s, and the best of each."""
    model = home / "models" / "moral-audit" / "moral-audit.Q4_K_M.gguf"
    print(f"\nllama-cpp-python's server (demo moral-audit GGUF, --max-tokens 16, "
          f"{count} records, {repeats} runs each)")
    rates: dict[int, list[float]] = {1: [], 4: []}
    with llama_cpp_server(model, home / "llama-server.log", n_ctx=2048,
                          extra=("--interrupt_requests", "False")) as url:
        command = ["audit", str(stories), "--frame", "direct", "--endpoint", url,
                   "--no-think", "--max-tokens", "16", "-o", str(out)]
        # Warm up: the first request evaluates the whole system prompt, later ones reuse it.
        timed(command)
        for _ in range(repeats):
            for concurrency in rates:
                out.unlink(missing_ok=True)
                seconds = timed([*command, "--concurrency", str(concurrency)])
                done = sum(1 for _ in out.open(encoding="utf-8")) if out.exists() else 0
                assert done == count, f"{done} results for {count} records"
                rates[concurrency].append(count / seconds)
    print(f"{'concurrency':>11} | {'best records/s':>14} | every run")
    for concurrency, measured in rates.items():
        print(f"{concurrency:>11} | {max(measured):>14.2f} | "
              f"{', '.join(f'{r:.2f}' for r in measured)}")


def run(delay_s: float, rounds: int, llama_records: int, repeats: int) -> None:
    with tempfile.TemporaryDirectory(prefix="amicus-bench-servers-") as tmp:
        home = Path(tmp)
        os.environ["AMICUS_HOME"] = str(home)
        subprocess.run([sys.executable, "-m", "app.cli", "demo"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        print(f"loopback server: {delay_s:g} s per chat completion or /classify request")
        sweep("amicus audit --endpoint", "chat", delay_s, rounds, home)
        sweep("amicus classify --endpoint (vLLM API)", "classify", delay_s, rounds, home)
        stories, _ = write_inputs(home / "llama", llama_records)
        llama_cpp_python(home, stories, home / "llama.jsonl", llama_records, repeats)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--delay", type=float, default=0.25, help="seconds per request")
    parser.add_argument("--rounds", type=int, default=16,
                        help="records per run = rounds x concurrency")
    parser.add_argument("--llama-records", type=int, default=8)
    parser.add_argument("--llama-repeats", type=int, default=3)
    options = parser.parse_args()
    run(options.delay, options.rounds, options.llama_records, options.llama_repeats)
