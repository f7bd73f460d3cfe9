"""A local Ollama model store, read-only: model names, manifests and blobs.

Layout (Ollama v0.33, manifest/ and types/model/): `$OLLAMA_MODELS` or `~/.ollama/models`
holds `manifests/<host>/<namespace>/<model>/<tag>`, an OCI-style JSON manifest whose
layers name blobs by digest, and `blobs/sha256-<hex>`. A model's layers: the GGUF
(application/vnd.ollama.image.model) and, as small text blobs, its template, system
prompt, parameters (JSON), license(s) and preset messages (JSON). Every blob read is
checked against its digest and size: a store that lies is refused, never half-used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from converters.errors import InputError

DEFAULT_HOST = "registry.ollama.ai"
DEFAULT_NAMESPACE = "library"
DEFAULT_TAG = "latest"
# Where the Linux installer's service keeps its models (user `ollama`).
SYSTEM_STORE = Path("/usr/share/ollama/.ollama/models")

MEDIA_PREFIX = "application/vnd.ollama.image."
MODEL = MEDIA_PREFIX + "model"
TEMPLATE = MEDIA_PREFIX + "template"
SYSTEM = MEDIA_PREFIX + "system"
PARAMS = MEDIA_PREFIX + "params"
LICENSE = MEDIA_PREFIX + "license"
MESSAGES = MEDIA_PREFIX + "messages"
ADAPTER = MEDIA_PREFIX + "adapter"
PROJECTOR = MEDIA_PREFIX + "projector"
CONFIG = "application/vnd.docker.container.image.v1+json"
_TEXT_LIMIT = 16 * 1024 * 1024  # a template or system prompt is never this large
_DIGEST = re.compile(r"sha256[:-]([0-9a-fA-F]{64})")
_CHUNK = 8 * 1024 * 1024


class OllamaStoreError(InputError):
    """The store, the model or one of its blobs is missing or does not match its digest."""


@dataclass(frozen=True)
class OllamaName:
    host: str
    namespace: str
    model: str
    tag: str

    def __str__(self) -> str:
        short = self.host == DEFAULT_HOST and self.namespace == DEFAULT_NAMESPACE
        base = self.model if short else (
            f"{self.namespace}/{self.model}" if self.host == DEFAULT_HOST
            else f"{self.host}/{self.namespace}/{self.model}")
        return f"{base}:{self.tag}"

    @property
    def parts(self) -> tuple[str, str, str, str]:
        return (self.host, self.namespace, self.model, self.tag)


def _valid_part(kind: str, text: str) -> bool:
    """types/model/name.go isValidPart."""
    if not 1 <= len(text) <= (350 if kind == "host" else 80):
        return False
    if not (text[0].isascii() and (text[0].isalnum() or text[0] == "_")):
        return False
    for char in text[1:]:
        if char in "_-" or (char.isascii() and char.isalnum()):
            continue
        if char == "." and kind != "namespace":
            continue
        if char == ":" and kind == "host":
            continue
        return False
    return True


def parse_name(text: str) -> OllamaName:
    """NAME[:TAG] as Ollama reads it: `model` is library/model:latest on
    registry.ollama.ai; `ns/model:tag` and `host/ns/model:tag` name the rest."""
    rest, tag = text, DEFAULT_TAG
    if rest.rfind(":") > rest.rfind("/"):
        rest, tag = rest.rsplit(":", 1)  # an empty tag stays empty: invalid, as in Ollama
    pieces = rest.split("/")
    if len(pieces) > 3:
        pieces = ["/".join(pieces[:-2]), *pieces[-2:]]
    host, namespace = DEFAULT_HOST, DEFAULT_NAMESPACE
    if len(pieces) == 3:
        host, namespace, model = pieces
        host = host.split("://", 1)[-1]
    elif len(pieces) == 2:
        namespace, model = pieces
    else:
        (model,) = pieces
    name = OllamaName(host, namespace, model, tag)
    for kind, part in zip(("host", "namespace", "model", "tag"), name.parts, strict=True):
        if not _valid_part(kind, part):
            raise OllamaStoreError(f"{text!r} is not an Ollama model name (its {kind} "
                                   f"{part!r} is not valid); use NAME[:TAG], e.g. "
                                   "demonbyron/qwen3-4b-CriminalLaw-cn:q4")
    return name


def store_candidates() -> list[Path]:
    """Where Ollama keeps models: $OLLAMA_MODELS when set (only there), else the user's
    ~/.ollama/models, then the Linux service's."""
    configured = os.environ.get("OLLAMA_MODELS")
    if configured:
        return [Path(configured).expanduser()]
    return [Path.home() / ".ollama" / "models", SYSTEM_STORE]


def find_store(explicit: Path | None = None) -> Path:
    candidates = [explicit] if explicit else store_candidates()
    for candidate in candidates:
        if (candidate / "manifests").is_dir():
            return candidate
    tried = " or ".join(str(c) for c in candidates)
    raise OllamaStoreError(f"no Ollama model store at {tried} (no manifests folder); set "
                           "OLLAMA_MODELS or pass --store DIR")


@dataclass(frozen=True)
class Layer:
    media_type: str
    digest: str  # sha256 hex
    size: int


@dataclass(frozen=True)
class OllamaModel:
    """A model in the store, its manifest read and its small blobs verified."""

    name: OllamaName
    store: Path
    manifest_path: Path
    manifest_sha256: str
    layers: tuple[Layer, ...]
    config: dict[str, Any]
    template: str | None
    system: str | None
    parameters: dict[str, Any]
    messages: tuple[dict[str, Any], ...]
    licenses: tuple[str, ...]

    @property
    def gguf(self) -> Layer:
        return next(layer for layer in self.layers if layer.media_type == MODEL)

    def blob_path(self, layer: Layer) -> Path:
        return blob_path(self.store, layer.digest)


