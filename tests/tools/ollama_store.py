"""A synthetic Ollama model store, laid out exactly as Ollama writes one (v0.33):
`manifests/<host>/<namespace>/<model>/<tag>` (schema 2 JSON, a docker config layer, one
layer per part) and content-addressed `blobs/sha256-<hex>`."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

MANIFEST_MEDIA = "application/vnd.docker.distribution.manifest.v2+json"
CONFIG_MEDIA = "application/vnd.docker.container.image.v1+json"
IMAGE = "application/vnd.ollama.image."


def write_blob(store: Path, data: bytes, media_type: str) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    blobs = store / "blobs"
    blobs.mkdir(parents=True, exist_ok=True)
    (blobs / f"sha256-{digest}").write_bytes(data)
    return {"mediaType": media_type, "digest": f"sha256:{digest}", "size": len(data)}


def _json(value: Any) -> bytes:
    return (json.dumps(value, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def add_model(store: Path, name: str, gguf: Path, *, template: str | None = None,
              system: str | None = None, params: dict[str, Any] | None = None,
              messages: list[dict[str, str]] | None = None, licenses: tuple[str, ...] = (),
              family: str = "qwen3", extra_layers: tuple[dict[str, Any], ...] = ()) -> Path:
    """Add `host/namespace/model:tag` (all four parts given) and return its manifest."""
    location, tag = name.rsplit(":", 1)
    model_layer = write_blob(store, gguf.read_bytes(), IMAGE + "model")
    layers = [model_layer]
    for media, text in (("template", template), ("system", system)):
        if text is not None:
            layers.append(write_blob(store, text.encode(), IMAGE + media))
    layers.extend(write_blob(store, text.encode(), IMAGE + "license") for text in licenses)
    if params is not None:
        layers.append(write_blob(store, _json(params), IMAGE + "params"))
    if messages is not None:
        layers.append(write_blob(store, _json(messages), IMAGE + "messages"))
    layers.extend(extra_layers)
    config = {"model_format": "gguf", "model_family": family, "model_families": [family],
              "model_type": "4.0B", "file_type": "Q4_K_M", "architecture": "amd64",
              "os": "linux", "rootfs": {"type": "layers",
                                        "diff_ids": [la["digest"] for la in layers]}}
    manifest = {"schemaVersion": 2, "mediaType": MANIFEST_MEDIA,
                "config": write_blob(store, _json(config), CONFIG_MEDIA), "layers": layers}
    path = store / "manifests" / location / tag
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(_json(manifest))
    return path


def blob_of(store: Path, manifest: Path, media_suffix: str) -> Path:
    layers = json.loads(manifest.read_text())["layers"]
    layer = next(la for la in layers if la["mediaType"] == IMAGE + media_suffix)
    return store / "blobs" / layer["digest"].replace(":", "-")
