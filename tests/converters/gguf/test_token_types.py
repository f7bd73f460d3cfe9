"""Token types as llama.cpp's own converter writes them, checked where it matters: llama.cpp's
load log. Its loader promotes special-looking tokens it finds typed otherwise (Qwen's
<|fim_prefix|> ... <|file_sep|>, `special: false` in tokenizer.json) and warns at every load;
llama.cpp's converter types them CONTROL, so its output draws no such warning, and ours must
not either."""

from __future__ import annotations

import ctypes

import gguf
import llama_cpp
import pytest

from converters.gguf import vocab
from converters.gguf.vocab import added_token_type, looks_special
from converters.llama_runtime import quiet_llama_logs
from converters.pipeline import ConvertRequest, Progress, convert

WARNING = "control-looking token"
FIM_TOKENS = ("<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>",
              "<|repo_name|>", "<|file_sep|>")


def _convert(source, out):
    request = ConvertRequest(base=str(source), name="m", out_dir=out, quant="F16",
                             verify=False)
    return convert(request, Progress(enabled=False)).outputs[0]


def _load_log(path) -> list[str]:
    """Everything llama.cpp logs while loading the file's vocabulary."""
    lines: list[str] = []

    @llama_cpp.llama_log_callback
    def collect(_level: int, text: bytes, _user_data: ctypes.c_void_p) -> None:
        lines.append(text.decode("utf-8", "replace"))

    llama_cpp.llama_log_set(collect, ctypes.c_void_p(0))
    try:
        llama_cpp.Llama(str(path), vocab_only=True, verbose=False).close()
    finally:
        quiet_llama_logs()
    return lines


def _types(path) -> dict[str, int]:
    reader = gguf.GGUFReader(path)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()
    types = reader.fields["tokenizer.ggml.token_type"].contents()
    return dict(zip(tokens, types, strict=True))


@pytest.mark.parametrize("family", ["qwen3", "qwen35", "llama"])
def test_converted_models_load_without_control_token_warnings(tmp_path, sources, family):
    path = _convert(getattr(sources, family), tmp_path)
    log = _load_log(path)
    assert any("vocab" in line for line in log)  # the capture sees the vocabulary load
    assert [line for line in log if WARNING in line] == []


def test_qwen_added_tokens_typed_as_the_reference_converter_types_them(tmp_path, sources):
    types = _types(_convert(sources.qwen3, tmp_path))
    for token in (*FIM_TOKENS, "<|im_start|>", "<|im_end|>", "<|endoftext|>"):
        assert types[token] == gguf.TokenType.CONTROL, token
    for token in ("<think>", "</think>", "<tool_call>", "</tool_response>"):
        assert types[token] == gguf.TokenType.USER_DEFINED, token
    assert types["Ġthe"] == gguf.TokenType.NORMAL


def test_the_warning_is_seen_when_fim_tokens_are_not_control(tmp_path, sources, monkeypatch):
    """The load-log check can fail: typed by `special` alone, the six FIM tokens draw the
    warning llama.cpp prints for the GGUFs of converters that do so."""
    monkeypatch.setattr(vocab, "looks_special", lambda _text: False)
    log = _load_log(_convert(sources.qwen3, tmp_path))
    warned = sorted(token for token in FIM_TOKENS
                    if any(WARNING in line and f"'{token}'" in line for line in log))
    assert warned == sorted(FIM_TOKENS)


@pytest.mark.parametrize("text, expected", [
    ("<|fim_prefix|>", True), ("<|im_start|>", True), ("<｜end▁of▁sentence｜>", True),
    ("<unused42>", True), ("<pad>", True), ("<mask>", True), ("[@BOS@]", True),
    ("<think>", False), ("</tool_call>", False), ("</s>", False), ("<|", False),
    ("|>", False), ("hello", False),
])
def test_looks_special(text, expected):
    assert looks_special(text) is expected


def test_added_token_type():
    assert added_token_type("<think>", special=False) == gguf.TokenType.USER_DEFINED
    assert added_token_type("<think>", special=True) == gguf.TokenType.CONTROL
    assert added_token_type("<|file_sep|>", special=False) == gguf.TokenType.CONTROL
