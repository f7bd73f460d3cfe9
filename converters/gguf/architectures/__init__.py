"""The registry of model families the converter writes: one module per family.

Each family module registers itself (`@register` in base.py) with everything one
architecture needs; importing this package registers them all. To add a family, write one
module beside these and import it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from converters.gguf.architectures import llama, qwen3, qwen35  # noqa: F401  (registers them)
from converters.gguf.architectures.base import (
    Architecture,
    Reordering,
    family_of,
    register,
    supported_classes,
)

if TYPE_CHECKING:
    from converters.checkpoint.config import ModelConfig


def architecture_for(config: ModelConfig) -> Architecture:
    """The GGUF writer rules for a (supported, already validated) checkpoint config."""
    return config.family(config)


def is_classifier_class(hf_class: str) -> bool:
    """Whether a Hugging Face class name is a sequence classifier we convert."""
    family = family_of(hf_class)
    return family is not None and hf_class in family.classifier_classes


__all__ = ["Architecture", "Reordering", "architecture_for", "family_of", "is_classifier_class",
           "register", "supported_classes"]
