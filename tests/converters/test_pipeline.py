"""The converter end to end on synthetic checkpoints: GGUF content, logit parity with
transformers, quantization, manifest, and atomic outputs."""

from __future__ import annotations

import json

import gguf
import pytest

from converters.errors import InputError
from converters.outputs.manifest import sha256_file
from converters.pipeline import ConvertRequest, Progress, convert

QUIET = Progress(enabled=False)


def _convert(sources_base, out, name="m", adapters=(), quant="F32", **options):
    request = ConvertRequest(base=str(sources_base), adapters=tuple(str(a) for a in adapters),
                             name=name, out_dir=out, quant=quant, **options)
    return convert(request, QUIET)


def _reader(path):
    return gguf.GGUFReader(path)


def _kv(reader, key):
    field = reader.fields[key]
    value = field.contents()
    return value


def test_qwen3_gguf_layout_and_metadata(tmp_path, sources):
    result = _convert(sources.qwen3, tmp_path, adapters=[sources.qwen3_lora], quant="F16")
    assert [p.name for p in result.outputs] == ["m.F16.gguf", "manifest.json"]
    reader = _reader(tmp_path / "m.F16.gguf")
    names = {t.name: t for t in reader.tensors}
    assert _kv(reader, "general.architecture") == "qwen3"
    assert _kv(reader, "general.file_type") == gguf.LlamaFileType.MOSTLY_F16
    assert _kv(reader, "tokenizer.ggml.model") == "gpt2"
    assert _kv(reader, "tokenizer.ggml.pre") == "qwen2"
    assert "<|im_start|>" in _kv(reader, "tokenizer.chat_template")
    assert _kv(reader, "qwen3.block_count") == 2
    assert "output.weight" not in names  # tied: llama.cpp falls back to token_embd
    assert names["blk.0.attn_q_norm.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    assert names["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.F16
    assert _kv(reader, "general.base_model.0.name") == "qwen3"
    assert _kv(reader, "general.license") == "apache-2.0"
    assert _kv(reader, "general.finetune") == "qwen3-lora"


def test_manifest_names_sources_and_checksums(tmp_path, sources):
    result = _convert(sources.qwen3, tmp_path, adapters=[sources.qwen3_lora], quant="F16",
                      verify=False)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest == result.manifest
    (output,) = manifest["outputs"]
    assert output["sha256"] == sha256_file(tmp_path / output["file"])
    assert output["size"] == (tmp_path / output["file"]).stat().st_size
    roles = [s["role"] for s in manifest["sources"]]
    assert roles == ["base", "adapter"]
    assert manifest["sources"][1]["adapter_config"]["use_rslora"] is True
    assert manifest["merge"]["tensors_changed"]
    assert manifest["tools"]["llama-cpp-python"] == "0.3.36"
    assert manifest["tools"]["gguf"] == "0.19.0"


def test_q4_k_m_really_uses_k_quants_and_generates(tmp_path, sources):
    _convert(sources.qwen3, tmp_path, adapters=[sources.qwen3_lora], quant="Q4_K_M")
    reader = _reader(tmp_path / "m.Q4_K_M.gguf")
    assert _kv(reader, "general.file_type") == 15
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["blk.0.attn_q.weight"] == gguf.GGMLQuantizationType.Q4_K
    assert types["token_embd.weight"] == gguf.GGMLQuantizationType.Q6_K
    assert not list(tmp_path.glob("*.F16.gguf"))  # intermediate removed by default


def test_keep_intermediate(tmp_path, sources):
    result = _convert(sources.llama, tmp_path, quant="Q8_0", keep_intermediate=True)
    assert sorted(p.name for p in result.outputs) == ["m.F16.gguf", "m.Q8_0.gguf",
                                                     "manifest.json"]


def test_classifier_head_stays_q8_and_labels_are_written(tmp_path, sources):
    _convert(sources.classifier, tmp_path, adapters=[sources.classifier_adapter],
             quant="Q4_K_M")
    reader = _reader(tmp_path / "m.Q4_K_M.gguf")
    types = {t.name: t.tensor_type for t in reader.tensors}
    assert types["cls.output.weight"] == gguf.GGMLQuantizationType.Q8_0
    assert "output.weight" not in types
    assert _kv(reader, "qwen3.pooling_type") == gguf.PoolingType.RANK
    assert _kv(reader, "qwen3.classifier.output_labels") == ["non_unsafe", "unsafe"]


def test_qwen35_drops_vision_and_mtp(tmp_path, sources):
    _convert(sources.qwen35, tmp_path, adapters=[sources.qwen35_lora], quant="F16")
    reader = _reader(tmp_path / "m.F16.gguf")
    names = {t.name for t in reader.tensors}
    assert _kv(reader, "general.architecture") == "qwen35"
    assert _kv(reader, "tokenizer.ggml.pre") == "qwen35"
    assert not [n for n in names if "visual" in n or "mtp" in n or "nextn" in n]
    assert "blk.0.ssm_a" in names and "blk.3.attn_q.weight" in names
    assert _kv(reader, "qwen35.ssm.group_count") == 2
    assert _kv(reader, "qwen35.ssm.time_step_rank") == 4
    assert _kv(reader, "qwen35.rope.dimension_sections") == [3, 3, 2, 0]


# ---------------------------------------------------------------------------- atomicity


def test_interrupt_leaves_nothing_and_rerun_works(tmp_path, sources, monkeypatch):
    import converters.pipeline as pipeline

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "quantize", interrupted)
    with pytest.raises(KeyboardInterrupt):
        _convert(sources.qwen3, tmp_path, quant="Q4_K_M")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    result = _convert(sources.qwen3, tmp_path, quant="Q4_K_M", verify=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.Q4_K_M.gguf", "manifest.json"]
    assert result.outputs[0].exists()


def test_a_failed_rerun_keeps_the_previous_outputs(tmp_path, sources, monkeypatch):
    _convert(sources.qwen3, tmp_path, quant="F16", verify=False)
    before = sha256_file(tmp_path / "m.F16.gguf")
    import converters.gguf.writer as export

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "m.F16.gguf"))

    monkeypatch.setattr(export.LazyTensor, "tofile", full_disk)
    with pytest.raises(OSError):
        _convert(sources.qwen3, tmp_path, quant="F16", verify=False)
    assert sha256_file(tmp_path / "m.F16.gguf") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.F16.gguf", "manifest.json"]


