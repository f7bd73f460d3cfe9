"""`ask`, `audit` and `classify` on servers (loopback threads, and llama-cpp-python's own
server): requests in flight, failures kept aside and counted, retries, keys that never
leak, https, classification equal to the embedded classifier, and Ctrl-C then resume with
many requests in flight (every input line exactly one result)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.assistants.registry import find_model
from app.engine.classifier import Classifier
from tests.app.commands.conftest import run
from tests.loopback import (
    ClassifierApp,
    Loopback,
    Reply,
    answer_for,
    chat_app,
    llama_cpp_server,
    self_signed_certificate,
    server_tls,
)

ROOT = Path(__file__).resolve().parents[3]
KEY = "sk-clinic-7f3a9c1e5b2d4680"
DIALOGUE = [{"role": "assistant", "content": "Are you sure you want to stay here?"},
            {"role": "user", "content": "I step closer and whisper."}]


@pytest.fixture(autouse=True)
def _no_key_in_environment(monkeypatch):
    for name in ("AMICUS_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def _stories(path: Path, count: int, mark: dict[int, str] | None = None) -> Path:
    mark = mark or {}
    records = [{"ID": f"r{i}", "situation": f"Situation {i}{mark.get(i, '')}.",
                "intention": f"Intention {i}."} for i in range(count)]
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _audit(capsys, stories, out, url, *extra):
    return run(capsys, "audit", str(stories), "--frame", "direct", "-o", str(out),
               "--endpoint", url, *extra)


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("amicus: error")]


# --- concurrency, failures, resume ----------------------------------------------------------

def test_audit_keeps_n_requests_in_flight_and_tags_results(home, capsys, tmp_path):
    stories = _stories(tmp_path / "s.jsonl", 12)
    out = tmp_path / "out.jsonl"
    with Loopback(chat_app(), delay_s=0.2) as server:
        code, _, err = _audit(capsys, stories, out, server.url, "--concurrency", "4")
    assert code == 0, err
    results = _lines(out)
    assert sorted(r["line"] for r in results) == list(range(1, 13))
    assert all(r["answer"] == answer_for(r["prompt"]) for r in results)
    assert server.max_in_flight == 4
    assert "rec/s" in err


def test_server_failures_are_kept_aside_counted_and_redone_on_rerun(home, capsys, tmp_path):
    stories = _stories(tmp_path / "s.jsonl", 6, mark={1: " FAIL", 4: " STALL"})
    out = tmp_path / "out.jsonl"
    broken = {"on": True}

    def app(request):
        question = request.body["messages"][-1]["content"] if request.body else ""
        if broken["on"] and "STALL" in question:
            time.sleep(1.5)
        status = 503 if broken["on"] and "FAIL" in question else None
        return chat_app(fail_when=lambda _r: status)(request)

    with Loopback(app) as server:
        code, _, err = _audit(capsys, stories, out, server.url, "--timeout", "0.5",
                              "--concurrency", "3")
        assert code == 0, err
        assert sorted(r["line"] for r in _lines(out)) == [1, 3, 4, 6]
        rejected = {r["line"]: r["reason"] for r in _lines(
            tmp_path / "out.jsonl.rejected.jsonl")}
        assert set(rejected) == {2, 5}
        assert "HTTP 503" in rejected[2] and "within 0.5 s" in rejected[5]
        assert "amicus: 4 done, 2 failed (rerun to try them again): see" in err
        # The 503 was retried (bounded), the stall was not (a timeout would only repeat).
        fail_posts = [r for r in server.posts("/v1/chat/completions")
                      if "FAIL" in r.body["messages"][-1]["content"]]
        assert len(fail_posts) == 4
        broken["on"] = False
        code, _, _ = _audit(capsys, stories, out, server.url)
    assert code == 0
    assert sorted(r["line"] for r in _lines(out)) == list(range(1, 7))


def test_dropped_connections_and_503s_are_retried(home, capsys, tmp_path):
    stories = _stories(tmp_path / "s.jsonl", 3)
    out = tmp_path / "out.jsonl"
    with Loopback(chat_app()) as server:
        server.faults.extend(["drop", "503", "drop"])
        code, _, err = _audit(capsys, stories, out, server.url, "--concurrency", "1")
    assert code == 0, err
    assert len(_lines(out)) == 3 and not (tmp_path / "out.jsonl.rejected.jsonl").exists()


def test_a_refused_key_stops_the_batch_in_one_line(home, capsys, tmp_path):
    stories = _stories(tmp_path / "s.jsonl", 20)
    out = tmp_path / "out.jsonl"
    with Loopback(chat_app(), api_key=KEY) as server:
        code, _, err = _audit(capsys, stories, out, server.url, "--concurrency", "2")
        assert len(server.posts("/v1/chat/completions")) <= 4  # not one per record
    assert code == 2
    (line,) = _error_lines(err)
    assert "HTTP 401" in line and "AMICUS_API_KEY" in line
    assert not (tmp_path / "out.jsonl.rejected.jsonl").exists()


def test_ctrl_c_with_requests_in_flight_then_resume(home, tmp_path):
    """A real SIGINT to a real process: it stops at once, every line it wrote is whole and
    unique, and the rerun completes the file with every input line exactly once."""
    stories = _stories(tmp_path / "s.jsonl", 60)
    out = tmp_path / "out.jsonl"
    with Loopback(chat_app(), delay_s=0.15) as server:
        command = [sys.executable, "-m", "app.cli", "audit", str(stories), "--frame",
                   "direct", "-o", str(out), "--endpoint", server.url, "--concurrency", "6"]
        process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, env=os.environ.copy())
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (
                not out.exists() or len(out.read_bytes().splitlines()) < 12):
            time.sleep(0.05)
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        _, err = process.communicate(timeout=30)
        assert process.returncode == 130, err.decode()
        assert time.monotonic() - interrupted < 2
        first = [r["line"] for r in _lines(out)]
        assert 12 <= len(first) < 60 and len(first) == len(set(first))
        resumed = subprocess.run(command, cwd=ROOT, capture_output=True, env=os.environ.copy(),
                                 timeout=120)
        assert resumed.returncode == 0, resumed.stderr.decode()
    lines = [r["line"] for r in _lines(out)]
    assert sorted(lines) == list(range(1, 61))  # each exactly once
    asked = [r.body["messages"][-1]["content"] for r in server.posts("/v1/chat/completions")]
    assert len(asked) < 60 + 6 + 1  # the rerun asked only for what was missing (+ cut ones)


def test_concurrency_needs_a_server(home, capsys, tmp_path):
    stories = _stories(tmp_path / "s.jsonl", 1)
    code, _, err = run(capsys, "audit", str(stories), "--frame", "direct", "-o",
                       str(tmp_path / "o.jsonl"), "--concurrency", "4")
    assert code == 2 and "--concurrency needs --endpoint" in err


def test_a_server_that_does_not_stream_is_read_whole(home, capsys):
    with Loopback(chat_app(stream=False)) as server:
        code, out, err = run(capsys, "ask", "general", "hello there", "--endpoint", server.url)
    assert code == 0, err
    assert out.startswith(answer_for("hello there"))


@pytest.fixture
def llama_cpp_url(home, tmp_path):
    """llama-cpp-python's server on the installed moral-audit GGUF, serving requests one
    after another (its default interrupts a streamed answer when the next request comes)."""
    model = find_model("moral-audit").gguf
    with llama_cpp_server(model, tmp_path / "server.log", n_ctx=2048,
                          extra=("--interrupt_requests", "False")) as url:
        yield url


def test_audit_on_llama_cpp_pythons_own_server(home, capsys, tmp_path, llama_cpp_url):
    stories = _stories(tmp_path / "s.jsonl", 4)
    out = tmp_path / "out.jsonl"
    code, _, err = _audit(capsys, stories, out, llama_cpp_url, "--concurrency", "4",
                          "--no-think", "--max-tokens", "8")
    assert code == 0, err
    results = _lines(out)
    assert sorted(r["line"] for r in results) == [1, 2, 3, 4]
    assert all(r["stats"]["stop_reason"] in ("stop", "length") for r in results)
    # Whole answers, none cut (this server sends no usage while streaming: the count is
    # of streamed chunks).
    assert all(r["answer"] and r["stats"]["completion_tokens"] > 0 for r in results)


# --- keys ------------------------------------------------------------------------------------

def _config(home: Path, **settings: str) -> Path:
    path = home / "config.toml"
    path.write_text("".join(f'{k} = "{v}"\n' for k, v in settings.items()), encoding="utf-8")
    return path


def _files_text(*roots: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace") for root in roots
                   for p in root.rglob("*") if p.is_file() and p.suffix != ".gguf")


def test_the_key_comes_from_the_environment_and_never_leaks(home, capsys, tmp_path,
                                                           monkeypatch):
    stories = _stories(tmp_path / "s.jsonl", 3, mark={2: " FAIL"})
    out = tmp_path / "out.jsonl"
    app = chat_app(fail_when=lambda r: 500 if "FAIL" in json.dumps(r.body) else None)
    with Loopback(app, api_key=KEY) as server:
        monkeypatch.setenv("AMICUS_API_KEY", KEY)
        code, stdout, err = _audit(capsys, stories, out, server.url)
        assert code == 0, err
        code2, stdout2, err2 = run(capsys, "ask", "general", "hi", "--endpoint", server.url,
                                   "--json")
        assert code2 == 0, err2
        monkeypatch.setenv("AMICUS_API_KEY", KEY + "-revoked")
        code3, stdout3, err3 = run(capsys, "ask", "general", "hi", "--endpoint", server.url)
        assert code3 == 2 and "***" in err3  # the server echoed the header: redacted
    assert len(_lines(out)) == 2
    everything = stdout + err + stdout2 + err2 + stdout3 + err3 + _files_text(tmp_path, home)
    assert KEY not in everything


def test_the_key_from_a_private_key_file_named_in_the_config(home, capsys, tmp_path):
    key_file = tmp_path / "api-key"
    key_file.write_text(KEY + "\n", encoding="utf-8")
    key_file.chmod(0o600)
    _config(home, api_key_file=str(key_file))
    with Loopback(chat_app(), api_key=KEY) as server:
        code, out, err = run(capsys, "ask", "general", "hi", "--endpoint", server.url)
        assert code == 0, err
        key_file.chmod(0o644)
        code, out, err = run(capsys, "ask", "general", "hi", "--endpoint", server.url)
    assert code == 2
    (line,) = _error_lines(err)
    assert "can be read by other users" in line and KEY not in err + out


def test_there_is_no_key_flag(home, capsys):
    with pytest.raises(SystemExit) as exit_:
        run(capsys, "ask", "general", "hi", "--api-key", KEY)
    assert exit_.value.code == 2


# --- https -----------------------------------------------------------------------------------

def test_https_with_and_without_the_clinics_authority(home, capsys, tmp_path):
    cert, key = self_signed_certificate(tmp_path / "tls")
    with Loopback(chat_app(), tls=server_tls(cert, key)) as server:
        code, _, err = run(capsys, "ask", "general", "hi", "--endpoint", server.url)
        assert code == 2
        (line,) = _error_lines(err)
        assert "cannot verify the certificate of https://127.0.0.1" in line
        assert "--ca-file" in line
        code, out, err = run(capsys, "ask", "general", "hi", "--endpoint", server.url,
                             "--ca-file", str(cert))
        assert code == 0 and out.startswith(answer_for("hi")), err
        _config(home, ca_file=str(cert))
        code, out, err = run(capsys, "ask", "general", "hi", "--endpoint", server.url)
        assert code == 0, err


# --- classification --------------------------------------------------------------------------

@pytest.fixture
def installed_classifier(home):
    from app.assistants.gate import classifier_profile

    path = find_model("intent-safety").gguf
    with Classifier.load(path, task_description=classifier_profile().task_description) as clf:
        yield clf


def _dialogues(path: Path) -> Path:
    records = [{"id": f"d{i}", "turns": [*DIALOGUE, {"role": "user", "content": f"turn {i}"}]}
               for i in range(6)]
    records.insert(2, {"id": "bad", "turns": []})
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize("api", ["vllm", "llama-server"])
def test_classify_on_a_server_equals_the_embedded_classifier(home, capsys, tmp_path,
                                                            installed_classifier, api):
    data = _dialogues(tmp_path / "d.jsonl")
    code, embedded, _ = run(capsys, "classify", str(data))
    assert code == 0
    with Loopback(ClassifierApp(installed_classifier, api)) as server:
        code, remote, err = run(capsys, "classify", str(data), "--endpoint", server.url,
                                "--concurrency", "3")
        assert code == 0, err
        assert server.posts("/classify" if api == "vllm" else "/rerank")
    by_id = {r["id"]: r for r in map(json.loads, embedded.splitlines())}
    results = [json.loads(line) for line in remote.splitlines()]
    assert sorted(r["id"] for r in results) == sorted(by_id)
    for result in results:
        expected = by_id[result["id"]]
        assert result["line"] == expected["line"]
        assert result["label_text"] == expected["label_text"]
        assert result["prob_unsafe"] == pytest.approx(expected["prob_unsafe"], abs=1e-5)
    assert "line 3: skipped" in err


def _fixed_classifier(probs):
    def app(request):
        return {"/tokenize": Reply(body={"tokens": [1, 2, 3]}),
                "/detokenize": Reply(body={"prompt": "text"}),
                "/classify": Reply(body={"data": [{"probs": probs}]})}[request.path]
    return app


def test_ask_gate_on_a_server_blocks_or_lets_through(home, capsys):
    with Loopback(_fixed_classifier([0.1, 0.9])) as gate, Loopback(chat_app()) as chat:
        code, out, err = run(capsys, "ask", "general", "hi", "--gate", "--gate-endpoint",
                             gate.url, "--gate-api", "vllm", "--endpoint", chat.url)
        assert code == 3 and out == "" and "p_unsafe=0.900" in err
        assert not chat.requests
    with Loopback(_fixed_classifier([0.8, 0.2])) as gate, Loopback(chat_app()) as chat:
        code, out, err = run(capsys, "ask", "general", "hi", "--gate", "--gate-endpoint",
                             gate.url, "--gate-api", "vllm", "--endpoint", chat.url, "--json")
        assert code == 0, err
        assert json.loads(out)["gate"]["prob_unsafe"] == pytest.approx(0.2)
        assert len(chat.posts("/v1/chat/completions")) == 1


def test_classify_on_ollama_says_it_cannot(home, capsys, tmp_path):
    data = _dialogues(tmp_path / "d.jsonl")
    with Loopback(chat_app(owned_by="library")) as server:
        code, _, err = run(capsys, "classify", str(data), "--endpoint", server.url)
    assert code == 2
    (line,) = _error_lines(err)
    assert "Ollama, which has no classification API" in line
