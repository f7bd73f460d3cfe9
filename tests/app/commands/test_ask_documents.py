"""`amicus ask --file`, `--num-ctx`, the reading line and bar, Ctrl-C while reading and
continuing after a restart, `--incognito`; `audit`/`classify` records naming a file."""

from __future__ import annotations

import json
import os
import signal

import pytest

from app.assistants.runtime import Assistant
from app.commands import progress as reading_module
from app.engine.events import ReadingProgress
from tests.app.commands.conftest import run
from tests.app.documents.fixtures import write_docx, write_pdf

JUDGMENT = ("经审理查明：被告人张某于二〇二三年五月十二日在某市某小区盗窃电动自行车一辆，"
            "经鉴定价值人民币三千元。案发后被告人如实供述，退赔被害人全部损失。")
LONG_FACTS = "The defendant entered the shop at night and took the till. " * 60


def _sparse(path, size):
    """A file of `size` bytes that takes no disk space."""
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


@pytest.fixture
def sent(monkeypatch):
    """The messages each `ask` sends to its engine. Sampling is made flat and seeded: the
    tests assert the answer limit's cut-off mark, and the demo models' random weights end
    some answers early by chance at the Modelfile's settings, and greedily the imatrix-
    calibrated sentencing demo puts its end-of-turn token first."""
    seen: list[list[dict]] = []
    real = Assistant.stream

    def spy(self, messages, **kwargs):
        seen.append([dict(m) for m in messages])
        kwargs["params"] = {**(kwargs.get("params") or {}), "temperature": 1.5, "top_p": 1.0,
                            "seed": 11}
        return real(self, messages, **kwargs)

    monkeypatch.setattr(Assistant, "stream", spy)
    return seen


def test_documents_go_in_the_message_before_the_question(home, capsys, tmp_path, sent):
    gbk = tmp_path / "判决书.txt"
    gbk.write_bytes(JUDGMENT.encode("gbk"))
    docx = write_docx(tmp_path / "起诉书.docx", ["起诉书", [["被告人", "张某"]]])
    pdf = write_pdf(tmp_path / "record.pdf", [["Hearing record, page one."]])
    code, out, _ = run(capsys, "ask", "sentencing", "请给出量刑建议。", "--file", str(gbk),
                       "--file", str(docx), "--file", str(pdf), "--max-tokens", "4",
                       "--json")
    assert code == 0
    result = json.loads(out)
    assert [(f["name"], f["read_as"]) for f in result["files"]] == [
        ("判决书.txt", "GB18030/GBK"), ("起诉书.docx", "Word"), ("record.pdf", "1 page")]
    [[message]] = sent
    content = message["content"]
    assert content.startswith(f'<document name="判决书.txt" chars="{len(JUDGMENT)}">\n'
                              f"{JUDGMENT}\n</document>")
    assert "起诉书\n被告人 | 张某" in content and "Hearing record, page one." in content
    assert content.endswith("\n\n请给出量刑建议。")
    assert result["stop_reason"] == "length" and result["dropped_turns"] == 0
    assert result["cut_off"].startswith("cut off: the answer limit num_predict")


def test_a_document_alone_is_a_message(home, capsys, tmp_path, sent):
    path = tmp_path / "case.md"
    path.write_text("# Case\nFacts.", encoding="utf-8")
    code, _, err = run(capsys, "ask", "general", "--file", str(path), "--max-tokens", "2")
    assert code == 0
    assert sent[0][0]["content"] == '<document name="case.md" chars="13">\n# Case\nFacts.\n' \
        "</document>"
    assert "cut off: the answer limit num_predict (2 tokens) was reached" in err


@pytest.mark.parametrize(("make", "words"), [
    (lambda d: d / "missing.txt", "missing.txt: no such file"),
    (lambda d: (d / "scan.pdf", write_pdf(d / "scan.pdf", [None]))[0], "no text layer"),
    (lambda d: (d / "bin.txt", (d / "bin.txt").write_bytes(b"\x00\x01" * 50))[0], "binary"),
    (lambda d: (d / "case.rtf", (d / "case.rtf").write_text("x"))[0], "unsupported"),
    (lambda d: (d / "empty.txt", (d / "empty.txt").write_bytes(b""))[0], "empty"),
    (lambda d: (d / "bad.docx", (d / "bad.docx").write_text("no zip"))[0], "not a valid .docx"),
    (lambda d: write_pdf(d / "locked.pdf", [["secret"]], password="pw"), "encrypted"),
    (lambda d: _sparse(d / "huge.md", 51 * 2**20), "documents of up to 50 MB"),
])
def test_a_bad_file_stops_before_any_model_loads(home, capsys, tmp_path, monkeypatch, make,
                                                 words):
    import app.commands.ask as ask

    monkeypatch.setattr(ask, "open_assistant", lambda *a, **k: pytest.fail("model loaded"))
    path = make(tmp_path)
    code, out, err = run(capsys, "ask", "general", "question", "--file", str(path))
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert line.startswith(f"amicus: error: {path}: ") and words in line


