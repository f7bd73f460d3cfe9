"""Fuzzing installed models' manifest.json (what `amicus models`, the app's model list and
every load read): a damaged manifest leaves that model out of the list and is named, with
one line, when the model is asked for; never another exception or a hang."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.assistants.registry import (
    find_model,
    installed_models,
    verify_model,
)
from converters.outputs.manifest import build_manifest, output_entry, write_manifest
from tests.tools.fuzzing import dump_json, fuzz_settings, mutated_json, refused_or_read


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """models/clinic/: a (stand-in) GGUF, a Modelfile and the manifest convert writes."""
    root = tmp_path_factory.mktemp("models")
    directory = root / "clinic"
    directory.mkdir()
    (directory / "clinic.Q4_K_M.gguf").write_bytes(b"GGUF" + bytes(60))
    (directory / "Modelfile").write_text("FROM ./clinic.Q4_K_M.gguf\n")
    manifest = build_manifest(
        name="clinic", architecture="Qwen3ForCausalLM", gguf_architecture="qwen3",
        quantization="Q4_K_M", sources=[], verification=None, merge={"adapters": 0},
        outputs=[output_entry(directory / "clinic.Q4_K_M.gguf", "model"),
                 output_entry(directory / "Modelfile", "modelfile")])
    write_manifest(directory / "manifest.json", manifest)
    return root


def _use(root: Path) -> None:
    """What the model list, `amicus models verify` and a load read."""
    for model in installed_models(root):
        (model.gguf, model.modelfile, model.demo, model.quantization, model.is_classifier,
         model.size, model.checksum_status())
        verify_model(model)
        model.checksum_status()
    find_model("clinic", root)


@fuzz_settings(60)
@given(data=st.data())
def test_damaged_manifests_are_refused_or_read(installed, tmp_path, data):
    root = tmp_path / "models"
    shutil.copytree(installed, root, dirs_exist_ok=True)
    (root / "clinic" / ".verified.json").unlink(missing_ok=True)
    manifest = json.loads((root / "clinic" / "manifest.json").read_text())
    mutated = data.draw(mutated_json(manifest, focus=("outputs", "file", "size", "sha256",
                                                      "role", "kind", "demo",
                                                      "architecture")))
    (root / "clinic" / "manifest.json").write_bytes(dump_json(mutated))
    refused_or_read(lambda: _use(root))


@pytest.mark.parametrize("outputs", [None, [], [{"file": "../../etc/passwd", "role": "model",
                                                 "size": 1, "sha256": "x"}],
                                     [{"role": "model"}], "clinic.gguf"])
def test_a_damaged_manifest_is_named_when_its_model_is_asked_for(installed, tmp_path,
                                                                  outputs):
    root = tmp_path / "models"
    shutil.copytree(installed, root)
    path = root / "clinic" / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "outputs": outputs}))
    assert installed_models(root) == []
    error = refused_or_read(lambda: find_model("clinic", root), names=str(path))
    assert "manifest is damaged" in str(error)
