"""`amicus convert` on the command line: its contract, and one clear line with exit 2 for
every kind of bad input, with nothing left in the output directory."""

from __future__ import annotations

import json
import shutil
import struct

import pytest

from app.cli import main
from converters.synthetic import checkpoints as synthetic


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _assert_refused(capsys, out_dir, *argv, match: str) -> str:
    code, _, err = _run(capsys, "convert", *argv, "--name", "m", "--out", str(out_dir))
    lines = [line for line in err.splitlines() if line.startswith("amicus:")]
    assert code == 2, err
    assert len(lines) == 1, err
    assert match in lines[0], lines[0]
    assert not out_dir.exists() or list(out_dir.iterdir()) == []
    return lines[0]


@pytest.fixture
def qwen3(tmp_path):
    return synthetic.build_qwen3(tmp_path / "qwen3").path


def test_help_describes_the_contract(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["convert", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--base", "--adapter", "--name", "--out", "--quant", "--modelfile",
                 "--keep-intermediate", "--no-verify", "--json", "moral-audit", "Q4_K_M",
                 "--imatrix FILE|off", "--imatrix-out", "--calibration", "--no-quality"):
        assert flag in text


def test_json_summary_and_modelfile(tmp_path, capsys, qwen3):
    modelfile = tmp_path / "template.Modelfile"
    modelfile.write_text('FROM qwen3\nSYSTEM """You are careful."""\nPARAMETER num_ctx 4096\n')
    code, out, _ = _run(capsys, "convert", "--base", str(qwen3), "--name", "m", "--out",
                        str(tmp_path / "out"), "--modelfile", str(modelfile), "--json")
    assert code == 0
    summary = json.loads(out)
    assert [p.rsplit("/", 1)[-1] for p in summary["outputs"]] == [
        "m.Q4_K_M.gguf", "Modelfile", "manifest.json"]
    assert summary["manifest"]["quantization"] == "Q4_K_M"
    written = (tmp_path / "out" / "Modelfile").read_text()
    assert written.startswith("FROM ./m.Q4_K_M.gguf\n")
    assert 'SYSTEM """You are careful."""' in written


def test_missing_arguments(tmp_path, capsys):
    code, _, err = _run(capsys, "convert", "--base", str(tmp_path))
    assert code == 2 and "--name" in err and "--out" in err


def _corrupt(tmp_path, qwen3, mutate) -> str:
    bad = tmp_path / "bad"
    shutil.copytree(qwen3, bad)
    path = bad / "model.safetensors"
    data = bytearray(path.read_bytes())
    path.write_bytes(mutate(data))
    return str(bad)


def _header(data: bytearray) -> tuple[int, dict]:
    (length,) = struct.unpack("<Q", data[:8])
    return length, json.loads(data[8:8 + length])


def _with_header(data: bytearray, header: dict) -> bytes:
    length, _ = _header(data)
    blob = json.dumps(header).encode()
    return struct.pack("<Q", len(blob)) + blob + bytes(data[8 + length:])


def _first_tensor(header):
    return next(k for k in header if k != "__metadata__")


def _unknown_dtype(data):
    _, header = _header(data)
    header[_first_tensor(header)]["dtype"] = "F8_E9"
    return _with_header(data, header)


def _overlap(data):
    _, header = _header(data)
    names = [k for k in header if k != "__metadata__"]
    a, b = header[names[0]], header[names[1]]
    size = b["data_offsets"][1] - b["data_offsets"][0]
    b["data_offsets"] = [a["data_offsets"][0], a["data_offsets"][0] + size]
    return _with_header(data, header)


def _out_of_range(data):
    _, header = _header(data)
    entry = header[_first_tensor(header)]
    size = entry["data_offsets"][1] - entry["data_offsets"][0]
    entry["data_offsets"] = [len(data), len(data) + size]
    return _with_header(data, header)


@pytest.mark.parametrize(("mutate", "match"), [
    (lambda d: bytes(d[: len(d) // 2]), "beyond the file size"),
    (lambda d: struct.pack("<Q", 10**9) + bytes(d[8:]), "header length"),
    (_unknown_dtype, "unknown dtype"),
    (_overlap, "overlap"),
    (_out_of_range, "beyond the file size"),
], ids=["truncated", "header-length", "unknown-dtype", "overlap", "out-of-range"])
def test_corrupt_checkpoints(tmp_path, capsys, qwen3, mutate, match):
    bad = _corrupt(tmp_path, qwen3, mutate)
    _assert_refused(capsys, tmp_path / "out", "--base", bad, match=match)


def test_pickled_weights_are_never_opened(tmp_path, capsys, qwen3):
    bad = tmp_path / "pickled"
    shutil.copytree(qwen3, bad)
    (bad / "model.safetensors").unlink()
    (bad / "pytorch_model.bin").write_bytes(b"\x80\x04 would run code if unpickled")
    _assert_refused(capsys, tmp_path / "out", "--base", str(bad), match="never unpickles")


def test_unsupported_architecture_lists_the_supported_ones(tmp_path, capsys, qwen3):
    bad = tmp_path / "gpt2"
    shutil.copytree(qwen3, bad)
    config = json.loads((bad / "config.json").read_text())
    config["architectures"] = ["GPT2LMHeadModel"]
    (bad / "config.json").write_text(json.dumps(config))
    line = _assert_refused(capsys, tmp_path / "out", "--base", str(bad),
                           match="unsupported architecture GPT2LMHeadModel")
    assert "Qwen3ForCausalLM" in line and "LlamaForCausalLM" in line


def test_missing_tokenizer(tmp_path, capsys, qwen3):
    bad = tmp_path / "notok"
    shutil.copytree(qwen3, bad)
    (bad / "tokenizer.json").unlink()
    _assert_refused(capsys, tmp_path / "out", "--base", str(bad), match="tokenizer.json")


def test_adapter_for_another_base(tmp_path, capsys, qwen3):
    llama = synthetic.build_llama(tmp_path / "llama").path
    adapter = synthetic.build_adapter(tmp_path / "lora", qwen3, synthetic.ADAPTER_KINDS["lora"])
    line = _assert_refused(capsys, tmp_path / "out", "--base", str(llama), "--adapter",
                           str(adapter), match="lora")
    assert "adapter for another base" in line or "shape" in line


@pytest.mark.parametrize(("option", "value", "match"), [
    ("init_lora_weights", "pissa", "pissa"),
    ("use_qalora", True, "use_qalora"),
    ("peft_type", "IA3", "IA3"),
])
def test_unmergeable_adapter_options(tmp_path, capsys, qwen3, option, value, match):
    adapter = synthetic.build_adapter(tmp_path / "lora", qwen3, synthetic.ADAPTER_KINDS["lora"])
    config = json.loads((adapter / "adapter_config.json").read_text())
    config[option] = value
    (adapter / "adapter_config.json").write_text(json.dumps(config))
    _assert_refused(capsys, tmp_path / "out", "--base", str(qwen3), "--adapter", str(adapter),
                    match=match)


def test_recipe_without_hub_weights_says_what_to_pass(tmp_path, capsys):
    code, _, err = _run(capsys, "convert", "intent-safety", "--out", str(tmp_path / "o"))
    assert code == 2
    assert "--base DIR" in err


def test_recipe_with_a_local_fine_tune(tmp_path, capsys):
    clf = synthetic.build_qwen3_classifier(tmp_path / "clf").path
    code, _, err = _run(capsys, "convert", "intent-safety", "--base", str(clf), "--out",
                        str(tmp_path / "o"))
    assert code == 0, err
    assert (tmp_path / "o" / "intent-safety.Q4_K_M.gguf").is_file()
    assert not (tmp_path / "o" / "Modelfile").exists()  # no Modelfile for a classifier


def test_a_bad_modelfile_is_refused_before_any_work(tmp_path, capsys, qwen3, monkeypatch):
    import converters.pipeline as pipeline

    def never(*args, **kwargs):
        raise AssertionError("converted although the Modelfile is invalid")

    monkeypatch.setattr(pipeline, "write_gguf", never)
    bad = tmp_path / "bad.Modelfile"
    bad.write_text("FROM x\nPARAMETER num_ctx 4096.0\n")
    line = _assert_refused(capsys, tmp_path / "out", "--base", str(qwen3), "--modelfile",
                           str(bad), match="num_ctx")
    assert "2" in line  # the line number


def test_prints_the_quality_report_and_records_it(tmp_path, capsys, qwen3):
    code, out, err = _run(capsys, "convert", "--base", str(qwen3), "--name", "m", "--out",
                          str(tmp_path / "out"), "--imatrix-out", str(tmp_path / "m.imatrix"))
    assert code == 0, err
    assert "calibrate (importance matrix)" in err and "quality: quantized" in err  # bars
    lines = out.splitlines()
    assert any(line.startswith("importance matrix") and "collected (general)" in line
               for line in lines)
    assert any(line.startswith("KL vs F16, mean / p99") for line in lines)
    assert any(line.startswith("top-1 agreement") for line in lines)
    assert lines[-1].startswith("done in ") and "calibrate" in lines[-1]
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["calibration"]["written_to"] == str(tmp_path / "m.imatrix")
    assert (tmp_path / "m.imatrix").read_bytes()[:4] == b"GGUF"


def test_imatrix_off_and_no_quality(tmp_path, capsys, qwen3):
    code, out, err = _run(capsys, "convert", "--base", str(qwen3), "--name", "m", "--out",
                          str(tmp_path / "out"), "--imatrix", "off", "--no-quality", "--json")
    assert code == 0, err
    manifest = json.loads(out)["manifest"]
    assert manifest["calibration"] == {"imatrix": "off", "reason": "--imatrix off"}
    assert manifest["quality"] is None
    assert "calibrate" not in manifest["timings"]
    assert "quality_reference" not in manifest["timings"]


def test_an_imatrix_from_a_file_is_used(tmp_path, capsys, qwen3):
    first = tmp_path / "first.imatrix.gguf"
    assert _run(capsys, "convert", "--base", str(qwen3), "--name", "m", "--out",
                str(tmp_path / "a"), "--no-quality", "--imatrix-out", str(first))[0] == 0
    code, out, err = _run(capsys, "convert", "--base", str(qwen3), "--name", "m", "--out",
                          str(tmp_path / "b"), "--no-quality", "--imatrix", str(first), "--json")
    assert code == 0, err
    calibration = json.loads(out)["manifest"]["calibration"]
    assert calibration["imatrix"] == "file" and calibration["file"] == str(first)
    assert "calibrate (importance matrix)" not in err  # nothing collected
    assert "calibrate" not in json.loads(out)["manifest"]["timings"]


def test_own_calibration_text(tmp_path, capsys, qwen3):
    text = tmp_path / "cal.txt"
    text.write_text("The court considered the evidence carefully. " * 400, encoding="utf-8")
    code, out, err = _run(capsys, "convert", "--base", str(qwen3), "--name", "m", "--out",
                          str(tmp_path / "out"), "--calibration", str(text), "--no-quality",
                          "--json")
    assert code == 0, err
    calibration = json.loads(out)["manifest"]["calibration"]
    assert calibration["set"] is None and calibration["datasets"] == [str(text)]
    assert calibration["chunks"] >= 2


@pytest.mark.parametrize(("args", "match"), [
    (["--imatrix", "missing.gguf"], "--imatrix missing.gguf: no such file"),
    (["--imatrix", "off", "--imatrix-out", "x.gguf"], "--imatrix is off"),
    (["--imatrix-out", "/nonexistent/dir/x.gguf"], "no such directory"),
    (["--calibration", "missing.txt"], "--calibration missing.txt: no such file"),
    (["--calibration", "cal.txt", "--imatrix", "off"], "none is collected"),
    (["--calibration", "cal.txt", "--quant", "Q8_0"], "none is collected with --quant Q8_0"),
    (["--quant", "F16", "--imatrix-out", "x.gguf"], "--quant F16 uses no importance matrix"),
])
def test_bad_calibration_options(tmp_path, capsys, qwen3, args, match, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "cal.txt").write_text("text", encoding="utf-8")
    _assert_refused(capsys, tmp_path / "out", "--base", str(qwen3), *args, match=match)


def test_bad_calibration_and_imatrix_files(tmp_path, capsys, qwen3):
    short = tmp_path / "short.txt"
    short.write_text("Too short to calibrate on.", encoding="utf-8")
    _assert_refused(capsys, tmp_path / "o1", "--base", str(qwen3), "--calibration", str(short),
                    match="at least 1024 are needed")
    binary = tmp_path / "binary.txt"
    binary.write_bytes(b"\0\1\2" * 100)
    _assert_refused(capsys, tmp_path / "o2", "--base", str(qwen3), "--calibration", str(binary),
                    match="binary")
    not_imatrix = tmp_path / "x.dat"
    not_imatrix.write_bytes(b"\xff\xff\xff\xff")
    _assert_refused(capsys, tmp_path / "o3", "--base", str(qwen3), "--imatrix",
                    str(not_imatrix), match="not an importance matrix")