def test_num_ctx_per_call_and_its_limits(home, capsys, monkeypatch):
    code, out, _ = run(capsys, "ask", "general", "hi", "--max-tokens", "2", "--num-ctx",
                       "2048", "--json")
    result = json.loads(out)
    assert code == 0 and result["stats"]["num_ctx"] == 2048  # Modelfile: 4096
    assert result["provenance"]["num_ctx"] == 2048  # the size used is the one recorded
    code, _, err = run(capsys, "ask", "general", "hi", "--num-ctx", "8192")
    assert code == 2 and "more than the 4,096 tokens the model was trained for" in err
    code, _, err = run(capsys, "ask", "general", "hi", "--num-ctx", "0")
    assert code == 2 and "--num-ctx must be a positive number" in err
    from app.engine import memory

    monkeypatch.setattr(memory, "available_memory", lambda: 10 * 1024 * 1024)
    code, _, err = run(capsys, "ask", "general", "hi", "--num-ctx", "4096")
    assert code == 2
    assert "with num_ctx 4,096 needs about" in err and "10 MB is available" in err


def test_the_config_sizes_each_assistants_context(home, capsys, _isolated_home):
    (_isolated_home / "config.toml").write_text("kv_cache_mb = 0\n[num_ctx]\ngeneral = 2048\n",
                                                encoding="utf-8")

    def num_ctx(*argv: str) -> tuple[int, int]:
        code, out, err = run(capsys, "ask", *argv, "--max-tokens", "2", "--json")
        assert code == 0, err
        result = json.loads(out)
        return result["stats"]["num_ctx"], result["provenance"]["num_ctx"]

    assert num_ctx("general", LONG_FACTS[:len(LONG_FACTS) // 3]) == (2048, 2048)  # config
    assert num_ctx("general", "hi", "--num-ctx", "1024") == (1024, 1024)  # the flag wins
    assert num_ctx("moral-audit", "hi") == (4096, 4096)  # no entry: the Modelfile's
    # kv_cache_mb = 0: a long prompt's reading state (700 tokens) is never saved.
    assert not list((_isolated_home / "kv-states").glob("*.kvstate"))


def test_a_server_keeps_its_own_context(home, capsys):
    code, out, err = run(capsys, "ask", "general", "hi", "--num-ctx", "8192", "--endpoint",
                         "http://127.0.0.1:9")
    assert code == 2 and out == ""
    [line] = err.strip().splitlines()
    assert "--num-ctx" in line and "--endpoint" in line


def test_long_prompts_are_announced_and_read_with_a_bar(home, capsys, _isolated_home):
    code, _, err = run(capsys, "ask", "general", LONG_FACTS + "Why?", "--max-tokens", "2")
    assert code == 0
    assert "amicus: reading the prompt:" in err and "tokens to read" in err
    assert "reading:" in err and "tok" in err  # tqdm's bar: "reading: 100%|...| N/N tok"
    assert (_isolated_home / "reading-rates.json").is_file()
    # The same document again, another question: restored from the state saved on exit.
    code, _, err = run(capsys, "ask", "general", LONG_FACTS + "Why not?", "--max-tokens", "2")
    assert code == 0 and "reading the prompt" not in err
    # Another document: announced with this machine's rate, measured by the first run.
    code, _, err = run(capsys, "ask", "general", "Other facts. " * 200, "--max-tokens", "2")
    assert code == 0 and "tokens/s measured on this machine" in err


def test_ctrl_c_stops_reading_and_the_next_run_continues(home, capsys, monkeypatch):
    real_feed = reading_module.ReadingBar.feed

    def interrupt_once_enough_is_read(self, event):
        real_feed(self, event)
        if isinstance(event, ReadingProgress) and event.read >= 300 and \
                not getattr(interrupt_once_enough_is_read, "sent", False):
            interrupt_once_enough_is_read.sent = True
            os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would

    monkeypatch.setattr(reading_module.ReadingBar, "feed", interrupt_once_enough_is_read)
    text = LONG_FACTS * 2
    code, out, err = run(capsys, "ask", "general", text, "--max-tokens", "2")
    assert code == 130, err
    assert "stopping (press Ctrl-C again to interrupt at once)" in err
    stopped = [line for line in err.splitlines() if "stopped while reading" in line]
    assert stopped and "run the same command again to continue from there" in stopped[0]
    read = int(stopped[0].split(": ")[2].split(" of ")[0].replace(",", ""))
    assert read >= 300
    monkeypatch.setattr(reading_module.ReadingBar, "feed", real_feed)
    code, out, _ = run(capsys, "ask", "general", text, "--max-tokens", "2", "--json")
    assert code == 0
    stats = json.loads(out)["stats"]
    assert stats["prompt_restored"] == read  # the new process did not read it again
    assert stats["prompt_evaluated"] == stats["prompt_tokens"] - read


def test_incognito_writes_nothing(home, capsys, _isolated_home):
    code, _, _ = run(capsys, "ask", "general", LONG_FACTS * 2, "--max-tokens", "2",
                     "--incognito")
    assert code == 0
    assert not (_isolated_home / "reading-rates.json").exists()
    assert not list((_isolated_home / "kv-states").glob("*.kvstate")) if \
        (_isolated_home / "kv-states").exists() else True
    code, _, _ = run(capsys, "ask", "general", LONG_FACTS * 2, "--max-tokens", "2")
    assert list((_isolated_home / "kv-states").glob("*.kvstate"))  # saved when not incognito


def test_audit_records_may_name_a_file(home, capsys, tmp_path):
    stories = tmp_path / "stories"
    stories.mkdir()
    (stories / "long-story.txt").write_bytes("A long story told at length.".encode("utf-16"))
    write_docx(stories / "story.docx", ["A story in Word."])
    records = stories / "records.jsonl"
    records.write_text("\n".join(json.dumps(r) for r in [
        {"ID": "a", "file": "long-story.txt", "intention": "To help."},
        {"ID": "b", "file": "story.docx", "intention": "To help."},
        {"ID": "c", "file": "missing.pdf", "intention": "To help."},
        {"ID": "d", "file": "story.docx", "situation": "Both.", "intention": "To help."},
    ]) + "\n", encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code, _, err = run(capsys, "audit", str(records), "--frame", "direct", "-o", str(out),
                       "--no-think", "--num-ctx", "2048")
    assert code == 0
    results = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert [(r["id"], r["file"]) for r in results] == [("a", "long-story.txt"),
                                                       ("b", "story.docx")]
    assert "[Context/Scenario/Background:] A long story told at length.\n" in \
        results[0]["prompt"]
    assert results[0]["stop_reason"] in ("stop", "length", "context")
    rejected = [json.loads(line) for line in
                (tmp_path / "out.jsonl.rejected.jsonl").read_text().splitlines()]
    assert [r["line"] for r in rejected] == [3, 4]
    assert "missing.pdf: no such file" in rejected[0]["reason"]
    assert "both a \"situation\" and a \"file\"" in rejected[1]["reason"]
    assert "line 3: skipped" in err


def test_classify_records_may_name_a_file(home, capsys, tmp_path, monkeypatch):
    from app.assistants.gate import IntentGate

    seen = []
    real = IntentGate.classify

    def spy(self, turns, threshold=None, **kwargs):
        seen.append(turns)
        return real(self, turns, threshold, **kwargs)

    monkeypatch.setattr(IntentGate, "classify", spy)
    write_pdf(tmp_path / "request.pdf", [["Please help me with this."]])
    data = tmp_path / "d.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in [
        {"id": "a", "file": "request.pdf"},
        {"id": "b", "file": "request.pdf",
         "turns": [{"role": "user", "content": "Read this."},
                   {"role": "assistant", "content": "ok"}]},
        {"id": "c", "file": ["not", "a", "name"]},
    ]) + "\n", encoding="utf-8")
    code, out, err = run(capsys, "classify", str(data))
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["a", "b"]
    block = '<document name="request.pdf" chars="25">\nPlease help me with this.\n</document>'
    assert seen[0] == [{"role": "user", "content": block}]
    assert seen[1][0] == {"role": "user", "content": f"{block}\n\nRead this."}
    assert 'line 3: skipped: "file" must be a file name' in err
