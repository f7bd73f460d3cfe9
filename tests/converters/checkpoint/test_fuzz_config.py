"""Fuzzing config.json: values of the wrong type or range (null, strings, negative or huge
numbers, lists, objects) in any field are refused with one line naming the file and the
field, through the reader and through `amicus convert`; never a TypeError, ValueError or
struct.error from deep in the writer, and never a hang."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.cli import main
from converters.checkpoint.config import read_model_config
from converters.checkpoint.safetensors_io import Checkpoint
from converters.gguf.architectures import architecture_for
from tests.tools.fuzzing import dump_json, fuzz_settings, mutated_json, refused_or_read

_KINDS = ("qwen3", "classifier", "qwen35", "llama")


@pytest.fixture(scope="module")
def shapes(sources) -> dict[str, dict[str, tuple[int, ...]]]:
    """Each source checkpoint's tensor shapes (what check_weights compares against)."""
    found = {}
    for kind in _KINDS:
        with Checkpoint(getattr(sources, kind)) as checkpoint:
            found[kind] = {name: checkpoint.info(name).shape for name in checkpoint.names()}
    return found


def _use(directory: Path, shapes: dict[str, tuple[int, ...]]) -> None:
    """Everything the converter does with a config before touching tensor data: read it,
    check it against the checkpoint's shapes, write every hyperparameter to a GGUF header."""
    config = read_model_config(directory)
    arch = architecture_for(config)
    embedding = next(n for n in shapes if n.endswith("embed_tokens.weight")
                     and not n.startswith("mtp."))
    arch.check_weights(list(shapes), shapes.__getitem__, embedding)
    writer = gguf.GGUFWriter(directory / "header.gguf", arch.gguf_arch)
    arch.add_hparams(writer)
    for name in shapes:
        if not arch.dropped(name):
            arch.gguf_name(name)


@fuzz_settings(100)
@given(kind=st.sampled_from(_KINDS), data=st.data())
def test_damaged_configs_are_refused_or_read(tmp_path, sources, shapes, kind, data):
    directory = tmp_path / kind
    directory.mkdir(exist_ok=True)
    config = json.loads((getattr(sources, kind) / "config.json").read_text())
    family_fields = ("hidden_size", "num_hidden_layers", "num_attention_heads",
                     "num_key_value_heads", "head_dim", "intermediate_size", "vocab_size",
                     "rope_theta", "rms_norm_eps", "max_position_embeddings", "architectures",
                     "text_config", "rope_parameters", "id2label", "num_labels",
                     "layer_types", "mrope_section", "partial_rotary_factor",
                     "linear_num_key_heads", "linear_num_value_heads", "tie_word_embeddings")
    mutated = data.draw(mutated_json(config, focus=family_fields))
    (directory / "config.json").write_bytes(dump_json(mutated))
    refused_or_read(lambda: _use(directory, shapes[kind]))


# ---------------------------------------------------------------------------- through the CLI

_REQUIRED = ("hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "vocab_size")
_BAD_INTEGERS = ["1024", -1, 0, 10**30, 2**64, 1.5, [], {}, True]
_BAD_FLOATS = ["1e-6", -1, 0, 1e39, float("inf"), [], {}, True]


def _convert(capsys, base: Path, out: Path) -> tuple[int, str]:
    code = main(["convert", "--base", str(base), "--name", "m", "--out", str(out),
                 "--quant", "F16", "--no-verify"])
    return code, capsys.readouterr().err


def _assert_refused(code: int, err: str, out: Path, *words: str) -> None:
    lines = [line for line in err.splitlines() if line.startswith("amicus:")]
    assert code == 2, err
    assert len(lines) == 1 and "internal error" not in lines[0], err
    assert all(word in lines[0] for word in words), lines[0]
    assert not any(p.is_file() for p in out.glob("*")) if out.exists() else True


@pytest.mark.parametrize("field", ["hidden_size", "num_hidden_layers", "num_attention_heads",
                                   "num_key_value_heads", "head_dim", "intermediate_size",
                                   "vocab_size", "rope_theta", "rms_norm_eps",
                                   "max_position_embeddings"])
def test_convert_refuses_each_bad_value_of_a_field(tmp_path, capsys, sources, field):
    config = json.loads((sources.qwen3 / "config.json").read_text())
    bad = _BAD_FLOATS if field in ("rope_theta", "rms_norm_eps") else _BAD_INTEGERS
    # null means the default, except for the fields that have none.
    for number, value in enumerate([None, *bad] if field in _REQUIRED else bad):
        base = tmp_path / f"{field}-{number}"
        shutil.copytree(sources.qwen3, base)
        (base / "config.json").write_text(json.dumps({**config, field: value}))
        code, err = _convert(capsys, base, tmp_path / f"out-{number}")
        _assert_refused(code, err, tmp_path / f"out-{number}", "config.json", field)


@pytest.mark.parametrize(("kind", "change", "words"), [
    ("qwen3", {"num_hidden_layers": 3}, ("num_hidden_layers 3", "layers are 0..1")),
    ("qwen3", {"hidden_size": 512, "head_dim": 64}, ("hidden_size 512",)),
    ("qwen3", {"num_key_value_heads": 3}, ("not a multiple",)),
    ("qwen3", {"architectures": "Qwen3ForCausalLM"}, ("unsupported architecture",)),
    ("qwen3", {"text_config": "x"}, ("text_config",)),
    ("llama", {"head_dim": 63, "num_attention_heads": 4}, ("odd",)),
    ("llama", {"head_dim": 32}, ("rows",)),
    ("qwen35", {"layer_types": ["full_attention"]}, ("layer_types",)),
    ("qwen35", {"linear_num_value_heads": 3}, ("linear_num_value_heads",)),
    ("classifier", {"id2label": {"0": "a", "1": "b", "2": "c"}}, ("3 labels",)),
    ("classifier", {"num_labels": 10**12, "id2label": None}, ("num_labels",)),
])
def test_convert_refuses_configs_that_disagree_with_the_checkpoint(tmp_path, capsys, sources,
                                                                   kind, change, words):
    base = tmp_path / "base"
    shutil.copytree(getattr(sources, kind), base)
    config = json.loads((base / "config.json").read_text())
    if "text_config" in config and "text_config" not in change:  # Qwen3.5: fields live there
        config["text_config"].update(change)
    else:
        config.update(change)
    (base / "config.json").write_text(json.dumps(config))
    code, err = _convert(capsys, base, tmp_path / "out")
    _assert_refused(code, err, tmp_path / "out", *words)


def test_a_config_that_is_not_an_object_is_refused(tmp_path, capsys, sources):
    base = tmp_path / "base"
    shutil.copytree(sources.qwen3, base)
    (base / "config.json").write_text("[1, 2]")
    code, err = _convert(capsys, base, tmp_path / "out")
    _assert_refused(code, err, tmp_path / "out", "config.json", "not a JSON object")
