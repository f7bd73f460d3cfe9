from __future__ import annotations

import json

import pytest

from app.assistants.sentencing_case import NOT_LEGAL_ADVICE
from tests.app.commands.conftest import run


def test_ask_streams_an_answer_and_says_it_is_a_demo(home, capsys):
    code, out, err = run(capsys, "ask", "general", "Hello there", "--max-tokens", "8")
    assert code == 0
    assert out.strip()
    assert "demo model" in err


def test_ask_json_reports_stats(home, capsys):
    code, out, _ = run(capsys, "ask", "moral-audit", "Is honesty a duty?", "--max-tokens", "6",
                       "--no-think", "--json")
    assert code == 0
    result = json.loads(out)
    assert result["assistant"] == "moral-audit" and result["demo"] is True
    assert result["stats"]["completion_tokens"] == 6
    assert result["stats"]["stop_reason"] == "length"
    assert result["thinking"] == ""
    assert "CPU" in result["backend"] or "GPU" in result["backend"]


def test_sentencing_answers_carry_the_notice(home, capsys):
    code, out, _ = run(capsys, "ask", "sentencing", "盗窃罪如何量刑？", "--max-tokens", "4")
    assert code == 0
    assert out.rstrip().endswith(NOT_LEGAL_ADVICE)
    code, out, _ = run(capsys, "ask", "sentencing", "盗窃罪如何量刑？", "--max-tokens", "4",
                       "--json")
    assert json.loads(out)["answer"].endswith(NOT_LEGAL_ADVICE)


def test_system_prompt_comes_from_the_modelfile_unless_given(home, capsys, monkeypatch):
    import app.commands.ask as ask

    seen = {}
    real = ask._stream

    def spy(assistant, args, text):
        seen["system"] = args.system if args.system is not None else assistant.profile.system
        return real(assistant, args, text)

    monkeypatch.setattr(ask, "_stream", spy)
    run(capsys, "ask", "civic-qa", "台灣是什麼？", "--max-tokens", "2")
    assert "繁體中文" in seen["system"] or "Traditional Chinese" in seen["system"]
    run(capsys, "ask", "civic-qa", "hi", "--max-tokens", "2", "--system", "Be brief.")
    assert seen["system"] == "Be brief."


@pytest.mark.parametrize(("argv", "message"), [
    (("ask", "nobody", "hi"), "no installed model named 'nobody'"),
    (("ask", "intent-safety", "hi"), "is a classifier"),
    (("ask", "general", "   "), "empty"),
])
def test_bad_requests_exit_2_with_one_line(home, capsys, argv, message):
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert len([line for line in err.splitlines() if line.startswith("amicus:")]) == 1


def test_the_gate_blocks_unsafe_questions(home, capsys, monkeypatch):
    from app.assistants import gate as gate_module
    from app.engine.classifier import verdict_from

    monkeypatch.setattr(gate_module.IntentGate, "check",
                        lambda self, history, text, **_: verdict_from([0.1, 0.9], 0.5))
    code, out, err = run(capsys, "ask", "general", "something", "--gate")
    assert code == 3
    assert out == ""
    assert "p_unsafe=0.900" in err
    monkeypatch.setattr(gate_module.IntentGate, "check",
                        lambda self, history, text, **_: verdict_from([0.8, 0.2], 0.5))
    code, out, _ = run(capsys, "ask", "general", "something", "--gate", "--max-tokens", "2",
                       "--json")
    assert code == 0
    assert json.loads(out)["gate"]["label_text"] == "non_unsafe"
