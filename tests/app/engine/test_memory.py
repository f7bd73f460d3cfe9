"""The memory estimate read from a GGUF before loading, and the refusals it allows."""

from __future__ import annotations

import pytest

from app.engine import memory
from app.engine.engine import Engine
from app.engine.errors import ModelLoadError
from app.engine.memory import (
    ContextSizeError,
    InsufficientMemoryError,
    ModelShape,
    check_memory,
    estimate_memory,
)
from app.errors import describe


def test_the_shape_of_a_qwen3_and_a_hybrid_qwen35(models):
    qwen3 = ModelShape.of(models.qwen3)  # synthetic: 2 layers, 2 KV heads of 64
    assert (qwen3.architecture, qwen3.n_layer, qwen3.kv_layers) == ("qwen3", 2, 2)
    assert qwen3.kv_values_per_token == 2 * 2 * (64 + 64)
    assert qwen3.recurrent_bytes == 0 and qwen3.trained_context == 40960
    assert 0 < qwen3.repackable_bytes < qwen3.weights_bytes < models.qwen3.stat().st_size
    hybrid = ModelShape.of(models.qwen35)  # 4 layers, one in 4 attends
    assert (hybrid.n_layer, hybrid.kv_layers) == (4, 1)
    assert hybrid.kv_values_per_token == 2 * (64 + 64)
    # 3 linear-attention layers: conv state 3 x (256 + 2*2*64) and delta state 64 x 256 F32
    assert hybrid.recurrent_bytes == 3 * (3 * (256 + 2 * 2 * 64) + 64 * 256) * 4


def test_the_estimate_matches_what_llama_cpp_allocates(models):
    """The figures llama.cpp logs when it loads these files (KV buffer 4.00 MiB and compute
    buffer 43.01 MiB at 4096 tokens for the qwen3; 2.00 MiB KV, 0.21 MiB recurrent state
    for the qwen35), and the KV cache linear in n_ctx, padded to 256 cells."""
    small = estimate_memory(models.qwen3, 4096)
    assert small.kv_cache == 4 * 1024**2
    assert abs(small.compute - 43.01 * 1024**2) < 0.05 * 1024**2
    hybrid = estimate_memory(models.qwen35, 4096)
    assert hybrid.kv_cache == 2 * 1024**2 and round(hybrid.recurrent / 1024**2, 2) == 0.21
    assert estimate_memory(models.qwen3, 8192).kv_cache == 2 * small.kv_cache
    assert estimate_memory(models.qwen3, 4000).kv_cache == small.kv_cache
    assert estimate_memory(models.qwen3, 4096, cache_type="f32").kv_cache == 2 * small.kv_cache
    filled = estimate_memory(models.qwen3, 4096, filled=1000)
    assert filled.compute < small.compute and filled.total < small.total
    assert small.describe().startswith("about ") and "at 4,096 tokens" in small.describe()


def test_loading_is_refused_when_the_estimate_exceeds_available_memory(models):
    needed = estimate_memory(models.qwen3, 4096).total
    with pytest.raises(InsufficientMemoryError) as caught:
        Engine.load(models.qwen3, n_ctx=4096, available_memory=needed - 1)
    line = str(caught.value)
    assert "qwen3.Q4_K_M.gguf with num_ctx 4,096 needs about" in line
    assert "choose a smaller num_ctx" in line and "\n" not in line
    failure = describe(caught.value)
    assert failure.exit_code == 2 and failure.title == "Not enough memory for this context"
    with Engine.load(models.qwen3, n_ctx=4096, available_memory=needed) as engine:
        assert engine.n_ctx == 4096 and engine.memory is not None
        assert engine.memory.total == needed


def test_num_ctx_beyond_the_trained_context_is_refused(models):
    with pytest.raises(ContextSizeError, match="more than the 40,960 tokens"):
        Engine.load(models.qwen3, n_ctx=40961)
    with pytest.raises(ContextSizeError, match="positive"):
        check_memory(models.qwen3, 0)


def test_available_memory_is_measured_when_not_given(models, monkeypatch):
    assert memory.available_memory() > estimate_memory(models.qwen3, 512).total
    assert check_memory(models.qwen3, 512).n_ctx == 512  # this machine has room
    monkeypatch.setattr(memory, "available_memory", lambda: 1024)
    with pytest.raises(InsufficientMemoryError, match="but 0 MB is available"):
        check_memory(models.qwen3, 512)


def test_a_file_that_is_not_a_model_is_still_a_load_error(tmp_path):
    bogus = tmp_path / "bogus.gguf"
    bogus.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\x00" * 16)
    with pytest.raises(ModelLoadError, match="cannot load it"):
        Engine.load(bogus)
