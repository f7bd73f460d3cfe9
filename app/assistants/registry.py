"""Installed models: `models/<name>/` under the data directory, each holding a GGUF, its
Modelfile (chat assistants) and manifest.json (sources, checksums, demo flag).

Checksums are verified on request (`amicus models verify`), since hashing gigabytes takes
seconds; the result is remembered next to the manifest together with each file's size and
modification time, so `amicus models list` can show it without re-reading the files, and a
model whose verification FAILED is not loaded unless the user says so (`check_verified`).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.paths import models_dir
from converters.errors import InputError
from converters.outputs.manifest import MANIFEST_NAME, sha256_file

VERIFIED_NAME = ".verified.json"
FAILED = "FAILED"  # the checksum status of a model whose files did not match its manifest


class NotInstalledError(InputError):
    """No installed model of that name, or one that cannot serve as asked."""

    title = "The assistant is not available"


class UnverifiedModelError(InputError):
    """The model's last verification FAILED: it is not loaded unless the user says so
    (`--allow-unverified`; in the app, "use anyway"). `model` and `problems` let the app's
    dialog offer to verify again, remove it, or use it anyway."""

    title = "The model failed verification"

    def __init__(self, model: InstalledModel) -> None:
        self.model = model
        self.problems = model.verification_problems()
        detail = "; ".join(self.problems) or "checksums differ from the manifest"
        super().__init__(f"{model.name}: verification FAILED ({detail}); verify it again "
                         f"(`amicus models verify {model.name}`), remove it, or pass "
                         "--allow-unverified to use it anyway")



@dataclass(frozen=True)
class InstalledModel:
    name: str
    directory: Path
    manifest: dict[str, Any]

    @property
    def gguf(self) -> Path:
        for output in self.manifest.get("outputs", []):
            if output.get("role") == "model":
                return self.directory / output["file"]
        raise InputError(f"{self.directory / MANIFEST_NAME}: lists no model file")

    @property
    def modelfile(self) -> Path | None:
        path = self.directory / "Modelfile"
        return path if path.is_file() else None

    @property
    def demo(self) -> bool:
        return bool(self.manifest.get("demo"))

    @property
    def quantization(self) -> str:
        return str(self.manifest.get("quantization", "?"))

    @property
    def is_classifier(self) -> bool:
        kind = self.manifest.get("kind")
        if kind is not None:
            return kind == "classifier"
        # Manifests written before "kind": ask the architecture registry (loads gguf).
        from converters.gguf.architectures import is_classifier_class

        return is_classifier_class(str(self.manifest.get("architecture")))

    @property
    def size(self) -> int:
        return sum(int(o.get("size", 0)) for o in self.manifest.get("outputs", []))

    def checksum_status(self) -> str:
        """"verified", "changed" (files differ from the last verification), or
        "not verified" — without hashing anything."""
        record = _read_json(self.directory / VERIFIED_NAME)
        if not record:
            return "not verified"
        for output in self.manifest.get("outputs", []):
            path = self.directory / output["file"]
            seen = record.get(output["file"])
            if not path.exists() or seen != _fingerprint(path):
                return "changed"
        return "verified" if record.get("ok") else FAILED

    def verification_problems(self) -> list[str]:
        """What the last verification found wrong (empty if it passed or never ran)."""
        record = _read_json(self.directory / VERIFIED_NAME) or {}
        problems = record.get("problems")
        return [str(p) for p in problems] if isinstance(problems, list) else []


def human_size(n: int) -> str:
    """A model's size as the model list and the app's model manager both show it."""
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GB"


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _fingerprint(path: Path) -> list[int]:
    stat = path.stat()
    return [stat.st_size, stat.st_mtime_ns]


def installed_models(root: Path | None = None) -> list[InstalledModel]:
    """Every folder of the models directory that holds a manifest, by name."""
    root = root or models_dir()
    found = []
    for directory in sorted(p for p in root.iterdir() if p.is_dir()) if root.is_dir() else []:
        manifest = _read_json(directory / MANIFEST_NAME)
        if manifest is not None:
            found.append(InstalledModel(directory.name, directory, manifest))
    return found


def find_model(name: str, root: Path | None = None) -> InstalledModel:
    models = {m.name: m for m in installed_models(root)}
    if name in models:
        return models[name]
    available = ", ".join(models) or "none (run `amicus demo`, `amicus convert` or "
    "`amicus models import-ollama`)"
    raise NotInstalledError(f"no installed model named {name!r}; installed: {available}")


def verify_model(model: InstalledModel) -> list[str]:
    """Check every output's size and sha256 against the manifest. Returns the problems
    (empty when all is well) and remembers the result for `checksum_status`."""
    problems = []
    record: dict[str, Any] = {}
    for output in model.manifest.get("outputs", []):
        path = model.directory / output["file"]
        if not path.is_file():
            problems.append(f"{output['file']}: missing")
            continue
        if path.stat().st_size != int(output["size"]):
            problems.append(f"{output['file']}: size {path.stat().st_size}, manifest says "
                            f"{output['size']}")
        elif sha256_file(path) != output["sha256"]:
            problems.append(f"{output['file']}: sha256 differs from the manifest (corrupt or "
                            "tampered)")
        record[output["file"]] = _fingerprint(path)
    record["ok"] = not problems
    record["problems"] = problems
    (model.directory / VERIFIED_NAME).write_text(json.dumps(record), encoding="utf-8")
    return problems


def check_verified(model: InstalledModel, *, allow_unverified: bool = False) -> bool:
    """Refuse a model whose verification FAILED (UnverifiedModelError) unless allowed;
    returns whether it is being used anyway (recorded in every answer's provenance). A
    model never verified, or changed since, loads: its provenance says so."""
    if model.checksum_status() != FAILED:
        return False
    if not allow_unverified:
        raise UnverifiedModelError(model)
    return True


def remove_model(model: InstalledModel) -> None:
    """Delete an installed model's folder (a hard-linked Ollama blob stays in Ollama)."""
    shutil.rmtree(model.directory)
