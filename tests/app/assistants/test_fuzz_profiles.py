"""Fuzzing Modelfiles as the app reads them (profiles: system prompt, template, sampling,
stops, num_ctx) and the classifier profile: damaged files are refused with one line naming
the file, or give a profile every engine accepts; never another exception or a hang."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.assistants.profiles import MAX_NUM_CTX, load_classifier_profile, load_profile
from app.engine.params import GenerationParams
from app.paths import modelfiles_dir
from converters.ollama.modelfile import PARAMETERS, parse_modelfile
from tests.tools.fuzzing import (
    dump_json,
    fuzz_settings,
    mutated_bytes,
    mutated_json,
    refused_or_read,
)

SHIPPED = sorted(modelfiles_dir().glob("*.Modelfile"))


def _use(path: Path) -> None:
    """What the app does with a Modelfile before a model sees it."""
    profile = load_profile(path)
    assert 1 <= profile.n_ctx <= MAX_NUM_CTX
    profile.sampling()
    params = {**profile.parameters, "stop": list(profile.stop)}
    GenerationParams.coerce(params).answer_reserve(profile.n_ctx)


@fuzz_settings(50)
@given(source=st.sampled_from(SHIPPED), data=st.data())
def test_damaged_modelfiles_are_refused_or_read(tmp_path, source, data):
    path = tmp_path / "Modelfile"
    path.write_bytes(data.draw(mutated_bytes(source.read_bytes())))
    refused_or_read(lambda: _use(path), names=str(path))


_VALUE_TEXT = (st.sampled_from(["0", "-1", "1e400", "nan", "inf", "-inf", "99999999999",
                                "0x1p3", "true", "1_000", '"', '"""', "", " "])
               | st.text(max_size=12).filter(lambda t: "\n" not in t and "\r" not in t)
               | st.integers().map(str) | st.floats().map(repr))


@fuzz_settings(100)
@given(parameters=st.lists(st.tuples(st.sampled_from(sorted(PARAMETERS)), _VALUE_TEXT),
                           max_size=6))
def test_any_parameters_are_refused_or_read(tmp_path, parameters):
    path = tmp_path / "Modelfile"
    lines = ["FROM ./m.gguf"] + [f"PARAMETER {name} {value}" for name, value in parameters]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    refused_or_read(lambda: _use(path), names=str(path))


@fuzz_settings(100)
@given(text=st.text(max_size=300) | st.binary(max_size=300).map(
    lambda b: b.decode("latin-1")))
def test_any_text_parses_as_a_modelfile_or_is_refused(text):
    refused_or_read(lambda: parse_modelfile(text))


@pytest.mark.parametrize("value", ["0", "-1", "99999999999", str(MAX_NUM_CTX + 1)])
def test_num_ctx_outside_what_a_model_can_hold_is_refused(tmp_path, value):
    path = tmp_path / "Modelfile"
    path.write_text(f"FROM ./m.gguf\nPARAMETER num_ctx {value}\n")
    error = refused_or_read(lambda: _use(path), names=str(path))
    assert "num_ctx" in str(error)


# ---------------------------------------------------------------------------- classifier


@fuzz_settings(60)
@given(data=st.data())
def test_damaged_classifier_profiles_are_refused_or_read(tmp_path, data):
    path = tmp_path / "intent-safety.json"
    doc = json.loads((modelfiles_dir() / "intent-safety.json").read_text(encoding="utf-8"))
    fields = ("labels", "role_map", "max_turns", "max_tokens", "threshold", "positive_label",
              "ctx_token_reserve", "text_template", "ctx_line_template")
    path.write_bytes(dump_json(data.draw(mutated_json(doc, focus=fields))))
    refused_or_read(lambda: load_classifier_profile(path), names=str(path))


@pytest.mark.parametrize("change", [{"labels": {"x": "a"}}, {"threshold": float("nan")},
                                    {"max_turns": -1}, {"role_map": {"user": 1}}])
def test_corpus_of_bad_classifier_profiles(tmp_path, change):
    path = tmp_path / "intent-safety.json"
    shutil.copy(modelfiles_dir() / "intent-safety.json", path)
    doc = json.loads(path.read_text(encoding="utf-8"))
    path.write_bytes(dump_json({**doc, **change}))
    error = refused_or_read(lambda: load_classifier_profile(path), names=str(path))
    assert next(iter(change)) in str(error)


def test_a_classifier_profile_that_is_a_list_is_refused(tmp_path):
    path = tmp_path / "intent-safety.json"
    path.write_text("[1]")
    refused_or_read(lambda: load_classifier_profile(path), names=str(path))