def blob_path(store: Path, digest: str) -> Path:
    return store / "blobs" / f"sha256-{digest}"


def _manifest_path(store: Path, name: OllamaName) -> Path:
    """The manifest file; parts match case-insensitively as a last resort, as on the
    case-insensitive file systems Ollama also runs on."""
    path = store / "manifests"
    for part in name.parts:
        exact = path / part
        if exact.exists():
            path = exact
            continue
        matches = [p for p in path.iterdir() if p.name.lower() == part.lower()] if (
            path.is_dir()) else []
        if len(matches) != 1:
            raise OllamaStoreError(f"no model {name} in the Ollama store at {store} "
                                   "(`ollama list` shows what it holds)")
        path = matches[0]
    if not path.is_file():
        raise OllamaStoreError(f"no model {name} in the Ollama store at {store}")
    return path


def _layer(entry: Any, where: Path) -> Layer:
    if not isinstance(entry, dict):
        raise OllamaStoreError(f"{where}: a layer is not an object")
    media, digest, size = entry.get("mediaType"), entry.get("digest"), entry.get("size")
    match = _DIGEST.fullmatch(digest) if isinstance(digest, str) else None
    if not isinstance(media, str) or not match or not isinstance(size, int) or size < 0:
        raise OllamaStoreError(f"{where}: malformed layer {entry!r}")
    return Layer(media, match.group(1).lower(), size)


def _read_manifest(path: Path) -> tuple[str, tuple[Layer, ...], Layer | None]:
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise OllamaStoreError(f"{path}: not a JSON manifest ({exc})") from exc
    if not isinstance(data, dict) or not isinstance(data.get("layers"), list):
        raise OllamaStoreError(f"{path}: not an Ollama manifest (no layers)")
    layers = tuple(_layer(entry, path) for entry in data["layers"])
    config = _layer(data["config"], path) if isinstance(data.get("config"), dict) else None
    return hashlib.sha256(raw).hexdigest(), layers, config


def _check_layers(path: Path, layers: tuple[Layer, ...]) -> None:
    models = [layer for layer in layers if layer.media_type == MODEL]
    if len(models) != 1:
        raise OllamaStoreError(f"{path}: expected one GGUF model layer, found {len(models)}")
    if any(layer.media_type == ADAPTER for layer in layers):
        raise OllamaStoreError(f"{path}: the model applies a LoRA adapter layer at run time; "
                               "Amicus needs a merged model (convert the checkpoint instead)")


def verify_blob(path: Path, layer: Layer,
                progress: Callable[[int], None] | None = None) -> None:
    """The blob exists and has the manifest's size and sha256."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise OllamaStoreError(f"blob {path.name} is missing from the Ollama store "
                               f"(expected at {path})") from None
    if size != layer.size:
        raise OllamaStoreError(f"blob {path} is {size} bytes, the manifest says "
                               f"{layer.size}: the store is corrupt or still downloading")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
            if progress:
                progress(len(chunk))
    if digest.hexdigest() != layer.digest:
        raise OllamaStoreError(f"blob {path} does not match its sha256 digest: the store is "
                               "corrupt (`ollama pull` the model again)")


def _text_blob(store: Path, layer: Layer) -> str:
    if layer.size > _TEXT_LIMIT:
        raise OllamaStoreError(f"{layer.media_type} blob of {layer.size} bytes is too large")
    path = blob_path(store, layer.digest)
    verify_blob(path, layer)
    try:
        return path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        raise OllamaStoreError(f"blob {path} ({layer.media_type}) is not UTF-8 text") from exc


def _json_blob(store: Path, layer: Layer, kind: type) -> Any:
    try:
        value = json.loads(_text_blob(store, layer))
    except ValueError as exc:
        raise OllamaStoreError(f"{layer.media_type} blob sha256-{layer.digest} is not "
                               f"JSON ({exc})") from exc
    if not isinstance(value, kind):
        raise OllamaStoreError(f"{layer.media_type} blob sha256-{layer.digest} is not a "
                               f"JSON {kind.__name__}")
    return value


def _single(store: Path, layers: tuple[Layer, ...], media: str) -> str | None:
    found = [layer for layer in layers if layer.media_type == media]
    return _text_blob(store, found[-1]) if found else None


def open_model(store: Path, name: OllamaName) -> OllamaModel:
    """Read the model's manifest and verify every blob but the GGUF (see verify_blob)."""
    manifest_path = _manifest_path(store, name)
    manifest_sha, layers, config_layer = _read_manifest(manifest_path)
    _check_layers(manifest_path, layers)
    parameters: dict[str, Any] = {}
    for layer in layers:
        if layer.media_type == PARAMS:
            parameters.update(_json_blob(store, layer, dict))
    messages: list[dict[str, Any]] = []
    for layer in layers:
        if layer.media_type == MESSAGES:
            found = _json_blob(store, layer, list)
            if not all(isinstance(message, dict) for message in found):
                raise OllamaStoreError(f"{MESSAGES} blob sha256-{layer.digest} is not a list "
                                       "of message objects")
            messages.extend(found)
    return OllamaModel(
        name=name, store=store, manifest_path=manifest_path, manifest_sha256=manifest_sha,
        layers=layers,
        config=_json_blob(store, config_layer, dict) if config_layer else {},
        template=_single(store, layers, TEMPLATE), system=_single(store, layers, SYSTEM),
        parameters=parameters, messages=tuple(messages),
        licenses=tuple(_text_blob(store, la) for la in layers if la.media_type == LICENSE))
