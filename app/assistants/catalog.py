"""The catalog of Amicus's five assistants: the one place that describes them.

For each: its name, its kind (a chat assistant, or the classifier that gates the others),
where its real weights come from (its recipe, for `amicus convert ASSISTANT`), the
random-weight stand-in `amicus demo` builds for it, the Modelfile Amicus ships for it, its
structured form in the app, what it adds to every answer, and how its conversations are
titled. The order is the picker's.
Everything else (the command line, the app, the demo, the bundle) reads this catalog.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from app.assistants import moral_frames, sentencing_case
from app.assistants.sentencing_case import with_notice
from app.paths import modelfiles_dir
from converters.errors import InputError
from converters.recipes import Recipe

Kind = Literal["chat", "classifier"]
Form = Literal["moral_frames", "sentencing_case"]


def _as_written(answer: str) -> str:
    return answer


@dataclass(frozen=True)
class AssistantSpec:
    name: str
    kind: Kind
    recipe: Recipe
    stand_in: str  # the builder in converters.synthetic.demo.STAND_INS
    form: Form | None = None  # the structured prompt form the app offers (F5)
    finish: Callable[[str], str] = _as_written  # what every stored and shown answer becomes
    # The parts of a conversation's title read from its first prompt (None: the prompt is
    # not in the assistant's structured form; the title is then its first line).
    title_from: Callable[[str], Sequence[str] | None] | None = None

    @property
    def is_chat(self) -> bool:
        return self.kind == "chat"

    def shipped_modelfile(self) -> Path | None:
        """The Modelfile Amicus ships for this assistant (None: the classifier has none,
        or the file is missing from this installation)."""
        if self.recipe.modelfile is None:
            return None
        path = modelfiles_dir() / f"{self.recipe.modelfile}.Modelfile"
        return path if path.is_file() else None


CATALOG: tuple[AssistantSpec, ...] = (
    AssistantSpec(
        "moral-audit", "chat",
        Recipe(model="ertghiu256/Qwen3-4B-distill-deepseek-opus-gemini-ethical-training",
               base="ertghiu256/Qwen3-4B-distill-deepseek-opus-gemini",
               modelfile="moral-audit",
               note="Qwen3-4B distill + QLoRA (r=8, alpha=8) on moral_stories (seed 000)."),
        stand_in="qwen3_lora", form="moral_frames", title_from=moral_frames.title_parts),
    AssistantSpec(
        "civic-qa", "chat",
        Recipe(model="YuYu1015/YuYu1015-Qwen3.5-0.8B-TW-CivicAligned-v1",
               base="huihui-ai/Huihui-Qwen3.5-0.8B-abliterated",
               modelfile="civic-qa",
               note="Qwen3.5-0.8B abliterated + LoRA SFT (r=16, alpha=32) (seed 001)."),
        stand_in="qwen35_lora"),
    AssistantSpec(
        "sentencing", "chat",
        Recipe(model=None, base="Qwen/Qwen3-4B-Instruct-2507", modelfile="sentencing",
               note=("Qwen3-4B-Instruct + rsLoRA (r=64, alpha=128) on Chinese criminal "
                     "judgments (seed 004). Published only as a Q4_K_M GGUF on Ollama "
                     "(demonbyron/qwen3-4b-CriminalLaw-cn:q4): import that with `amicus "
                     "models import-ollama`, or pass a local checkpoint or adapter with "
                     "--base DIR.")),
        stand_in="qwen3_instruct_rslora", form="sentencing_case", finish=with_notice,
        title_from=sentencing_case.title_parts),
    AssistantSpec(
        "general", "chat",
        Recipe(model="kmseong/llama2_7b_chat-MBPP-FT-lr5e-5", base=None, modelfile="general",
               note="Llama-2-7b-chat full fine-tune with WaRP safety alignment (seed 003)."),
        stand_in="llama_full_finetune"),
    AssistantSpec(
        "intent-safety", "classifier",
        Recipe(model=None, base="Qwen/Qwen3-4B", modelfile=None,
               note=("Qwen3ForSequenceClassification trained from a local directory (seed "
                     "002); its weights are not on the Hub: pass the merged model directory "
                     "(or the adapter) with --base DIR.")),
        stand_in="qwen3_classifier_lora"),
)
NAMES: tuple[str, ...] = tuple(spec.name for spec in CATALOG)
GATE_MODEL = "intent-safety"  # the classifier that gates conversations, installed by name
_BY_NAME = {spec.name: spec for spec in CATALOG}


def spec_of(name: str) -> AssistantSpec | None:
    """The catalog entry of `name` (None for a model installed under another name)."""
    return _BY_NAME.get(name)


def require(name: str) -> AssistantSpec:
    spec = spec_of(name)
    if spec is None:
        raise InputError(f"unknown assistant {name!r}; choose from {', '.join(NAMES)}")
    return spec


def chat_assistants() -> tuple[AssistantSpec, ...]:
    return tuple(spec for spec in CATALOG if spec.is_chat)


def finish_answer(name: str, answer: str) -> str:
    """`answer` as an assistant's answers are stored and shown (sentencing: with the
    not-legal-advice notice, whatever the model wrote); other models' as written."""
    spec = spec_of(name)
    return spec.finish(answer) if spec is not None else answer
