"""Stand-in sources for the five assistants, built from synthetic checkpoints.

Each stand-in has the architecture, tokenizer, chat template and adapter kind of a seed
system (shared/seeds/), at toy size with random weights: `amicus demo` runs the real
pipeline on them so a new machine exercises everything offline in minutes. Which assistant
gets which stand-in is the catalog's to say (app/assistants/catalog.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from converters.synthetic import chat_templates
from converters.synthetic import checkpoints as synthetic
from converters.synthetic.checkpoints import AdapterSpec


@dataclass(frozen=True)
class DemoSource:
    """A base checkpoint plus the adapters to merge into it, in order."""

    base: Path
    adapters: tuple[Path, ...]
    summary: str


def qwen3_lora(root: Path) -> DemoSource:
    """moral-audit's shape: Qwen3-4B distill + LoRA r=8 on attention and MLP."""
    base = synthetic.build_qwen3(root / "base", tied=True, dtype="BF16")
    adapter = synthetic.build_adapter(root / "adapter", base.path,
                                      AdapterSpec(r=8, lora_alpha=8), seed=10)
    return DemoSource(base.path, (adapter,),
                      "Qwen3ForCausalLM (tied) + LoRA r=8 alpha=8 on attention and MLP")


def qwen35_lora(root: Path) -> DemoSource:
    """civic-qa's shape: Qwen3.5-0.8B (hybrid linear attention) + LoRA r=16."""
    base = synthetic.build_qwen35(root / "base", dtype="BF16")
    adapter = synthetic.build_adapter(root / "adapter", base.path,
                                      AdapterSpec(r=16, lora_alpha=32), seed=11)
    return DemoSource(base.path, (adapter,),
                      "Qwen3_5ForConditionalGeneration (hybrid linear attention) + LoRA r=16 "
                      "alpha=32")


def qwen3_classifier_lora(root: Path) -> DemoSource:
    """intent-safety's shape: a Qwen3 sequence classifier + QLoRA r=64 and a score head."""
    base = synthetic.build_qwen3_classifier(root / "base", dtype="BF16")
    adapter = synthetic.build_adapter(root / "adapter", base.path,
                                      synthetic.ADAPTER_KINDS["seq_cls"], seed=12)
    return DemoSource(base.path, (adapter,),
                      "Qwen3ForSequenceClassification + LoRA r=64 alpha=128, trained score head")


def llama_full_finetune(root: Path) -> DemoSource:
    """general's shape: Llama-2 chat, fully fine-tuned (no adapter)."""
    base = synthetic.build_llama(root / "base", dtype="F16")
    return DemoSource(base.path, (),
                      "LlamaForCausalLM, Llama-2 chat, full fine-tune (no adapter)")


def qwen3_instruct_rslora(root: Path) -> DemoSource:
    """sentencing's shape: Qwen3-4B-Instruct (plain ChatML) + rsLoRA r=64."""
    base = synthetic.build_qwen3(root / "base", tied=True, dtype="BF16",
                                 chat_template=chat_templates.QWEN3_INSTRUCT_CHAT_TEMPLATE,
                                 seed=4)
    adapter = synthetic.build_adapter(root / "adapter", base.path,
                                      synthetic.ADAPTER_KINDS["rslora"], seed=14)
    return DemoSource(base.path, (adapter,),
                      "Qwen3ForCausalLM (instruct, ChatML) + rsLoRA r=64 alpha=128")


# The stand-ins by the name the assistant catalog gives (app/assistants/catalog.py).
STAND_INS: dict[str, Callable[[Path], DemoSource]] = {
    builder.__name__: builder
    for builder in (qwen3_lora, qwen35_lora, qwen3_classifier_lora, llama_full_finetune,
                    qwen3_instruct_rslora)
}


def build_stand_in(kind: str, root: Path) -> DemoSource:
    """Build one stand-in's sources under `root` (deterministic: same bytes each run)."""
    return STAND_INS[kind](root)
