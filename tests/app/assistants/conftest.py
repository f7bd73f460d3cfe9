"""Installed models made by hand (a manifest, a stand-in GGUF file, the shipped Modelfile):
enough for everything that reads an installation without loading the model."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from app.assistants.registry import InstalledModel, find_model
from app.paths import modelfiles_dir
from converters.outputs.manifest import output_entry


def install(root: Path, name: str, *, demo: bool = True,
            kind: str = "chat") -> InstalledModel:
    folder = root / name
    folder.mkdir(parents=True)
    gguf = folder / f"{name}.Q4_K_M.gguf"
    gguf.write_bytes(b"GGUF" + name.encode() * 64)
    outputs = [output_entry(gguf, "model")]
    shipped = modelfiles_dir() / f"{name}.Modelfile"
    if shipped.is_file():
        shutil.copy(shipped, folder / "Modelfile")
        outputs.append(output_entry(folder / "Modelfile", "modelfile"))
    manifest = {"name": name, "demo": demo, "kind": kind, "quantization": "Q4_K_M",
                "architecture": "Qwen3ForCausalLM", "outputs": outputs}
    (folder / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return find_model(name, root)


@pytest.fixture
def installed(tmp_path) -> Callable[..., InstalledModel]:
    def make(name: str = "sentencing", **options: object) -> InstalledModel:
        return install(tmp_path / "models", name, **options)  # type: ignore[arg-type]

    return make


def corrupt(model: InstalledModel) -> None:
    data = bytearray(model.gguf.read_bytes())
    data[-1] ^= 0xFF
    model.gguf.write_bytes(bytes(data))
