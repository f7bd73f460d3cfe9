"""converters.ollama.store reads a local Ollama store as Ollama lays it out, and refuses
a store that does not hold together (missing parts, digests that do not match)."""

from __future__ import annotations

import json

import pytest

from converters.errors import InputError
from converters.ollama.store import (
    OllamaName,
    OllamaStoreError,
    find_store,
    open_model,
    parse_name,
    verify_blob,
)
from converters.pipeline import ConvertRequest, Progress, convert
from converters.synthetic import chat_templates
from converters.synthetic import checkpoints as synthetic
from tests.tools.ollama_store import IMAGE, add_model, blob_of, write_blob

NAME = "registry.ollama.ai/demonbyron/qwen3-4b-CriminalLaw-cn:q4"
TEMPLATE = "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
SYSTEM = "你是一个专业、严谨且客观的AI刑事审判辅助系统。"
PARAMS = {"num_ctx": 4096, "stop": ["<|im_end|>"], "temperature": 0.2, "top_p": 0.9}


@pytest.fixture(scope="module")
def gguf_file(tmp_path_factory):
    root = tmp_path_factory.mktemp("store-gguf")
    source = synthetic.build_qwen3(root / "src",
                                   chat_template=chat_templates.QWEN3_INSTRUCT_CHAT_TEMPLATE)
    request = ConvertRequest(base=str(source.path), name="m", out_dir=root / "out",
                             quant="Q4_K_M", verify=False)
    return convert(request, Progress(enabled=False)).outputs[0]


@pytest.fixture
def store(tmp_path, gguf_file):
    root = tmp_path / "models"
    add_model(root, NAME, gguf_file, template=TEMPLATE, system=SYSTEM, params=PARAMS,
              messages=[{"role": "user", "content": "hi"}], licenses=("Apache-2.0",))
    return root


@pytest.mark.parametrize(("text", "parts"), [
    ("qwen3", ("registry.ollama.ai", "library", "qwen3", "latest")),
    ("qwen3:4b", ("registry.ollama.ai", "library", "qwen3", "4b")),
    ("demonbyron/qwen3-4b-CriminalLaw-cn:q4",
     ("registry.ollama.ai", "demonbyron", "qwen3-4b-CriminalLaw-cn", "q4")),
    ("example.com:5000/team/model:v1.2", ("example.com:5000", "team", "model", "v1.2")),
    ("https://example.com/team/model", ("example.com", "team", "model", "latest")),
])
def test_names_read_as_ollama_reads_them(text, parts):
    assert parse_name(text).parts == parts


@pytest.mark.parametrize("text", ["", "a/b/c/d/e", "model:", "team.x/model", "bad name",
                                  "-model", "model:a:b", "a" * 81])
def test_invalid_names_are_refused(text):
    with pytest.raises(OllamaStoreError, match="not an Ollama model name"):
        parse_name(text)


def test_short_names_print_short():
    assert str(parse_name("qwen3")) == "qwen3:latest"
    assert str(parse_name("demonbyron/m:q4")) == "demonbyron/m:q4"
    assert str(OllamaName("h", "n", "m", "t")) == "h/n/m:t"


def test_open_model_reads_every_part(store, gguf_file):
    model = open_model(store, parse_name(NAME))
    assert model.template == TEMPLATE
    assert model.system == SYSTEM
    assert model.parameters == PARAMS
    assert model.messages == ({"role": "user", "content": "hi"},)
    assert model.licenses == ("Apache-2.0",)
    assert model.config["file_type"] == "Q4_K_M"
    assert model.gguf.size == gguf_file.stat().st_size
    assert model.blob_path(model.gguf).read_bytes() == gguf_file.read_bytes()
    verify_blob(model.blob_path(model.gguf), model.gguf)


def test_store_location(store, tmp_path, monkeypatch):
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    assert find_store() == store
    assert find_store(store) == store
    monkeypatch.setenv("OLLAMA_MODELS", str(tmp_path / "nowhere"))
    with pytest.raises(OllamaStoreError, match=r"no Ollama model store at .*nowhere"):
        find_store()
    monkeypatch.delenv("OLLAMA_MODELS")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(OllamaStoreError, match=r"\.ollama/models"):
        find_store()


def test_missing_model_is_named(store):
    with pytest.raises(OllamaStoreError, match="no model demonbyron/other:q4 in the Ollama"):
        open_model(store, parse_name("demonbyron/other:q4"))
    with pytest.raises(OllamaStoreError, match="no model"):
        open_model(store, parse_name("demonbyron/qwen3-4b-CriminalLaw-cn"))  # tag latest


def test_names_match_case_insensitively_as_a_last_resort(store):
    model = open_model(store, parse_name("DemonByron/QWEN3-4b-criminallaw-cn:Q4"))
    assert model.system == SYSTEM


@pytest.mark.parametrize("part", ["system", "template", "params", "messages", "license"])
def test_a_corrupt_text_blob_is_refused(store, part):
    blob = blob_of(store, store / "manifests/registry.ollama.ai/demonbyron"
                   "/qwen3-4b-CriminalLaw-cn/q4", part)
    data = bytearray(blob.read_bytes())
    data[0] ^= 1
    blob.write_bytes(bytes(data))
    with pytest.raises(OllamaStoreError, match="does not match its sha256"):
        open_model(store, parse_name(NAME))


def test_missing_and_truncated_blobs(store):
    model = open_model(store, parse_name(NAME))
    blob = model.blob_path(model.gguf)
    blob.write_bytes(blob.read_bytes()[:-1])
    with pytest.raises(OllamaStoreError, match="the manifest says"):
        verify_blob(blob, model.gguf)
    blob.unlink()
    with pytest.raises(OllamaStoreError, match="missing from the Ollama store"):
        verify_blob(blob, model.gguf)


def test_a_flipped_byte_in_the_gguf_is_caught(store):
    model = open_model(store, parse_name(NAME))
    blob = model.blob_path(model.gguf)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x40
    blob.write_bytes(bytes(data))
    with pytest.raises(OllamaStoreError, match="does not match its sha256"):
        verify_blob(blob, model.gguf)


def _manifest(store):
    return store / "manifests/registry.ollama.ai/demonbyron/qwen3-4b-CriminalLaw-cn/q4"


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda m: "not json", "not a JSON manifest"),
    (lambda m: json.dumps({"schemaVersion": 2}), "no layers"),
    (lambda m: json.dumps({**m, "layers": [{**m["layers"][0], "digest": "md5:00"}]}),
     "malformed layer"),
    (lambda m: json.dumps({**m, "layers": m["layers"][1:]}), "found 0"),
    (lambda m: json.dumps({**m, "layers": [m["layers"][0], *m["layers"]]}), "found 2"),
])
def test_malformed_manifests_are_refused(store, mutate, message):
    path = _manifest(store)
    path.write_text(mutate(json.loads(path.read_text())))
    with pytest.raises(OllamaStoreError, match=message):
        open_model(store, parse_name(NAME))


def test_models_with_an_adapter_layer_are_refused(tmp_path, gguf_file):
    root = tmp_path / "models"
    adapter = write_blob(root, b"lora", IMAGE + "adapter")
    add_model(root, "registry.ollama.ai/library/m:latest", gguf_file, extra_layers=(adapter,))
    with pytest.raises(OllamaStoreError, match="LoRA adapter layer"):
        open_model(root, parse_name("m"))


def test_errors_are_input_errors():
    assert issubclass(OllamaStoreError, InputError)
