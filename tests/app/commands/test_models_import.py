"""`amicus models import-ollama`: a model from a synthetic Ollama store becomes an Amicus
assistant the app can load; a missing or corrupt store gets one clear line, exit 2, and
nothing installed."""

from __future__ import annotations

import errno
import json
import os

import pytest

from app.assistants.profiles import load_profile
from app.cli import main
from app.paths import models_dir
from converters.llama_runtime import load_llama
from converters.ollama.modelfile import read_modelfile
from converters.outputs.manifest import sha256_file
from converters.pipeline import ConvertRequest, Progress, convert
from converters.synthetic import chat_templates
from converters.synthetic import checkpoints as synthetic
from tests.tools.ollama_store import add_model, blob_of

NAME = "demonbyron/qwen3-4b-CriminalLaw-cn:q4"
FULL = "registry.ollama.ai/" + NAME
TEMPLATE = ('{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}'
            '{{ range .Messages }}{{ if eq .Role "user" }}<|im_start|>user\n{{ .Content }}'
            '<|im_end|>\n<|im_start|>assistant\n{{ else if eq .Role "assistant" }}'
            '{{ .Content }}<|im_end|>\n{{ end }}{{ end }}')
SYSTEM = "你是一个专业、严谨且客观的AI刑事审判辅助系统。\n\u3000\u3000依据用户提供的事实作答。"
PARAMS = {"num_ctx": 4096, "stop": ["<|im_end|>"], "temperature": 0.2, "top_p": 0.9,
          "mirostat": 0}


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    """A Q4_K_M GGUF of a synthetic Qwen3-Instruct, converted by the real pipeline."""
    root = tmp_path_factory.mktemp("import-gguf")
    source = synthetic.build_qwen3(root / "src",
                                   chat_template=chat_templates.QWEN3_INSTRUCT_CHAT_TEMPLATE)
    request = ConvertRequest(base=str(source.path), name="q", out_dir=root / "out",
                             quant="Q4_K_M")
    return convert(request, Progress(enabled=False)).outputs[0]


