"""`amicus models list | verify | remove` on the demo models."""

from __future__ import annotations

import json

from tests.app.commands.conftest import run


def test_list_shows_every_model_with_its_status(home, capsys):
    code, out, _ = run(capsys, "models", "list", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) == {"moral-audit", "civic-qa", "intent-safety", "general", "sentencing"}
    assert rows["intent-safety"]["kind"] == "classifier"
    assert all(r["demo"] and r["quantization"] == "Q4_K_M" and r["size"] > 0
               for r in rows.values())
    assert {r["checksum"] for r in rows.values()} == {"not verified"}
    code, out, _ = run(capsys, "models")
    assert "demo: random weights" in out


def test_verify_detects_tampering(home, capsys):
    code, out, _ = run(capsys, "models", "verify")
    assert code == 0 and out.count(": ok") == 5
    gguf = home / "models" / "general" / "general.Q4_K_M.gguf"
    data = bytearray(gguf.read_bytes())
    data[-100] ^= 0xFF
    gguf.write_bytes(bytes(data))
    code, out, err = run(capsys, "models", "verify", "general")
    assert code == 2
    assert "sha256 differs" in out and "general" in err
    _, out, _ = run(capsys, "models", "list", "--json")
    assert {r["name"]: r["checksum"] for r in json.loads(out)}["general"] in ("changed",
                                                                             "FAILED")


def test_remove_needs_confirmation_without_a_terminal(home, capsys):
    code, _, err = run(capsys, "models", "remove", "general")
    assert code == 2 and "--yes" in err
    code, _, _ = run(capsys, "models", "remove", "general", "--yes")
    assert code == 0
    assert not (home / "models" / "general").exists()
    code, _, err = run(capsys, "models", "remove", "general", "--yes")
    assert code == 2 and "no installed model" in err


def test_demo_never_replaces_a_real_model(home, capsys):
    manifest_path = home / "models" / "general" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["demo"] = False  # as if `amicus convert general` had installed the real one
    manifest_path.write_text(json.dumps(manifest))
    before = (home / "models" / "general" / "general.Q4_K_M.gguf").stat().st_mtime_ns
    code, out, _ = run(capsys, "demo", "--rebuild")
    assert code == 0
    assert "general        a real model is installed" in out
    assert (home / "models" / "general" / "general.Q4_K_M.gguf").stat().st_mtime_ns == before
    assert json.loads(manifest_path.read_text())["demo"] is False
    code, out, _ = run(capsys, "demo")
    assert "demo already installed" in out


def test_list_details_shows_the_quality_report(home, capsys):
    code, out, _ = run(capsys, "models", "list", "--details")
    assert code == 0
    blocks = out.split("\n")
    for name in ("moral-audit", "civic-qa", "sentencing", "general", "intent-safety"):
        start = next(i for i, line in enumerate(blocks) if line.startswith(name))
        details = blocks[start + 1:start + 4]
        assert details[0].strip().startswith("importance matrix"), (name, details)
    assert "verdict agreement" in out  # the classifier
    assert "KL vs F16, mean / p99" in out and "fine-tune KL, base vs F16" in out
    code, out, _ = run(capsys, "models", "list", "--details", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert rows["general"]["quality"]["base"] is None  # a full fine-tune: no adapters
    assert rows["moral-audit"]["quality"]["base"]["kl_mean"] > 0
    assert rows["sentencing"]["calibration"]["set"] == "sentencing"
    code, out, _ = run(capsys, "models", "list", "--json")
    assert "quality" not in json.loads(out)[0]  # only with --details
