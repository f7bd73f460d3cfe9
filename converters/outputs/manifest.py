"""manifest.json: what was converted from what, with which tools, and the checksums."""

from __future__ import annotations

import hashlib
import json
import platform
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MANIFEST_NAME = "manifest.json"
# An installed model's name: its folder and the stem of its files (NAME.Q4_K_M.gguf).
_MODEL_NAME = re.compile(r"^[\w][\w.+-]{0,99}$")
MANIFEST_VERSION = 1
_CHUNK = 8 * 1024 * 1024


def valid_model_name(name: str) -> bool:
    return bool(_MODEL_NAME.match(name))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def tool_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for package in ("amicus", "llama-cpp-python", "gguf", "numpy"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "unknown"
    return versions


def output_entry(path: Path, role: str) -> dict[str, Any]:
    return {"file": path.name, "role": role, "size": path.stat().st_size,
            "sha256": sha256_file(path)}


def build_manifest(*, name: str, architecture: str, gguf_architecture: str, quantization: str,
                   sources: list[dict[str, Any]], outputs: list[dict[str, Any]],
                   verification: dict[str, Any] | None, merge: dict[str, Any],
                   demo: bool = False, classifier: bool = False,
                   calibration: dict[str, Any] | None = None,
                   quality: dict[str, Any] | None = None,
                   timings: dict[str, float] | None = None) -> dict[str, Any]:
    return {
        "manifest_version": MANIFEST_VERSION,
        "name": name,
        "demo": demo,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        # What the app needs to know without loading anything: a chat model or a classifier.
        "kind": "classifier" if classifier else "chat",
        "architecture": architecture,
        "gguf_architecture": gguf_architecture,
        "quantization": quantization,
        "sources": sources,
        "merge": merge,
        "outputs": outputs,
        "verification": verification,
        # The importance matrix quantization used (collected, from a file, or off).
        "calibration": calibration,
        # converters.verify.quality: drift of the output from the merged F16, and the
        # fine-tune's own effect; null when not measured (--no-quality, unquantized).
        "quality": quality,
        "timings": timings or {},  # seconds per step
        "tools": tool_versions(),
    }


def write_manifest(path: Path, manifest: dict[str, Any]) -> None:
    path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def read_manifest(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))
