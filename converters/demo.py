"""Stand-in sources for the five assistants, built from synthetic checkpoints.

Each stand-in has the architecture, tokenizer, chat template and adapter kind of its seed
system (shared/seeds/), at toy size with random weights: `amicus demo` runs the real
pipeline on them so a new machine exercises everything offline in minutes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converters import chat_templates, synthetic
from converters.synthetic import AdapterSpec


@dataclass(frozen=True)
class DemoSource:
    """A base checkpoint plus the adapters to merge into it, in order."""

    name: str
    base: Path
    adapters: tuple[Path, ...]
    summary: str


def _moral_audit(root: Path) -> DemoSource:
    base = synthetic.build_qwen3(root / "base", tied=True, dtype="BF16")
    adapter = synthetic.build_adapter(root / "adapter", base.path,
                                      AdapterSpec(r=8, lora_alpha=8), seed=10)
    return DemoSource("moral-audit", base.path, (adapter,),
                      "Qwen3ForCausalLM (tied) + LoRA r=8 alpha=8 on attention and MLP")


def _civic_qa(root: Path) -> DemoSource:
    base = synthetic.build_qwen35(root / "base", dtype="BF16")
    adapter = synthetic.build_adapter(root / "adapter", base.path,
                                      AdapterSpec(r=16, lora_alpha=32), seed=11)
    return DemoSource("civic-qa", base.path, (adapter,),
                      "Qwen3_5ForConditionalGeneration (hybrid linear attention) + LoRA r=16 "
                      "alpha=32")


def _intent_safety(root: Path) -> DemoSource:
    base = synthetic.build_qwen3_classifier(root / "base", dtype="BF16")
    adapter = synthetic.build_adapter(root / "adapter", base.path,
                                      synthetic.ADAPTER_KINDS["seq_cls"], seed=12)
    return DemoSource("intent-safety", base.path, (adapter,),
                      "Qwen3ForSequenceClassification + LoRA r=64 alpha=128, trained score head")


def _general(root: Path) -> DemoSource:
    base = synthetic.build_llama(root / "base", dtype="F16")
    return DemoSource("general", base.path, (),
                      "LlamaForCausalLM, Llama-2 chat, full fine-tune (no adapter)")


def _sentencing(root: Path) -> DemoSource:
    base = synthetic.build_qwen3(root / "base", tied=True, dtype="BF16",
                                 chat_template=chat_templates.QWEN3_INSTRUCT_CHAT_TEMPLATE,
                                 seed=4)
    adapter = synthetic.build_adapter(root / "adapter", base.path,
                                      synthetic.ADAPTER_KINDS["rslora"], seed=14)
    return DemoSource("sentencing", base.path, (adapter,),
                      "Qwen3ForCausalLM (instruct, ChatML) + rsLoRA r=64 alpha=128")


DEMO_BUILDERS: dict[str, Callable[[Path], DemoSource]] = {
    "moral-audit": _moral_audit,
    "civic-qa": _civic_qa,
    "intent-safety": _intent_safety,
    "general": _general,
    "sentencing": _sentencing,
}


def build_demo_sources(
    root: Path, names: tuple[str, ...] = tuple(DEMO_BUILDERS),
    progress: Callable[[str], None] = lambda _line: None,
) -> list[DemoSource]:
    """Build the stand-in sources under `root/<name>/` (deterministic: same bytes each run)."""
    sources = []
    for name in names:
        progress(f"building {name} ...")
        sources.append(DEMO_BUILDERS[name](root / name))
    return sources
