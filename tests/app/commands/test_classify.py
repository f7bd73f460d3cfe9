"""`amicus classify` on the demo classifier: verdicts, thresholds, bad records."""

from __future__ import annotations

import json

from tests.app.commands.conftest import run

DIALOGUE = [{"role": "system", "content": "Character persona."},
            {"role": "assistant", "content": "Are you sure you want to stay here?"},
            {"role": "user", "content": "I step closer and whisper."}]


def _write(path, records):
    path.write_text("\n".join(records) + "\n", encoding="utf-8")
    return path


def test_verdicts_are_probability_pairs(home, capsys, tmp_path):
    data = _write(tmp_path / "d.jsonl", [json.dumps({"id": "a", "turns": DIALOGUE}),
                                         json.dumps({"id": "b", "messages": DIALOGUE[:2]}),
                                         json.dumps({"id": "c", "turns": []})])
    code, out, err = run(capsys, "classify", str(data))
    assert code == 0
    results = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in results] == ["a", "b"]
    for result in results:
        assert abs(result["prob_unsafe"] + result["prob_non_unsafe"] - 1) < 1e-4
        assert result["label_text"] == ("unsafe" if result["prob_unsafe"] >= 0.5
                                        else "non_unsafe")
    assert "line 3: skipped" in err


def test_threshold_decides_the_label(home, capsys, tmp_path):
    data = _write(tmp_path / "d.jsonl", [json.dumps({"turns": DIALOGUE})])
    _, out, _ = run(capsys, "classify", str(data), "--threshold", "0")
    assert json.loads(out)["label_text"] == "unsafe"
    _, out, _ = run(capsys, "classify", str(data), "--threshold", "1")
    assert json.loads(out)["label_text"] == "non_unsafe"
    code, _, err = run(capsys, "classify", str(data), "--threshold", "1.5")
    assert code == 2 and "threshold" in err


def test_output_file_resumes(home, capsys, tmp_path):
    data = _write(tmp_path / "d.jsonl", [json.dumps({"turns": DIALOGUE})] * 3)
    out = tmp_path / "v.jsonl"
    run(capsys, "classify", str(data), "-o", str(out))
    run(capsys, "classify", str(data), "-o", str(out))
    assert [json.loads(x)["line"] for x in out.read_text().splitlines()] == [1, 2, 3]


def test_every_verdict_carries_the_classifiers_provenance(home, capsys, tmp_path):
    data = _write(tmp_path / "d.jsonl", [json.dumps({"turns": DIALOGUE})] * 2)
    _, out, _ = run(capsys, "classify", str(data), "--threshold", "0.3")
    manifest = json.loads((home / "models" / "intent-safety" / "manifest.json").read_text())
    entry = next(o for o in manifest["outputs"] if o["role"] == "model")
    for line in out.splitlines():
        record = json.loads(line)["provenance"]
        assert record["assistant"] == "intent-safety"
        assert (record["model"]["sha256"], record["model"]["size"]) == (entry["sha256"],
                                                                       entry["size"])
        assert record["model"]["demo"] is True and record["classifier"]["threshold"] == 0.3
        assert record["backend"]["kind"] == "embedded" and record["num_ctx"] == 4096


def test_a_classifier_that_failed_verification_needs_allow_unverified(home, capsys, tmp_path):
    run(capsys, "models", "verify", "intent-safety")
    gguf = next((home / "models" / "intent-safety").glob("*.gguf"))
    data = bytearray(gguf.read_bytes())
    data[-100] ^= 0xFF
    gguf.write_bytes(bytes(data))
    run(capsys, "models", "verify", "intent-safety")
    dialogues = _write(tmp_path / "d.jsonl", [json.dumps({"turns": DIALOGUE})])
    out = tmp_path / "v.jsonl"
    code, _, err = run(capsys, "classify", str(dialogues), "-o", str(out))
    assert code == 2 and "--allow-unverified" in err and not out.exists()
    code, _, _ = run(capsys, "classify", str(dialogues), "-o", str(out), "--allow-unverified")
    assert code == 0
    record = json.loads(out.read_text())["provenance"]
    assert record["model"]["used_anyway"] is True
