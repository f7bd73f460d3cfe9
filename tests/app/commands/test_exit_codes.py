"""The exit-code contract of `amicus` (converters.errors, mapped once in app.errors): bad
input or environment exits 2 with one line and never says "internal error"; only a bug
exits 1, and says so."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from app import cli
from tests.app.commands.conftest import run


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("amicus:")]
    assert len(lines) == 1, err
    assert "internal error" not in lines[0], lines[0]
    return lines[0]


def _truncate_gguf(home: Path, name: str) -> None:
    gguf = next((home / "models" / name).glob("*.gguf"))
    data = gguf.read_bytes()
    gguf.write_bytes(data[: len(data) // 2])


def test_unreachable_endpoint_exits_2(home, capsys):
    code, _, err = run(capsys, "ask", "general", "hi", "--endpoint", "http://127.0.0.1:9")
    assert code == 2
    assert "127.0.0.1:9" in _one_error_line(err)


def test_corrupt_installed_gguf_exits_2(home, capsys):
    _truncate_gguf(home, "general")
    code, _, err = run(capsys, "ask", "general", "hi")
    assert code == 2
    assert "general.Q4_K_M.gguf" in _one_error_line(err)


def test_missing_model_exits_2(home, capsys):
    code, _, err = run(capsys, "ask", "nobody", "hi")
    assert code == 2
    assert "no installed model named 'nobody'" in _one_error_line(err)


def test_binary_file_given_as_jsonl_exits_2(home, capsys, tmp_path):
    batch = tmp_path / "stories.jsonl"
    batch.write_bytes(b"GGUF\x03\x00\x00\x00" + bytes(range(256)))
    code, _, err = run(capsys, "audit", str(batch), "-o", str(tmp_path / "out.jsonl"),
                       "--frame", "direct")
    assert code == 2
    assert "not a JSONL text file" in _one_error_line(err)
    assert not (tmp_path / "out.jsonl").exists()


def test_bad_lines_in_jsonl_are_rejected_records_not_a_crash(home, capsys, tmp_path):
    batch = tmp_path / "stories.jsonl"
    batch.write_bytes(b'{"situation": "a", "intention": "b"}\n\xff\xfe not utf-8\n[1]\n')
    out = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "audit", str(batch), "-o", str(out), "--frame", "direct")
    assert code == 0, err
    rejected = (tmp_path / "out.jsonl.rejected.jsonl").read_text("utf-8").splitlines()
    assert len(rejected) == 2
    assert len(out.read_text("utf-8").splitlines()) == 1


def test_bad_modelfile_exits_2_before_any_work(capsys, tmp_path):
    modelfile = tmp_path / "Modelfile"
    modelfile.write_text("FROM x\nPARAMETER num_ctx 4096.0\n")
    code, _, err = run(capsys, "convert", "--base", str(tmp_path / "absent"), "--name", "m",
                       "--out", str(tmp_path / "out"), "--modelfile", str(modelfile))
    assert code == 2
    assert "Modelfile" in _one_error_line(err)
    assert not (tmp_path / "out").exists()


def test_a_full_disk_is_environment_not_a_bug(monkeypatch, capsys):
    def handler(_args: argparse.Namespace) -> int:
        raise OSError(28, "No space left on device", "/data/out.jsonl")

    code = cli._dispatch(handler, argparse.Namespace())
    err = capsys.readouterr().err
    assert code == 2
    assert _one_error_line(err) == "amicus: error: No space left on device: /data/out.jsonl"


def test_an_injected_bug_exits_1_and_says_internal_error(monkeypatch, capsys):
    monkeypatch.delenv("AMICUS_DEBUG", raising=False)
    from app.commands import ask

    def broken(_args: argparse.Namespace) -> int:
        return {}["no such key"]  # a bug, not bad input

    monkeypatch.setattr(ask, "run_ask", broken)
    code, _, err = run(capsys, "ask", "general", "hi")
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("amicus:")]
    assert lines == ["amicus: internal error: KeyError: 'no such key' (set AMICUS_DEBUG=1 for "
                     "the traceback)"]


def test_ctrl_c_exits_130(capsys):
    def handler(_args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    assert cli._dispatch(handler, argparse.Namespace()) == 130
    assert "interrupted" in capsys.readouterr().err


@pytest.mark.parametrize("exc_type", ["EndpointError", "ModelLoadError"])
def test_engine_errors_are_amicus_errors(exc_type):
    from app import errors
    from app.engine import errors as engine_errors
    from app.engine.openai_backend import EndpointError

    kind = EndpointError if exc_type == "EndpointError" else engine_errors.ModelLoadError
    failure = errors.describe(kind("the server at http://x:1 refused the connection"))
    assert (failure.exit_code, failure.internal) == (2, False)


@pytest.mark.parametrize("threads", ["0", "-3", "100000"])
def test_a_thread_count_llama_cpp_cannot_run_exits_2(home, capsys, threads):
    """0 and negatives were a ValueError (exit 1); 100000 made llama.cpp abort the process."""
    code, _, err = run(capsys, "ask", "general", "hi", "--threads", threads)
    assert code == 2
    assert f"threads must be from 1 to 512, not {threads}" in _one_error_line(err)
