"""SRC resolution: local directories, and hub repo ids served from the local cache."""

from __future__ import annotations

import shutil

import pytest
from huggingface_hub import constants

from converters.checkpoint.sources import resolve_source
from converters.errors import InputError
from converters.pipeline import ConvertRequest, Progress, convert
from converters.synthetic import checkpoints as synthetic

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A Hugging Face cache laid out as huggingface_hub writes it, with offline mode on."""
    cache = tmp_path / "hub"
    repo = cache / "models--clinic--tiny-qwen3"
    snapshot = repo / "snapshots" / COMMIT
    synthetic.build_qwen3(tmp_path / "built")
    shutil.copytree(tmp_path / "built", snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(COMMIT)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    return cache


def test_local_directories_are_classified(tmp_path):
    base = synthetic.build_qwen3(tmp_path / "base").path
    adapter = synthetic.build_adapter(tmp_path / "lora", base, synthetic.ADAPTER_KINDS["lora"])
    assert resolve_source(str(base)).is_adapter is False
    assert resolve_source(str(adapter)).is_adapter is True
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="neither a checkpoint"):
        resolve_source(str(tmp_path / "empty"))
    with pytest.raises(InputError, match="must be a directory"):
        resolve_source(str(base / "config.json"))
    with pytest.raises(InputError, match="no such directory"):
        resolve_source(str(tmp_path / "missing dir"))


def test_cached_repo_id_resolves_to_its_commit(hub_cache):
    source = resolve_source("clinic/tiny-qwen3")
    assert (source.repo_id, source.revision) == ("clinic/tiny-qwen3", COMMIT)
    pinned = resolve_source(f"clinic/tiny-qwen3@{COMMIT}")
    assert pinned.path == source.path


def test_convert_from_a_repo_id_records_the_revision(hub_cache, tmp_path):
    result = convert(ConvertRequest(base="clinic/tiny-qwen3", name="m", out_dir=tmp_path / "o",
                                    quant="F16"), Progress(enabled=False))
    (base,) = result.manifest["sources"]
    assert base["repo_id"] == "clinic/tiny-qwen3"
    assert base["revision"] == COMMIT
    assert base["path"] is None  # no local path leaks into the manifest for hub sources
