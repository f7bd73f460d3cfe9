"""Persisted KV cache states: a case reopened tomorrow is not read again.

    store = KVStateStore.default()                  # <data dir>/kv-states, budget 4 GiB
    store.save(model_key, tokens, write, size)      # `write(path)`: llama.cpp writes the file
    found = store.best(model_key, prompt_tokens, whole_only=False, limit=n_ctx)

Each state is two files: `<name>.kvstate`, written by llama.cpp's own sequence-state writer
(the tokens and their keys and values), and `<name>.json`, our record: the model it belongs
to, the token prefix it holds, its size, its sha256, the llama-cpp-python version that
wrote it. A state is keyed by the model file's sha256 (with the cache type) and its token
prefix: restored only into the same model, and only for a prompt that starts with those
tokens. Nothing in it is trusted on its word: before a state is loaded its size and sha256
are checked against the record; a record that does not parse, a state from another
llama-cpp-python, a file that is missing, truncated or altered is removed, never loaded.

The folder is capped by a disk budget: after each save the least recently used states go
until the rest fits. States can be large (a 4B model's KV cache is about 144 KB per token:
430 MB for a 3,000-token case), so a prompt shorter than MIN_SAVED_TOKENS, which reads in
seconds, is never saved. The incognito app never opens a store, so never writes one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.engine.prefix import common_prefix
from app.paths import data_dir
from converters.outputs.manifest import sha256_file

FORMAT = 1
DEFAULT_BUDGET_BYTES = 4 * 1024**3
MIN_SAVED_TOKENS = 256
_STALE_TEMP_SECONDS = 3600  # a temporary file this old is a crashed writer's leftover


def _llama_version() -> str:
    """The writer's version (from the installed metadata: importing llama_cpp loads the
    library, which a store opened only to list its states does not need)."""
    from importlib.metadata import version

    return version("llama-cpp-python")


@dataclass(frozen=True)
class SavedState:
    name: str
    directory: Path
    model: str
    tokens: tuple[int, ...]
    size: int
    sha256: str
    last_used: float
    owner: str | None = None  # the conversation whose reading it is, when known

    @property
    def path(self) -> Path:
        return self.directory / f"{self.name}.kvstate"

    @property
    def record(self) -> Path:
        return self.directory / f"{self.name}.json"


def _tokens_digest(tokens: Sequence[int]) -> str:
    return hashlib.sha256(",".join(map(str, tokens)).encode()).hexdigest()


class KVStateStore:
    """The saved states under one folder, within `budget_bytes` on disk."""

    def __init__(self, directory: Path, budget_bytes: int = DEFAULT_BUDGET_BYTES) -> None:
        self.directory = directory
        self.budget_bytes = budget_bytes
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)

    @classmethod
    def default(cls, budget_bytes: int | None = None) -> KVStateStore:
        return cls(cls.default_directory(),
                   DEFAULT_BUDGET_BYTES if budget_bytes is None else budget_bytes)

    @staticmethod
    def default_directory() -> Path:
        return data_dir() / "kv-states"

    # ---------------------------------------------------------------- reading

    def entries(self, model: str | None = None) -> list[SavedState]:
        """The states whose records are sound (those that are not are removed), oldest use
        first; only `model`'s when given."""
        found = []
        for record in sorted(self.directory.glob("*.json")):
            entry = self._read(record)
            if entry is not None and (model is None or entry.model == model):
                found.append(entry)
        self._sweep()
        return sorted(found, key=lambda e: e.last_used)

    def _read(self, record: Path) -> SavedState | None:
        name = record.name.removesuffix(".json")
        try:
            data: dict[str, Any] = json.loads(record.read_text(encoding="utf-8"))
            owner = data.get("owner")
            entry = SavedState(name, self.directory, str(data["model"]),
                               tuple(int(t) for t in data["tokens"]), int(data["size"]),
                               str(data["sha256"]), record.stat().st_mtime,
                               owner if isinstance(owner, str) else None)
            fresh = data.get("format") == FORMAT and data.get("llama_cpp") == _llama_version()
        except (OSError, ValueError, KeyError, TypeError):
            entry, fresh = None, False
        if entry is None or not fresh or not entry.path.is_file():
            self._remove(name)  # unreadable, from another writer version, or orphaned
            return None
        return entry

    def _sweep(self) -> None:
        """Remove state files without a record and temporary files left by a crash (a file
        another thread is renaming or removing meanwhile is passed over)."""
        now = time.time()
        for path in self.directory.iterdir():
            stray = path.suffix == ".kvstate" and not path.with_suffix(".json").exists()
            if not stray and not path.name.endswith(".tmp"):
                continue
            with contextlib.suppress(FileNotFoundError):
                if now - path.stat().st_mtime > _STALE_TEMP_SECONDS:
                    path.unlink(missing_ok=True)

    def best(self, model: str, tokens: Sequence[int], *, whole_only: bool,
             limit: int) -> tuple[SavedState, int] | None:
        """The state sharing the longest prefix with `tokens`, and that prefix's length.
        `whole_only`: only states that are a prefix of `tokens` entirely and shorter than
        it (a model with recurrent layers cannot cut its state back, and the prompt's last
        token must be read again for its logits). `limit`: the context's size."""
        best: tuple[SavedState, int] | None = None
        for entry in self.entries(model):
            if len(entry.tokens) > limit:
                continue
            shared = common_prefix(entry.tokens, tokens)
            if whole_only and (shared < len(entry.tokens) or shared == len(tokens)):
                continue
            if shared and (best is None or shared > best[1]):
                best = (entry, shared)
        return best

    def covers(self, model: str, tokens: Sequence[int]) -> bool:
        """Whether a saved state already holds `tokens` (as all or the start of its own)."""
        return any(common_prefix(e.tokens, tokens) == len(tokens) for e in self.entries(model))

    def verified(self, entry: SavedState) -> bool:
        """The state file is the one the record describes (size and sha256); otherwise it
        is removed and False returned."""
        try:
            ok = entry.path.stat().st_size == entry.size and \
                sha256_file(entry.path) == entry.sha256
        except OSError:
            ok = False
        if not ok:
            self.discard(entry)
        return ok

    def touch(self, entry: SavedState) -> None:
        """Mark as just used (the least recently used go first when over budget)."""
        with contextlib.suppress(OSError):
            os.utime(entry.record)

    def total_size(self) -> int:
        return sum(e.size for e in self.entries())

    # ---------------------------------------------------------------- writing

    def save(self, model: str, tokens: Sequence[int], write: Callable[[Path], bool],
             size: int, *, supersede: bool, owner: str | None = None) -> SavedState | None:
        """Save a state: `write(path)` writes it (llama.cpp does); `size` is its expected
        size, checked against the budget first. `supersede`: remove this model's states that
        the new one contains (a model that can cut its cache serves their prompts too).
        `owner`: the conversation it was read for (`discard_owned` removes it with the
        conversation). None when it is too short, over budget alone, or the writer failed."""
        if len(tokens) < MIN_SAVED_TOKENS or size > self.budget_bytes:
            return None
        name = f"{model[:16]}-{_tokens_digest(tokens)[:24]}"
        state = self.directory / f"{name}.kvstate"
        temporary = self.directory / f"{name}.kvstate.tmp"
        try:
            if not write(temporary):
                return None
            os.chmod(temporary, 0o600)
            digest, written = sha256_file(temporary), temporary.stat().st_size
            os.replace(temporary, state)
            self._write_record(name, {"format": FORMAT, "model": model,
                                      "llama_cpp": _llama_version(), "tokens": list(tokens),
                                      "size": written, "sha256": digest,
                                      "saved_at": time.time(), "owner": owner})
        finally:
            temporary.unlink(missing_ok=True)
        entry = self._read(self.directory / f"{name}.json")
        if entry is not None and supersede:
            for older in self.entries(model):
                if older.name != name and common_prefix(older.tokens, tokens) == len(older.tokens):
                    self.discard(older)
        self._evict(keep=name)
        return entry

    def _write_record(self, name: str, data: dict[str, Any]) -> None:
        temporary = self.directory / f"{name}.json.tmp"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(data, handle)
        os.replace(temporary, self.directory / f"{name}.json")

    def _evict(self, keep: str) -> None:
        entries = self.entries()
        total = sum(e.size for e in entries)
        for entry in entries:  # least recently used first
            if total <= self.budget_bytes:
                break
            if entry.name != keep:
                self.discard(entry)
                total -= entry.size

    def discard(self, entry: SavedState) -> None:
        self._remove(entry.name)

    def discard_owned(self, *owners: str) -> int:
        """Remove every state read for the conversations `owners` (deleted: their text
        must not outlive them in a saved cache). Returns how many went."""
        owned = [entry for entry in self.entries() if entry.owner in owners]
        for entry in owned:
            self.discard(entry)
        return len(owned)

    def _remove(self, name: str) -> None:
        for suffix in (".json", ".kvstate"):
            (self.directory / f"{name}{suffix}").unlink(missing_ok=True)

    def clear(self) -> None:
        for entry in self.entries():
            self.discard(entry)


_HASHES = "model-hashes.cache"  # JSON, but not "*.json": those are the states' records


def model_key(store: KVStateStore, path: Path, sha256: str | None = None,
              cache_type: str = "f16") -> str:
    """The key a model's states are saved under: its file's sha256 (the manifest's when
    given, else computed once and remembered by path, size and modification time) and the
    KV cache type (a state holds keys and values in that type)."""
    if sha256 is None:
        stat = path.stat()
        fingerprint = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        memo_path = store.directory / _HASHES
        try:
            memo = json.loads(memo_path.read_text(encoding="utf-8"))
            memo = memo if isinstance(memo, dict) else {}
        except (OSError, ValueError):
            memo = {}
        sha256 = memo.get(fingerprint)
        if not isinstance(sha256, str):
            sha256 = sha256_file(path)
            memo[fingerprint] = sha256
            temporary = memo_path.with_suffix(".tmp")
            temporary.write_text(json.dumps(memo), encoding="utf-8")
            os.replace(temporary, memo_path)
    return f"{sha256}-{cache_type}"
