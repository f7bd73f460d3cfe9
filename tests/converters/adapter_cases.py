"""Which synthetic base each adapter kind is built for, shared by the adapter tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from converters.synthetic import checkpoints as synthetic

# adapter kind -> (base name, transformers class that loads that base)
ADAPTER_BASES: dict[str, tuple[str, str]] = {
    "lora": ("qwen3", "AutoModelForCausalLM"),
    "rslora": ("qwen3", "AutoModelForCausalLM"),
    "pattern": ("qwen3", "AutoModelForCausalLM"),
    "embedding": ("llama", "AutoModelForCausalLM"),
    "dora": ("qwen35", "Qwen3_5ForConditionalGeneration"),
    "seq_cls": ("classifier", "AutoModelForSequenceClassification"),
}
BASE_BUILDERS: dict[str, Callable[[Path], synthetic.SyntheticModel]] = {
    "qwen3": lambda out: synthetic.build_qwen3(out, tied=False),
    "qwen3_tied": lambda out: synthetic.build_qwen3(out, tied=True),
    "qwen35": synthetic.build_qwen35,
    "llama": synthetic.build_llama,
    "classifier": synthetic.build_qwen3_classifier,
}


def build_bases(root: Path) -> dict[str, Path]:
    return {name: build(root / name).path for name, build in BASE_BUILDERS.items()}
