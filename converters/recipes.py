"""How each of the five assistants is converted from its published sources (shared/seeds/).

A recipe names the fine-tuned model and the base it was trained from. The fine-tune may be
published merged (a full checkpoint: converted as is) or as an adapter (merged into the
base); `amicus convert ASSISTANT` finds out which from the files.
"""

from __future__ import annotations

from dataclasses import dataclass

from converters.errors import InputError


@dataclass(frozen=True)
class Recipe:
    assistant: str
    model: str | None  # the fine-tune: hub repo id, or None where only a local copy exists
    base: str | None  # what an adapter-only fine-tune is merged into
    modelfile: str | None  # modelfiles/<name>.Modelfile, None for the classifier
    note: str


RECIPES: dict[str, Recipe] = {
    "moral-audit": Recipe(
        "moral-audit",
        model="ertghiu256/Qwen3-4B-distill-deepseek-opus-gemini-ethical-training",
        base="ertghiu256/Qwen3-4B-distill-deepseek-opus-gemini",
        modelfile="moral-audit",
        note="Qwen3-4B distill + QLoRA (r=8, alpha=8) on moral_stories (seed 000).",
    ),
    "civic-qa": Recipe(
        "civic-qa",
        model="YuYu1015/YuYu1015-Qwen3.5-0.8B-TW-CivicAligned-v1",
        base="huihui-ai/Huihui-Qwen3.5-0.8B-abliterated",
        modelfile="civic-qa",
        note="Qwen3.5-0.8B abliterated + LoRA SFT (r=16, alpha=32) (seed 001).",
    ),
    "intent-safety": Recipe(
        "intent-safety",
        model=None,
        base="Qwen/Qwen3-4B",
        modelfile=None,
        note=("Qwen3ForSequenceClassification trained from a local directory (seed 002); its "
              "weights are not on the Hub: pass the merged model directory (or the adapter) "
              "with --base DIR."),
    ),
    "general": Recipe(
        "general",
        model="kmseong/llama2_7b_chat-MBPP-FT-lr5e-5",
        base=None,
        modelfile="general",
        note="Llama-2-7b-chat full fine-tune with WaRP safety alignment (seed 003).",
    ),
    "sentencing": Recipe(
        "sentencing",
        model=None,
        base="Qwen/Qwen3-4B-Instruct-2507",
        modelfile="sentencing",
        note=("Qwen3-4B-Instruct + rsLoRA (r=64, alpha=128) on Chinese criminal judgments "
              "(seed 004). Published only as a Q4_K_M GGUF on Ollama "
              "(demonbyron/qwen3-4b-CriminalLaw-cn:q4): import that with `amicus models "
              "import-ollama`, or pass a local checkpoint or adapter with --base DIR."),
    ),
}


def recipe_sources(assistant: str, local: str | None) -> tuple[str, tuple[str, ...]]:
    """(base, adapters) for an assistant. `local` overrides the fine-tune (a directory
    holding a merged checkpoint or an adapter; required where the Hub has no weights)."""
    recipe = RECIPES.get(assistant)
    if recipe is None:
        raise InputError(f"unknown assistant {assistant!r}; choose from {', '.join(RECIPES)}")
    fine_tune = local or recipe.model
    if fine_tune is None:
        raise InputError(f"{assistant}: {recipe.note}")
    from converters.sources import resolve_source

    source = resolve_source(fine_tune)
    if not source.is_adapter:
        return fine_tune, ()
    if recipe.base is None:
        raise InputError(f"{fine_tune} is an adapter but {assistant} has no base model")
    return recipe.base, (fine_tune,)
