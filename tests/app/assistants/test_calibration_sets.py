"""Each assistant's recipe names a shipped calibration set of its kind, and the classifier's
calibration text is wrapped exactly as seed 002's input is built (app.engine.classifier)."""

from __future__ import annotations

import pytest

from app.assistants.catalog import CATALOG
from app.assistants.gate import classifier_profile
from app.engine.classifier import build_model_text
from converters.quantize.calibration import Formatter, load_set, read_input_format, set_names


@pytest.mark.parametrize("spec", CATALOG, ids=lambda s: s.name)
def test_every_recipe_names_a_shipped_set_of_its_kind(spec):
    assert spec.recipe.calibration in set_names()
    assert load_set(spec.recipe.calibration).kind == spec.kind
    assert (spec.input_format() is not None) == (spec.kind == "classifier")


class CharTokenizer:
    """One token per character: enough for build_model_text without truncation."""

    def encode(self, text: str) -> list[int]:
        return [ord(c) for c in text]

    def decode(self, ids) -> str:
        return "".join(chr(i) for i in ids)


def test_classifier_text_is_the_seed_format():
    classifier = next(spec for spec in CATALOG if spec.kind == "classifier")
    path = classifier.input_format()
    assert path is not None
    fields = read_input_format(path)
    formatter = Formatter(text_template=fields["text_template"],
                          task_description=fields["task_description"])
    profile = classifier_profile()
    for ctx in load_set(classifier.recipe.calibration).held_out:
        assert formatter.render(ctx) == build_model_text(profile.task_description, ctx,
                                                         CharTokenizer())
