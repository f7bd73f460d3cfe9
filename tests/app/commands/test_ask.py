from __future__ import annotations

import json
import re

import pytest

from app import __version__
from app.assistants.sentencing_case import NOT_LEGAL_ADVICE
from tests.app.commands.conftest import run
from tests.app.engine.test_openai_backend import DONE, chunk


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


def _manifest_entry(home, name):
    manifest = json.loads((home / "models" / name / "manifest.json").read_text())
    return next(o for o in manifest["outputs"] if o["role"] == "model")


def test_ask_json_carries_the_answers_provenance(home, capsys):
    code, out, _ = run(capsys, "ask", "sentencing", "盗窃罪如何量刑？", "--max-tokens", "3",
                       "--system", "请简要回答。", "--json")
    assert code == 0
    record = json.loads(out)["provenance"]
    entry = _manifest_entry(home, "sentencing")
    assert record["assistant"] == "sentencing"
    calibration = record["model"].pop("importance_matrix")
    assert record["model"] == {
        "name": "sentencing", "file": entry["file"], "sha256": entry["sha256"],
        "size": entry["size"], "quantization": "Q4_K_M", "demo": True,
        "verification": "not verified", "used_anyway": False}
    # The demo conversion collected its importance matrix on the sentencing set.
    assert re.fullmatch(r"collected \(sentencing\), \d x 512 tokens", calibration), calibration
    assert record["backend"]["kind"] == "embedded" and record["backend"]["threads"] >= 1
    assert record["num_ctx"] == 4096 and record["system_prompt"] == "请简要回答。"
    assert record["sampling"]["temperature"] == 0.2 and record["sampling"]["num_predict"] == 3
    assert record["sampling"]["stop"] == ["<|im_end|>", "<|im_start|>"]
    assert record["amicus_version"] == __version__


def test_a_model_that_failed_verification_needs_allow_unverified(home, capsys):
    assert run(capsys, "models", "verify", "general")[0] == 0
    gguf = home / "models" / "general" / "general.Q4_K_M.gguf"
    data = bytearray(gguf.read_bytes())
    data[-100] ^= 0xFF
    gguf.write_bytes(bytes(data))
    assert run(capsys, "models", "verify", "general")[0] == 2
    code, out, err = run(capsys, "ask", "general", "hi", "--max-tokens", "2")
    assert code == 2 and out == ""
    [line] = err.splitlines()
    assert line.startswith("amicus: error: general: verification FAILED")
    assert "--allow-unverified" in line
    code, out, err = run(capsys, "ask", "general", "hi", "--max-tokens", "2",
                         "--allow-unverified", "--json")
    assert code == 0
    model = json.loads(out)["provenance"]["model"]
    assert model["verification"] == "FAILED" and model["used_anyway"] is True


def test_ask_through_a_server_sends_the_assistants_name(home, capsys, fake):
    fake.script = [chunk(content="ok"), chunk("stop"), DONE]
    code, out, _ = run(capsys, "ask", "moral-audit", "hi", "--endpoint", fake.url, "--json")
    assert code == 0
    assert fake.requests[0]["body"]["model"] == "moral-audit"
    result = json.loads(out)
    assert result["answer"] == "ok"
    assert result["provenance"]["backend"] == {
        "kind": "endpoint", "url": f"{fake.url}/v1", "server_model": "moral-audit",
        "threads": None, "adaptive_threads": False, "gpu_layers": None, "total_layers": None}
    run(capsys, "ask", "moral-audit", "hi", "--endpoint", fake.url, "--model", "other")
    assert fake.requests[1]["body"]["model"] == "other"
