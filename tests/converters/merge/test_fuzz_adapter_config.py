"""Fuzzing adapter_config.json: any field replaced by a value of another type or range,
dropped or added is refused with one line, or merged; never another exception or a hang.
The merge runs over every tensor, so a value that passes reading but breaks the arithmetic
(a zero rank, a NaN alpha, a pattern that is not a number) is found too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from converters.checkpoint.safetensors_io import Checkpoint
from converters.merge.adapter_config import CONFIG_NAME
from converters.merge.merged_weights import MergedWeights, load_adapters
from converters.synthetic import checkpoints as synthetic
from tests.tools.fuzzing import dump_json, fuzz_settings, mutated_json, refused_or_read

_FIELDS = ("r", "lora_alpha", "use_rslora", "use_dora", "fan_in_fan_out", "lora_bias", "bias",
           "rank_pattern", "alpha_pattern", "modules_to_save", "trainable_token_indices",
           "ensure_weight_tying", "peft_version", "peft_type", "init_lora_weights",
           "target_modules", "layer_replication", "task_type")


@pytest.fixture(scope="module")
def adapters(sources, tmp_path_factory) -> dict[str, Path]:
    """A plain, a patterned, an embedding and a DoRA adapter of the Qwen3 source."""
    root = tmp_path_factory.mktemp("adapters")
    return {kind: synthetic.build_adapter(root / kind, sources.qwen3,
                                          synthetic.ADAPTER_KINDS[kind])
            for kind in ("lora", "pattern", "embedding", "dora")}


def _merge(base: Path, adapter: Path) -> None:
    with Checkpoint(base) as checkpoint:
        loaded = load_adapters(checkpoint, [adapter], tie_word_embeddings=True)
        try:
            weights = MergedWeights(checkpoint, loaded)
            for name in weights.names():
                weights.float32(name)
            weights.finish()
        finally:
            for adapter_ in loaded:
                adapter_.close()


@fuzz_settings(40)
@given(kind=st.sampled_from(["lora", "pattern", "embedding", "dora"]), data=st.data())
def test_damaged_adapter_configs_are_refused_or_merged(tmp_path, sources, adapters, kind,
                                                       data):
    directory = tmp_path / kind
    shutil.copytree(adapters[kind], directory, dirs_exist_ok=True)
    config = json.loads((directory / CONFIG_NAME).read_text())
    (directory / CONFIG_NAME).write_bytes(dump_json(data.draw(mutated_json(config,
                                                                           focus=_FIELDS))))
    refused_or_read(lambda: _merge(sources.qwen3, directory))


@pytest.mark.parametrize(("change", "words"), [
    ({"r": 0}, "r=0"),
    ({"r": True}, "r=true"),
    ({"lora_alpha": float("nan")}, "lora_alpha"),
    ({"lora_alpha": "16"}, "lora_alpha"),
    ({"rank_pattern": {"q_proj": "4"}}, "rank_pattern"),
    ({"alpha_pattern": {"q_proj": None}}, "alpha_pattern"),
    ({"modules_to_save": "score"}, "modules_to_save"),
    ({"target_modules": 7}, "target_modules"),
    ({"bias": ["all"]}, "bias"),
    ({"peft_version": 15}, "peft_version"),
])
def test_corpus_of_bad_adapter_fields(tmp_path, sources, adapters, change, words):
    directory = tmp_path / "adapter"
    shutil.copytree(adapters["pattern"], directory)
    config = json.loads((directory / CONFIG_NAME).read_text())
    (directory / CONFIG_NAME).write_bytes(dump_json({**config, **change}))
    error = refused_or_read(lambda: _merge(sources.qwen3, directory), names=CONFIG_NAME)
    assert isinstance(error, Exception) and words in str(error), error
