"""`amicus audit`: frames from records, resumable, bad records kept aside."""

from __future__ import annotations

import json

import pytest

from app.assistants.moral_frames import render_frame
from tests.app.commands.conftest import run

GOOD = [
    {"ID": f"r{i}", "situation": f"Situation {i}.", "intention": f"Intention {i}.",
     "moral_action": f"Moral action {i}.", "immoral_action": f"Immoral action {i}.",
     "norm": f"Norm {i}."}
    for i in range(3)
]


@pytest.fixture
def records(tmp_path):
    path = tmp_path / "stories.jsonl"
    lines = [json.dumps(GOOD[0]), "{not json", json.dumps(GOOD[1]), "",
             json.dumps({"situation": "only this"}), json.dumps(GOOD[2])]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _results(path):
    # str.splitlines() would also split on U+2028 & co.: the output escapes them anyway.
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_audit_writes_one_result_per_good_record(home, capsys, records, tmp_path):
    out = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "audit", str(records), "--frame", "action", "-o", str(out),
                       "--no-think")
    assert code == 0
    results = _results(out)
    assert [r["line"] for r in results] == [1, 3, 6]
    assert [r["id"] for r in results] == ["r0", "r1", "r2"]
    assert results[0]["prompt"] == render_frame("action", GOOD[0])
    assert all(r["stats"]["completion_tokens"] > 0 for r in results)
    for result in results:  # every result says which model, file and settings wrote it
        record = result["provenance"]
        assert record["assistant"] == "moral-audit" and record["model"]["demo"] is True
        assert len(record["model"]["sha256"]) == 64 and record["think"] is False
        assert record["sampling"]["temperature"] == 0.2 and record["system_prompt"]
    rejected = _results(tmp_path / "out.jsonl.rejected.jsonl")
    assert [(r["line"], "JSON" in r["reason"] or "missing" in r["reason"]) for r in rejected] \
        == [(2, True), (5, True)]
    assert rejected[1]["raw"] == json.dumps({"situation": "only this"})
    assert "line 2: skipped" in err


def test_an_interrupted_audit_resumes_without_redoing_records(home, capsys, records, tmp_path,
                                                            monkeypatch):
    import app.commands.audit as audit

    out = tmp_path / "out.jsonl"
    calls = []
    real = audit._ask

    def interrupted_on_second(assistant, prompt, **options):
        calls.append(prompt)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(assistant, prompt, **options)

    monkeypatch.setattr(audit, "_ask", interrupted_on_second)
    code, _, _ = run(capsys, "audit", str(records), "--frame", "direct", "-o", str(out))
    assert code == 130
    assert [r["line"] for r in _results(out)] == [1]
    with open(out, "a", encoding="utf-8") as handle:  # a crash mid-write leaves half a line
        handle.write('{"line": 3, "fra')
    monkeypatch.setattr(audit, "_ask", lambda a, p, **options: (calls.append(p), real(
        a, p, **options))[1])
    calls.clear()
    code, _, _ = run(capsys, "audit", str(records), "--frame", "direct", "-o", str(out))
    assert code == 0
    assert [r["line"] for r in _results(out)] == [1, 3, 6]
    assert len(calls) == 2  # lines 3 and 6 only
    code, _, _ = run(capsys, "audit", str(records), "--frame", "direct", "-o", str(out))
    assert len(_results(out)) == 3  # nothing redone


def test_another_frame_is_a_separate_run(home, capsys, records, tmp_path):
    out = tmp_path / "out.jsonl"
    run(capsys, "audit", str(records), "--frame", "norm", "-o", str(out), "--no-think")
    run(capsys, "audit", str(records), "--frame", "permissibility", "-o", str(out),
        "--no-think")
    frames = [r["frame"] for r in _results(out)]
    assert frames.count("norm") == 3 and frames.count("permissibility") == 3


def test_missing_input_file(home, capsys, tmp_path):
    code, _, err = run(capsys, "audit", str(tmp_path / "none.jsonl"), "--frame", "direct",
                       "-o", str(tmp_path / "o.jsonl"))
    assert code == 2 and "no such file" in err


def test_result_lines_never_contain_raw_line_separators():
    from app.commands.batch import json_line

    line = json_line({"answer": "a\u2028b\u2029c\x85d\ne 中文"})
    assert line.count("\n") == 1 and len(line.splitlines()) == 1
    assert json.loads(line)["answer"] == "a\u2028b\u2029c\x85d\ne 中文"
