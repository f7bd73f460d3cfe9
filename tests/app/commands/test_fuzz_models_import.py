"""Fuzzing what `amicus models import-ollama` reads from an Ollama store: the manifest, the
small blobs (params, messages, template, system, config) and the GGUF header. Blobs are
mutated with their digest and size rewritten in the manifest (a store that holds together
but says odd things), so the readers behind the digest check are reached. Refused with one
line, or read; never another exception or a hang."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cli import main
from app.commands import models
from converters.ollama.store import open_model, parse_name
from tests.tools.fuzzing import (
    JSON_VALUES,
    dump_json,
    fuzz_settings,
    mutated_bytes,
    mutated_json,
    refused_or_read,
)
from tests.tools.ollama_store import IMAGE, add_model

NAME = "registry.ollama.ai/clinic/sentencing:q4"
TEMPLATE = "{{ range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
PARAMS = {"num_ctx": 4096, "stop": ["<|im_end|>"], "temperature": 0.2}


@pytest.fixture(scope="module")
def store_template(demo_models, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ollama") / "models"
    gguf = next((demo_models / "sentencing").glob("*.gguf"))
    add_model(root, NAME, gguf, template=TEMPLATE, system="系统提示", params=PARAMS,
              messages=[{"role": "user", "content": "hi"}], licenses=("Apache-2.0",))
    return root


def _manifest(store: Path) -> Path:
    return store / "manifests" / "registry.ollama.ai" / "clinic" / "sentencing" / "q4"


def _read(store: Path, *, header: bool = False) -> None:
    """What import-ollama reads before llama.cpp loads the GGUF (its header only when
    `header`: gguf's reader takes a while)."""
    model = open_model(store, parse_name(NAME))
    if header:
        models._gguf_details(model.blob_path(model.gguf), model.config)
    models._modelfile_text(model, "sentencing.Q4_K_M.gguf")


def _replace_blob(store: Path, media: str, data: bytes) -> None:
    """Swap one layer's blob for `data`, its digest and size updated in the manifest."""
    manifest = json.loads(_manifest(store).read_text())
    digest = hashlib.sha256(data).hexdigest()
    (store / "blobs" / f"sha256-{digest}").write_bytes(data)
    layers = [manifest["config"], *manifest["layers"]]
    layer = next(la for la in layers if la["mediaType"] == media)
    layer.update(digest=f"sha256:{digest}", size=len(data))
    _manifest(store).write_text(json.dumps(manifest))


def _blob(store: Path, media: str) -> bytes:
    manifest = json.loads(_manifest(store).read_text())
    layer = next(la for la in [manifest["config"], *manifest["layers"]]
                 if la["mediaType"] == media)
    return (store / "blobs" / layer["digest"].replace(":", "-")).read_bytes()


@pytest.fixture
def store(store_template, tmp_path) -> Path:
    root = tmp_path / "models"
    shutil.copytree(store_template, root, dirs_exist_ok=True)
    return root


@fuzz_settings(60)
@given(data=st.data())
def test_damaged_manifests_are_refused_or_read(store_template, tmp_path, data):
    root = tmp_path / "models"
    shutil.copytree(store_template, root, dirs_exist_ok=True)
    manifest = json.loads(_manifest(root).read_text())
    mutated = data.draw(mutated_json(manifest, focus=("layers", "config", "digest", "size",
                                                      "mediaType")))
    _manifest(root).write_bytes(dump_json(mutated))
    refused_or_read(lambda: _read(root))


_JSON_BLOBS = [IMAGE + "params", IMAGE + "messages",
               "application/vnd.docker.container.image.v1+json"]


@fuzz_settings(40)
@given(media=st.sampled_from(_JSON_BLOBS), data=st.data())
def test_damaged_json_blobs_are_refused_or_read(store_template, tmp_path, media, data):
    root = tmp_path / "models"
    shutil.copytree(store_template, root, dirs_exist_ok=True)
    doc = json.loads(_blob(root, media))
    _replace_blob(root, media, dump_json(data.draw(mutated_json(doc))))
    refused_or_read(lambda: _read(root))


@fuzz_settings(40)
@given(media=st.sampled_from([IMAGE + "template", IMAGE + "system", IMAGE + "license"]),
       text=st.text(max_size=200) | st.binary(max_size=200))
def test_any_text_blob_is_refused_or_read(store_template, tmp_path, media, text):
    root = tmp_path / "models"
    shutil.copytree(store_template, root, dirs_exist_ok=True)
    data = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    _replace_blob(root, media, data)
    refused_or_read(lambda: _read(root))


@fuzz_settings(30)
@given(data=st.data())
def test_damaged_gguf_headers_are_refused_or_read(store_template, tmp_path, data):
    root = tmp_path / "models"
    shutil.copytree(store_template, root, dirs_exist_ok=True)
    blob = _blob(root, IMAGE + "model")
    _replace_blob(root, IMAGE + "model", data.draw(mutated_bytes(blob, hot=40_000)))
    refused_or_read(lambda: _read(root, header=True))


@fuzz_settings(30)
@given(params=st.dictionaries(st.sampled_from(["num_ctx", "stop", "temperature", "seed",
                                               "mirostat", "top_k", "penalize_newline",
                                               "num_gpu", "unknown"]), JSON_VALUES, max_size=5))
def test_any_params_blob_is_refused_or_read(store_template, tmp_path, params):
    root = tmp_path / "models"
    shutil.copytree(store_template, root, dirs_exist_ok=True)
    _replace_blob(root, IMAGE + "params", dump_json(params))
    refused_or_read(lambda: _read(root))


# ---------------------------------------------------------------------------- through the CLI


@pytest.mark.parametrize("damage", ["truncated gguf", "manifest not json", "size lies",
                                    "layers not a list"])
def test_import_refuses_a_damaged_store_with_one_line(store, home, capsys, monkeypatch,
                                                      damage):
    monkeypatch.setenv("OLLAMA_MODELS", str(store))
    if damage == "truncated gguf":
        blob = _blob(store, IMAGE + "model")
        _replace_blob(store, IMAGE + "model", blob[: len(blob) // 3])
    elif damage == "manifest not json":
        _manifest(store).write_bytes(b"\x00\x01{")
    elif damage == "size lies":
        manifest = json.loads(_manifest(store).read_text())
        manifest["layers"][0]["size"] += 1
        _manifest(store).write_text(json.dumps(manifest))
    else:
        manifest = json.loads(_manifest(store).read_text())
        manifest["layers"] = {"0": manifest["layers"][0]}
        _manifest(store).write_text(json.dumps(manifest))
    code = main(["models", "import-ollama", "clinic/sentencing:q4", "--as", "imported"])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("amicus:")]
    assert code == 2 and len(lines) == 1 and "internal error" not in lines[0], err
    assert not (home / "models" / "imported").exists()
