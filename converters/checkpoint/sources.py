"""Resolve a SRC argument to a local directory: a path, or a Hugging Face repo id.

`org/name` or `org/name@revision` is fetched through huggingface_hub into its cache (with
its progress bars, the user's token for gated repos, and no network at all when
HF_HUB_OFFLINE=1 and the files are cached). Only the files conversion needs are fetched:
safetensors weights, JSON configs, tokenizer files, the model card.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

from converters.errors import InputError

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(@[\w./-]+)?$")
_WANTED_FILES = ["*.safetensors", "*.json", "tokenizer.model", "*.jinja", "README.md",
                 "LICENSE*"]


@dataclass(frozen=True)
class Source:
    """A resolved source: where its files are, and what it is."""

    spec: str
    path: Path
    is_adapter: bool
    repo_id: str | None = None
    revision: str | None = None  # the commit the files came from, for hub sources

    def describe(self) -> dict[str, str | None]:
        return {"spec": self.spec, "kind": "adapter" if self.is_adapter else "checkpoint",
                "repo_id": self.repo_id, "revision": self.revision,
                "path": None if self.repo_id else str(self.path.resolve())}


def resolve_source(spec: str) -> Source:
    """A local directory if one exists at `spec`, else a hub repo id."""
    local = Path(spec).expanduser()
    if local.exists():
        if not local.is_dir():
            raise InputError(f"{spec}: a source must be a directory (checkpoint or adapter)")
        return _classify(spec, local)
    if _REPO_ID.match(spec):
        repo_id, _, revision = spec.partition("@")
        path, commit = _download(repo_id, revision or None)
        return _classify(spec, path, repo_id=repo_id, revision=commit)
    raise InputError(f"{spec}: no such directory, and not a Hugging Face repo id (org/name)")


def _classify(spec: str, path: Path, **hub: str | None) -> Source:
    if (path / "adapter_config.json").is_file():
        return Source(spec, path, True, **hub)
    if (path / "config.json").is_file():
        return Source(spec, path, False, **hub)
    raise InputError(f"{spec}: neither a checkpoint (config.json) nor a PEFT adapter "
                     "(adapter_config.json)")


@functools.cache
def _download(repo_id: str, revision: str | None) -> tuple[Path, str]:
    """Fetch (or find cached) files of a hub repo. Returns the snapshot dir and its commit.
    Remembered for the process: a recipe looks at the fine-tune before the pipeline
    resolves it, and each lookup would otherwise ask the hub again."""
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import (
            GatedRepoError,
            LocalEntryNotFoundError,
            RepositoryNotFoundError,
            RevisionNotFoundError,
        )
    except ImportError as exc:  # pragma: no cover - a runtime dependency
        raise InputError("huggingface_hub is not installed; pass a local directory") from exc
    try:
        path = Path(snapshot_download(repo_id, revision=revision, allow_patterns=_WANTED_FILES))
    except GatedRepoError as exc:
        raise InputError(f"{repo_id} is gated: accept its conditions on huggingface.co, then "
                         "log in (`hf auth login`) or set HF_TOKEN") from exc
    except RevisionNotFoundError as exc:
        raise InputError(f"{repo_id}: revision {revision} not found") from exc
    except RepositoryNotFoundError as exc:
        raise InputError(f"{repo_id}: no such repository (or it is private: set HF_TOKEN)"
                         ) from exc
    except LocalEntryNotFoundError as exc:
        raise InputError(f"{repo_id}: not in the local Hugging Face cache, and the hub cannot "
                         "be reached (offline?)") from exc
    # Snapshots live in .../snapshots/<commit sha>/: that is the resolved revision.
    return path, path.name
