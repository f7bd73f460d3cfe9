"""Fuzzing the tokenizer readers: tokenizer.json, tokenizer_config.json, config.json's special
token ids (byte-level BPE, Qwen) and tokenizer.model (SentencePiece protobuf, Llama), as the
GGUF writer reads them, then as verification loads them with their own libraries. Damaged
files are refused with one line, or read; never another exception or a hang."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import gguf
import pytest
from hypothesis import given
from hypothesis import strategies as st

from converters.gguf.architectures.llama import Llama
from converters.gguf.architectures.qwen3 import Qwen3
from converters.gguf.sentencepiece_model import parse_sentencepiece_model
from converters.gguf.vocab import add_tokenizer
from converters.verify import checks
from tests.tools.fuzzing import (
    dump_json,
    fuzz_settings,
    mutated_bytes,
    mutated_json,
    refused_or_read,
)

VOCAB_SIZE = {"qwen3": 1024, "llama": 1024}


def _read(directory: Path, kind: str) -> None:
    """What conversion and verification do with the tokenizer files of `directory`."""
    family = Qwen3 if kind == "qwen3" else Llama
    writer = gguf.GGUFWriter(directory / "vocab.gguf", family.gguf_arch)
    add_tokenizer(writer, directory, directory, family.vocabulary, VOCAB_SIZE[kind])
    if kind == "qwen3":
        from tokenizers import Tokenizer

        checks._reference(directory / "tokenizer.json", "tokenizers",
                          lambda: Tokenizer.from_file(str(directory / "tokenizer.json")))
    else:
        import sentencepiece

        path = directory / "tokenizer.model"
        checks._reference(path, "sentencepiece",
                          lambda: sentencepiece.SentencePieceProcessor(model_file=str(path)))


@pytest.fixture(scope="module")
def vocab_sizes(sources) -> None:
    for kind in VOCAB_SIZE:
        config = json.loads((getattr(sources, kind) / "config.json").read_text())
        VOCAB_SIZE[kind] = config["vocab_size"]


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("*.safetensors"))
    return target


@fuzz_settings(40)
@given(file=st.sampled_from(["tokenizer.json", "tokenizer_config.json", "config.json"]),
       data=st.data())
def test_damaged_bpe_tokenizer_files_are_refused_or_read(tmp_path, sources, vocab_sizes, file,
                                                         data):
    directory = _copy(sources.qwen3, tmp_path / "qwen3")
    doc = json.loads((directory / file).read_text())
    focus = ("model", "vocab", "merges", "added_tokens", "pre_tokenizer", "pretokenizers",
             "pattern", "post_processor", "chat_template", "bos_token", "eos_token",
             "bos_token_id", "eos_token_id", "pad_token", "text_config")
    (directory / file).write_bytes(dump_json(data.draw(mutated_json(doc, focus=focus))))
    refused_or_read(lambda: _read(directory, "qwen3"))


@fuzz_settings(40)
@given(data=st.data())
def test_damaged_bpe_tokenizer_bytes_are_refused_or_read(tmp_path, sources, vocab_sizes, data):
    directory = _copy(sources.qwen3, tmp_path / "qwen3")
    blob = (directory / "tokenizer.json").read_bytes()
    (directory / "tokenizer.json").write_bytes(data.draw(mutated_bytes(blob)))
    refused_or_read(lambda: _read(directory, "qwen3"))


@fuzz_settings(80)
@given(data=st.data())
def test_damaged_sentencepiece_models_are_refused_or_read(tmp_path, sources, vocab_sizes,
                                                          data):
    directory = _copy(sources.llama, tmp_path / "llama")
    blob = (directory / "tokenizer.model").read_bytes()
    (directory / "tokenizer.model").write_bytes(data.draw(mutated_bytes(blob, hot=256)))
    refused_or_read(lambda: _read(directory, "llama"))


@fuzz_settings(40)
@given(data=st.data())
def test_damaged_llama_tokenizer_configs_are_refused_or_read(tmp_path, sources, vocab_sizes,
                                                             data):
    directory = _copy(sources.llama, tmp_path / "llama")
    doc = json.loads((directory / "tokenizer_config.json").read_text())
    mutated = data.draw(mutated_json(doc, focus=("bos_token", "eos_token", "add_bos_token",
                                                 "chat_template", "added_tokens_decoder")))
    (directory / "tokenizer_config.json").write_bytes(dump_json(mutated))
    refused_or_read(lambda: _read(directory, "llama"))


@fuzz_settings(60)
@given(blob=st.binary(max_size=512))
def test_any_bytes_parse_as_a_sentencepiece_model_or_are_refused(blob):
    refused_or_read(lambda: parse_sentencepiece_model(blob))


# ---------------------------------------------------------------------------- corpus


@pytest.mark.parametrize(("blob", "words"), [
    (b"\x0b" * 10_000, "nested too deeply"),  # start-group tags: recursion, not a crash
    (b"\x0a\xff\xff\xff\xff\x0f", "truncated"),  # a piece longer than the file
    (b"\x0a\x02\x0d", "truncated"),
])
def test_corpus_of_damaged_protobuf(tmp_path, sources, vocab_sizes, blob, words):
    directory = _copy(sources.llama, tmp_path / "llama")
    (directory / "tokenizer.model").write_bytes(blob)
    error = refused_or_read(lambda: _read(directory, "llama"), names="tokenizer.model")
    assert words in str(error)


@pytest.mark.parametrize(("change", "words"), [
    ({"model": {"type": "BPE", "vocab": ["a"], "merges": []}}, "model.vocab"),
    ({"added_tokens": [{"id": "x", "content": "<a>"}]}, "added_tokens"),
    ({"added_tokens": [{"id": 10**9, "content": "<a>"}]}, "vocab_size"),
    ({"pre_tokenizer": {"type": "Split", "pattern": "x"}}, "pre-tokenizer"),
])
def test_corpus_of_damaged_tokenizer_json(tmp_path, sources, vocab_sizes, change, words):
    directory = _copy(sources.qwen3, tmp_path / "qwen3")
    doc = json.loads((directory / "tokenizer.json").read_text())
    (directory / "tokenizer.json").write_text(json.dumps({**doc, **change}))
    error = refused_or_read(lambda: _read(directory, "qwen3"), names="tokenizer.json")
    assert words in str(error)


def test_a_negative_special_token_id_is_refused(tmp_path, sources, vocab_sizes):
    directory = _copy(sources.qwen3, tmp_path / "qwen3")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "bos_token_id": -5}))
    error = refused_or_read(lambda: _read(directory, "qwen3"), names=str(directory))
    assert "special tokens" in str(error)
