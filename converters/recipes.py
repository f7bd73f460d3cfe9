"""Where an assistant's real weights come from (shared/seeds/): a recipe names the
fine-tuned model and the base it was trained from. The fine-tune may be published merged
(a full checkpoint: converted as is) or as an adapter (merged into the base); `amicus
convert ASSISTANT` finds out which from the files. The recipes themselves are listed in
the assistant catalog (app/assistants/catalog.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from converters.errors import InputError


@dataclass(frozen=True)
class Recipe:
    model: str | None  # the fine-tune: hub repo id, or None where only a local copy exists
    base: str | None  # what an adapter-only fine-tune is merged into
    modelfile: str | None  # modelfiles/<name>.Modelfile, None for the classifier
    note: str
    # The shipped calibration set (converters/quantize/calibration/<name>.json): text in
    # the assistant's language and domain for the importance matrix and the quality report.
    calibration: str


def recipe_sources(name: str, recipe: Recipe, local: str | None) -> tuple[str, tuple[str, ...]]:
    """(base, adapters) for the assistant `name`. `local` overrides the fine-tune (a
    directory holding a merged checkpoint or an adapter; required where the Hub has no
    weights)."""
    fine_tune = local or recipe.model
    if fine_tune is None:
        raise InputError(f"{name}: {recipe.note}")
    from converters.checkpoint.sources import resolve_source

    source = resolve_source(fine_tune)
    if not source.is_adapter:
        return fine_tune, ()
    if recipe.base is None:
        raise InputError(f"{fine_tune} is an adapter but {name} has no base model")
    return recipe.base, (fine_tune,)