@pytest.fixture
def store(tmp_path, gguf_file, monkeypatch):
    root = tmp_path / "ollama" / "models"
    add_model(root, FULL, gguf_file, template=TEMPLATE, system=SYSTEM, params=PARAMS,
              messages=[{"role": "user", "content": "示例"}])
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    return root


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["models", "import-ollama", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _refused(capsys, *argv: str, match: str) -> None:
    code, _, err = _run(capsys, *argv)
    errors = [line for line in err.splitlines() if line.startswith("amicus: error")]
    assert code == 2, err
    assert len(errors) == 1, err
    assert match in errors[0], errors[0]
    assert not any(models_dir().iterdir())


def test_import_installs_a_loadable_assistant(capsys, store, gguf_file):
    code, out, err = _run(capsys, NAME, "--as", "sentencing")
    assert code == 0, err
    target = models_dir() / "sentencing"
    gguf = target / "sentencing.Q4_K_M.gguf"
    assert sorted(p.name for p in target.iterdir()) == [
        "Modelfile", "manifest.json", "sentencing.Q4_K_M.gguf"]
    blob = blob_of(store, store / "manifests/registry.ollama.ai/demonbyron"
                   "/qwen3-4b-CriminalLaw-cn/q4", "model")
    assert os.path.samefile(gguf, blob)  # a hard link: no second copy of the weights
    assert "hard link" in out

    modelfile = read_modelfile(target / "Modelfile")
    assert modelfile.from_ == "./sentencing.Q4_K_M.gguf"
    assert modelfile.template == TEMPLATE
    assert modelfile.system == SYSTEM.replace("\u3000", " ")  # Ollama would drop U+3000
    assert modelfile.parameters == {"num_ctx": 4096, "stop": ("<|im_end|>",),
                                    "temperature": 0.2, "top_p": 0.9}
    assert modelfile.messages == (("user", "示例"),)
    assert "U+3000 IDEOGRAPHIC SPACE" in err and "mirostat" in err

    manifest = json.loads((target / "manifest.json").read_text())
    reference = convert(ConvertRequest(base=str(synthetic.build_llama(
        models_dir().parent / "ref-src").path), name="r", out_dir=models_dir().parent / "ref",
        quant="F16", verify=False), Progress(enabled=False)).manifest
    assert manifest.keys() == reference.keys()
    model_entry = manifest["outputs"][0]
    assert model_entry["sha256"] == sha256_file(gguf) == sha256_file(gguf_file)
    assert model_entry["size"] == gguf.stat().st_size
    assert manifest["outputs"][1]["sha256"] == sha256_file(target / "Modelfile")
    assert manifest["quantization"] == "Q4_K_M"
    assert manifest["gguf_architecture"] == "qwen3"
    assert manifest["sources"][0]["name"] == NAME
    assert manifest["verification"]["loaded"] is True

    profile = load_profile(target / "Modelfile")
    assert profile.name == "sentencing" and profile.model_path == gguf.resolve()
    assert profile.stop == ("<|im_end|>",) and profile.n_ctx == 4096
    llm = load_llama(profile.model_path)
    assert llm.n_vocab() > 0
    llm.close()


def test_default_name_and_tag(capsys, store):
    code, _, err = _run(capsys, NAME)
    assert code == 0, err
    assert (models_dir() / "qwen3-4b-CriminalLaw-cn-q4" / "manifest.json").is_file()


def test_another_file_system_gets_a_symlink_or_with_copy_a_copy(capsys, store, monkeypatch):
    def cross_device(*_args, **_kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(os, "link", cross_device)
    code, out, _ = _run(capsys, NAME, "--as", "linked")
    gguf = models_dir() / "linked" / "linked.Q4_K_M.gguf"
    assert code == 0 and gguf.is_symlink() and "symbolic link" in out and "--copy" in out
    code, out, _ = _run(capsys, NAME, "--as", "copied", "--copy")
    gguf = models_dir() / "copied" / "copied.Q4_K_M.gguf"
    assert code == 0 and not gguf.is_symlink() and "copied" in out
    assert gguf.stat().st_nlink == 1


def test_reinstall_needs_force(capsys, store):
    assert _run(capsys, NAME, "--as", "s")[0] == 0
    code, _, err = _run(capsys, NAME, "--as", "s")
    assert code == 2 and "--force" in err
    assert _run(capsys, NAME, "--as", "s", "--force")[0] == 0


def test_missing_store(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "none"))
    _refused(capsys, NAME, match="no Ollama model store at")


def test_missing_model(capsys, store):
    _refused(capsys, "demonbyron/unknown:q4", match="no model demonbyron/unknown:q4")


def test_bad_name(capsys, store):
    _refused(capsys, "demonbyron/bad name", match="not an Ollama model name")


def test_corrupt_gguf_blob(capsys, store):
    blob = blob_of(store, store / "manifests/registry.ollama.ai/demonbyron"
                   "/qwen3-4b-CriminalLaw-cn/q4", "model")
    data = bytearray(blob.read_bytes())
    data[-100] ^= 0xFF
    blob.write_bytes(bytes(data))
    _refused(capsys, NAME, match="does not match its sha256")


def test_missing_gguf_blob(capsys, store):
    blob_of(store, store / "manifests/registry.ollama.ai/demonbyron"
            "/qwen3-4b-CriminalLaw-cn/q4", "model").unlink()
    _refused(capsys, NAME, match="missing from the Ollama store")


def test_a_model_layer_that_is_not_a_gguf(capsys, tmp_path, monkeypatch):
    root = tmp_path / "models-store"
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf at all" * 100)
    add_model(root, "registry.ollama.ai/library/fake:latest", fake)
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    _refused(capsys, "fake", match="not a readable GGUF")
