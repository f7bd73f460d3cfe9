"""Per-architecture GGUF knowledge: one module per GGUF architecture we write."""

from __future__ import annotations

from converters.architectures.base import Architecture
from converters.architectures.llama import Llama
from converters.architectures.qwen3 import Qwen3
from converters.architectures.qwen35 import Qwen35
from converters.model_config import ModelConfig

_BY_GGUF_ARCH: dict[str, type[Architecture]] = {"qwen3": Qwen3, "qwen35": Qwen35, "llama": Llama}


def architecture_for(config: ModelConfig) -> Architecture:
    """The GGUF writer rules for a (supported, already validated) checkpoint config."""
    return _BY_GGUF_ARCH[config.gguf_arch](config)


__all__ = ["Architecture", "architecture_for"]
