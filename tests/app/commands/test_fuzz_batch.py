"""Fuzzing JSONL batch files (`amicus audit`, `amicus classify`): whatever the bytes, every
non-blank line ends up exactly once either as a result or as a rejected record with its
reason; the run exits 0 and never stops on one bad record (a record too long for the
model's context included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.assistants import runtime
from app.commands import audit
from app.commands.batch import Record, Rejected, read_records
from app.engine.fake import FakeEngine
from tests.app.commands.conftest import run
from tests.tools.fuzzing import JSON_VALUES, fuzz_settings, time_limit

_FIELDS = ["situation", "intention", "action", "moral_action", "immoral_action", "norm", "ID",
           "turns", "messages", "dialogue", "role", "content"]
RECORDS = st.dictionaries(st.sampled_from(_FIELDS) | st.text(max_size=6), JSON_VALUES,
                          max_size=6)
LINES = st.one_of(
    RECORDS.map(lambda r: json.dumps(r, ensure_ascii=False).encode("utf-8", "surrogatepass")),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=40).map(lambda b: b.replace(b"\n", b"")),
    st.just(b""), st.just(b"   "), st.just(b"\xef\xbb\xbf{}"), st.just(b"\x1c"),
    st.just(b"\x0b\x0c"))


def _batch(lines: list[bytes]) -> bytes:
    return b"".join(line + b"\n" for line in lines)


def _expected_lines(data: bytes) -> set[int]:
    """Every line that is not blank (JSON's whitespace only, after a BOM)."""
    return {n for n, raw in enumerate(data.split(b"\n")[:-1], start=1)
            if raw.removeprefix(b"\xef\xbb\xbf").strip(b" \t\r\n")}


@fuzz_settings(100)
@given(lines=st.lists(LINES, max_size=8))
def test_any_bytes_read_as_records_or_rejections(tmp_path, lines):
    path = tmp_path / "batch.jsonl"
    data = _batch(lines)
    path.write_bytes(data)
    with time_limit():
        items = list(read_records(path))
    assert all(isinstance(item, (Record, Rejected)) for item in items)
    assert {item.line for item in items} == _expected_lines(data)


@pytest.fixture
def fake_assistant(home, monkeypatch):
    """moral-audit with a scripted engine: the fuzz is about the records, not the model."""
    def fake_open(name, **_options):
        model = runtime.find_model(name)
        return runtime.Assistant(model, runtime.assistant_profile(model),
                                 FakeEngine("An answer."))

    monkeypatch.setattr(audit, "open_assistant", fake_open)
    return home


def _outcomes(out: Path) -> list[int]:
    lines = []
    for path in (out, out.with_name(out.name + ".rejected.jsonl")):
        if path.exists():
            lines += [json.loads(line)["line"] for line in path.read_text("utf-8").splitlines()]
    return lines


@fuzz_settings(40)
@given(lines=st.lists(LINES, max_size=6), frame=st.sampled_from(["direct", "action", "norm"]))
def test_every_audit_line_ends_up_exactly_once(fake_assistant, tmp_path, capsys, lines, frame):
    path, out = tmp_path / "batch.jsonl", tmp_path / "out.jsonl"
    out.unlink(missing_ok=True)
    out.with_name("out.jsonl.rejected.jsonl").unlink(missing_ok=True)
    data = _batch(lines)
    path.write_bytes(data)
    with time_limit():
        code, _, err = run(capsys, "audit", str(path), "--frame", frame, "-o", str(out))
    if b"\x00" in data[:4096]:  # a binary file: refused as a whole, before any output
        assert code == 2 and "not a JSONL text file" in err and not out.exists()
        return
    assert code == 0, err
    outcomes = _outcomes(out)
    assert sorted(outcomes) == sorted(_expected_lines(data))


# ---------------------------------------------------------------------------- the real engine


def short_replies(home: Path, assistant: str = "moral-audit") -> None:
    """Demo weights rarely stop by themselves: cap the installed copy's replies."""
    modelfile = home / "models" / assistant / "Modelfile"
    modelfile.write_text(modelfile.read_text(encoding="utf-8") + "PARAMETER num_predict 4\n",
                         encoding="utf-8")


def test_a_record_too_long_for_the_context_is_rejected_not_fatal(home, capsys, tmp_path):
    """The known failure: one record longer than num_ctx stopped the whole audit."""
    short_replies(home)
    records = [{"ID": "long", "situation": "word " * 6000, "intention": "Keep it."},
               {"ID": "after", "situation": "A lost dog.", "intention": "Help it."}]
    path, out = tmp_path / "stories.jsonl", tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    code, _, err = run(capsys, "audit", str(path), "--frame", "direct", "-o", str(out),
                       "--no-think")
    assert code == 0, err
    assert [json.loads(line)["id"] for line in out.read_text().splitlines()] == ["after"]
    [rejected] = [json.loads(line) for line in
                  out.with_name("out.jsonl.rejected.jsonl").read_text().splitlines()]
    assert rejected["line"] == 1 and "too long" in rejected["reason"]
    assert "line 1: skipped" in err and "internal error" not in err