# ---------------------------------------------------------------------------- bad input


def test_adapter_as_base_and_checkpoint_as_adapter_are_refused(tmp_path, sources):
    with pytest.raises(InputError, match="is a PEFT adapter"):
        _convert(sources.qwen3_lora, tmp_path)
    with pytest.raises(InputError, match="not an adapter"):
        _convert(sources.qwen3, tmp_path, adapters=[sources.llama])
    assert list(tmp_path.iterdir()) == []


def test_adapter_for_another_base_names_the_tensor_and_shapes(tmp_path, sources):
    with pytest.raises(InputError) as err:
        _convert(sources.llama, tmp_path / "out", adapters=[sources.qwen3_lora])
    message = str(err.value)
    assert "\n" not in message
    assert "(" in message and ")" in message  # both shapes are named
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_numpy_is_enough_at_run_time():
    """The pipeline modules import without torch or transformers."""
    import subprocess
    import sys

    code = ("import sys; import converters.pipeline; "
            "print([m for m in ('torch','transformers','peft') if m in sys.modules])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"


def test_row_streaming_writes_the_same_bytes(tmp_path, sources, monkeypatch):
    """Large untouched tensors stream in row blocks; the file must not change."""
    import converters.gguf.writer as export

    whole = _convert(sources.qwen3, tmp_path / "whole", quant="F32", verify=False)
    monkeypatch.setattr(export, "STREAM_BLOCK_BYTES", 4096)
    streamed = _convert(sources.qwen3, tmp_path / "streamed", quant="F32", verify=False)
    assert sha256_file(whole.outputs[0]) == sha256_file(streamed.outputs[0])


def test_tokenizer_mismatch_fails_verification(tmp_path, sources, monkeypatch):
    """A GGUF whose vocabulary differs from the source tokenizer is an error, not a warning."""
    import converters.gguf.vocab as vocab

    real = vocab._bpe_tokens

    def swapped(path, data, vocab_size):
        tokens, types = real(path, data, vocab_size)
        a, b = tokens.index("l"), tokens.index("o")  # both occur in "Hello, world!"
        tokens[a], tokens[b] = tokens[b], tokens[a]
        return tokens, types

    monkeypatch.setattr(vocab, "_bpe_tokens", swapped)
    with pytest.raises(InputError, match="tokenizer mismatch"):
        _convert(sources.qwen3, tmp_path / "out", quant="F16")
    assert not list((tmp_path / "out").iterdir())
