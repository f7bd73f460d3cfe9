"""`amicus audit` and `amicus classify` killed with SIGKILL after a result was written, in
the middle of writing one, with several requests in flight, and at random moments, then
rerun: every input line ends up exactly once, as a result or as a rejected record; none
lost, none twice, none given another record's answer.

The audit runs on the embedded engine (one record at a time), on llama-cpp-python's server
(`--endpoint`, the default concurrency) and on a loopback server in this process that
answers slowly, so that `--concurrency` requests are in flight when the kill lands; the
classification embedded and on a slow loopback classifier server the same way.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from tests.faults.killing import amicus_env, kill_after, kill_at, run, start
from tests.loopback import ClassifierApp, Loopback, answer_for, chat_app, llama_cpp_server
from tests.tools.fuzzing import FUZZ_LONG_FACTOR, LONG

RANDOM_KILLS = FUZZ_LONG_FACTOR if LONG else 1
GOOD = 8
IN_FLIGHT = 4  # --concurrency of the loopback run, and the requests in flight at its kills
REPLY_S = 0.3  # how long the loopback server takes per answer: long enough to catch


def _records(good: int = GOOD) -> tuple[bytes, set[int], set[int]]:
    """A batch with good records and, among them, bad ones: (bytes, good lines, bad)."""
    lines, good_lines, bad = [], set(), set()
    for number in range(1, good + 4):
        if number in (3, 7):
            lines.append(b"{not json")
            bad.add(number)
        elif number == 10:
            lines.append(json.dumps({"situation": "only this"}).encode())
            bad.add(number)
        else:
            record = {"ID": f"r{number}", "situation": f"Situation {number}.",
                      "intention": f"Intention {number}.",
                      "turns": [{"role": "user", "content": f"Message {number}"}]}
            lines.append(json.dumps(record).encode())
            good_lines.add(number)
    return b"\n".join(lines) + b"\n", good_lines, bad


def _results(path: Path) -> list[dict[str, Any]]:
    """The whole results in an output, as the next run reads them: up to the first line a
    kill cut short."""
    results: list[dict[str, Any]] = []
    if not path.exists():
        return results
    for raw in path.read_bytes().splitlines(keepends=True):
        try:
            results.append(json.loads(raw))
        except ValueError:
            break
    return results


def _lines_of(path: Path) -> Counter[int]:
    return Counter(result["line"] for result in _results(path))


def _check_partial(out: Path, good: set[int]) -> None:
    """After a kill: what the output holds is whole results of good lines, none twice."""
    lines = _lines_of(out)
    assert set(lines) <= good and max(lines.values(), default=1) == 1, lines


def _kill_and_resume(args: list[str], env: dict[str, str], out: Path, good: set[int],
                     bad: set[int], *, random_kills: int = RANDOM_KILLS,
                     latest_kill_s: float = 5.0) -> None:
    kill_at("result", args, {**env, "AMICUS_STEP_COUNT": "3"})
    _check_partial(out, good)
    kill_at("mid-line", args, {**env, "AMICUS_STEP_COUNT": "2"})
    _check_partial(out, good)
    rng = random.Random(None if LONG else 2)
    for _ in range(random_kills):
        kill_after(rng.uniform(0.5, latest_kill_s), args, env)
        _check_partial(out, good)
    finished = run(args, env)
    assert finished.returncode == 0, finished.stderr[-2000:]
    results = _lines_of(out)
    assert set(results) == good and max(results.values()) == 1, results
    rejected = _lines_of(out.with_name(out.name + ".rejected.jsonl"))
    assert set(rejected) == bad and max(rejected.values()) == 1, rejected


def test_audit_killed_and_rerun_gives_every_line_once(home, tmp_path):
    data, good, bad = _records()
    batch, out = tmp_path / "stories.jsonl", tmp_path / "out.jsonl"
    batch.write_bytes(data)
    args = ["audit", str(batch), "--frame", "direct", "-o", str(out), "--no-think"]
    _kill_and_resume(args, amicus_env(home), out, good, bad)


def test_audit_through_a_server_killed_and_rerun(home, tmp_path):
    data, good, bad = _records()
    batch, out = tmp_path / "stories.jsonl", tmp_path / "out.jsonl"
    batch.write_bytes(data)
    gguf = next((home / "models" / "moral-audit").glob("*.gguf"))
    # One answer at a time: by default this server cuts a streamed answer short when the
    # next request comes, and the batch sends several at once.
    with llama_cpp_server(gguf, tmp_path / "server.log", n_ctx=2048,
                          extra=("--interrupt_requests", "False")) as url:
        args = ["audit", str(batch), "--frame", "direct", "-o", str(out), "--no-think",
                "--endpoint", url]
        # random moments: the embedded run has them (in make test); here, in the long run
        _kill_and_resume(args, amicus_env(home), out, good, bad,
                         random_kills=RANDOM_KILLS if LONG else 0)


def _kill_with_requests_in_flight(args: list[str], env: dict[str, str], server: Loopback,
                                  out: Path, *, written: int, limit_s: float = 60.0) -> int:
    """Start the audit; SIGKILL it once IN_FLIGHT requests are in flight on `server` and
    the output holds `written` lines or more. Returns the requests in flight just before."""
    deadline = time.monotonic() + limit_s
    while server.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)  # requests of a process killed before: the server still works on them
    process = start("none", args, env, stderr=subprocess.DEVNULL)
    in_flight = 0
    try:
        while time.monotonic() < deadline and process.poll() is None:
            in_flight = server.in_flight
            lines = out.read_bytes().count(b"\n") if out.exists() else 0
            if in_flight >= IN_FLIGHT and lines >= written:
                process.send_signal(signal.SIGKILL)
                break
            time.sleep(0.005)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL, (
        f"the audit ended (status {process.returncode}) before {IN_FLIGHT} requests were "
        f"in flight with {written} results written")
    return in_flight


def test_audit_with_requests_in_flight_killed_and_rerun(home, tmp_path):
    """`--concurrency 4` on a server: killed at the start with four requests in flight,
    after results were written with four more in flight, after a result, mid-line and at a
    random moment; the rerun completes the file, each line once, each with its own answer."""
    data, good, bad = _records(good=24)
    batch, out = tmp_path / "stories.jsonl", tmp_path / "out.jsonl"
    batch.write_bytes(data)
    env = amicus_env(home)
    with Loopback(chat_app(), delay_s=REPLY_S) as server:
        args = ["audit", str(batch), "--frame", "direct", "-o", str(out), "--no-think",
                "--endpoint", server.url, "--concurrency", str(IN_FLIGHT)]
        assert _kill_with_requests_in_flight(args, env, server, out, written=0) >= IN_FLIGHT
        _check_partial(out, good)
        assert _kill_with_requests_in_flight(args, env, server, out, written=6) >= IN_FLIGHT
        _check_partial(out, good)
        assert len(_lines_of(out)) >= 6  # the whole lines written before the kill are kept
        _kill_and_resume(args, env, out, good, bad, latest_kill_s=2.5)
    results = _results(out)
    assert all(result["answer"] == answer_for(result["prompt"]) for result in results)
    asked = server.posts("/v1/chat/completions")
    # Each kill loses at most the requests in flight (and a result cut mid-line); a rerun
    # asks again only for those, never for a line already done.
    assert len(asked) <= len(good) + 6 * (IN_FLIGHT + 1), len(asked)


def test_classify_killed_and_rerun_gives_every_line_once(home, tmp_path):
    data, good, bad = _records()  # line 10 has no dialogue: rejected by classify too
    batch, out = tmp_path / "dialogues.jsonl", tmp_path / "verdicts.jsonl"
    batch.write_bytes(data)
    _kill_and_resume(["classify", str(batch), "-o", str(out)], amicus_env(home), out, good,
                     bad, random_kills=RANDOM_KILLS if LONG else 0)


def test_classify_with_requests_in_flight_killed_and_rerun(home, tmp_path):
    """`classify --endpoint --concurrency 4` on a vLLM-style loopback server: killed with
    four requests in flight, after results were written, after a result, mid-line and at a
    random moment; the rerun completes the file, each line once, each with the verdict the
    embedded classifier gives that dialogue."""
    from app.assistants.gate import classifier_profile
    from app.assistants.registry import find_model
    from app.engine.classifier import Classifier

    data, good, bad = _records(good=24)
    batch, out = tmp_path / "dialogues.jsonl", tmp_path / "verdicts.jsonl"
    batch.write_bytes(data)
    env = amicus_env(home)
    embedded = run(["classify", str(batch), "-o", str(tmp_path / "embedded.jsonl")], env)
    assert embedded.returncode == 0, embedded.stderr[-2000:]
    expected = {r["line"]: r for r in _results(tmp_path / "embedded.jsonl")}
    gguf = find_model("intent-safety").gguf
    with Classifier.load(gguf, task_description=classifier_profile().task_description) as clf, \
            Loopback(ClassifierApp(clf, "vllm"), delay_s=REPLY_S) as server:
        args = ["classify", str(batch), "-o", str(out), "--endpoint", server.url,
                "--concurrency", str(IN_FLIGHT)]
        assert _kill_with_requests_in_flight(args, env, server, out, written=0) >= IN_FLIGHT
        _check_partial(out, good)
        assert _kill_with_requests_in_flight(args, env, server, out, written=6) >= IN_FLIGHT
        _check_partial(out, good)
        assert len(_lines_of(out)) >= 6
        _kill_and_resume(args, env, out, good, bad, latest_kill_s=2.5)
    for result in _results(out):
        mine = expected[result["line"]]
        assert result["id"] == mine["id"] and result["label_text"] == mine["label_text"]
        assert abs(result["prob_unsafe"] - mine["prob_unsafe"]) < 1e-5, (result, mine)
    assert len(server.posts("/classify")) <= len(good) + 6 * (IN_FLIGHT + 1)
