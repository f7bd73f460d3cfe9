"""The shipped calibration sets and the calibration text readers."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from converters.errors import InputError
from converters.quantize.calibration import (
    DEFAULT_SETS,
    Formatter,
    load_set,
    read_calibration_file,
    read_input_format,
    set_calibration_text,
    set_names,
)
from converters.synthetic import chat_templates

CHAT_TEMPLATES = (chat_templates.QWEN3_CHAT_TEMPLATE, chat_templates.QWEN3_INSTRUCT_CHAT_TEMPLATE,
                  chat_templates.QWEN35_CHAT_TEMPLATE, chat_templates.LLAMA2_CHAT_TEMPLATE)


def _texts(sample) -> list[str]:
    return [sample] if isinstance(sample, str) else [m["content"] for m in sample]


def test_one_set_per_assistant_and_the_defaults_exist():
    assert set_names() == ["civic-qa", "general", "intent-safety", "moral-audit", "sentencing"]
    assert {load_set(n).kind for n in set_names()} == {"chat", "classifier"}
    assert load_set(DEFAULT_SETS["chat"]).kind == "chat"
    assert load_set(DEFAULT_SETS["classifier"]).kind == "classifier"


@pytest.mark.parametrize("name", set_names())
def test_held_out_text_is_never_calibration_text(name):
    calibration_set = load_set(name)
    assert calibration_set.calibration and calibration_set.held_out
    calibration = {t for s in calibration_set.calibration for t in _texts(s)}
    held_out = {t for s in calibration_set.held_out for t in _texts(s)}
    assert not calibration & held_out
    # Not even a shared sentence of some length, beyond the wording every sample repeats
    # (moral-audit's frames: the format, not the content).
    sentences = Counter(p for t in calibration for p in set(t.replace("\n", ". ").split(". "))
                        if len(p) > 60)
    once = {p for p, n in sentences.items() if n == 1}
    assert not [p for t in held_out for p in once if p in t]


@pytest.mark.parametrize("name", [n for n in set_names() if load_set(n).kind == "chat"])
@pytest.mark.parametrize("template", CHAT_TEMPLATES, ids=["qwen3", "instruct", "qwen35", "llama2"])
def test_chat_sets_render_through_every_family_template(name, template):
    calibration_set = load_set(name)
    for conversation in calibration_set.calibration + calibration_set.held_out:
        roles = [m["role"] for m in conversation]
        assert roles == ["user", "assistant"] * (len(roles) // 2)
    formatter = Formatter(chat_template=template, bos_token="<s>", eos_token="</s>",
                          system="Be brief.")
    text = set_calibration_text(calibration_set, formatter)
    assert text.parse_special and text.dataset == f"amicus:{name}"
    for conversation in calibration_set.calibration:
        assert conversation[-1]["content"].strip()[-40:] in text.text
    assert text.text.count("Be brief.") == len(calibration_set.calibration)


def test_classifier_samples_are_wrapped_in_the_text_template():
    classifier_set = load_set("intent-safety")
    ctx = classifier_set.held_out[0]
    assert ctx.startswith("[system] ") and "\n\n[user] " in ctx
    formatter = Formatter(text_template="T:\n{task_description}\n\nctx:\n{ctx_text}",
                          task_description="judge")
    assert formatter.render(ctx) == f"T:\njudge\n\nctx:\n{ctx}"
    assert Formatter().render(ctx) == ctx  # no input format: the dialogue alone


def test_own_calibration_text(tmp_path):
    good = tmp_path / "cal.txt"
    good.write_text("Plain text, 中文 too.\n", encoding="utf-8")
    text = read_calibration_file(good)
    assert text.text.startswith("Plain") and text.dataset == str(good)
    assert not text.parse_special  # as llama-imatrix reads a file


@pytest.mark.parametrize("content, match", [(b"", "empty"), (b"  \n", "empty"),
                                            (b"\x89PNG\r\n\x1a\n\0\0", "binary"),
                                            (b"caf\xe9", "not UTF-8")])
def test_bad_calibration_files(tmp_path, content, match):
    path = tmp_path / "cal.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=match):
        read_calibration_file(path)
    with pytest.raises(InputError, match="cannot read"):
        read_calibration_file(tmp_path / "missing.txt")


def test_input_format_needs_its_two_strings(tmp_path):
    path = tmp_path / "format.json"
    path.write_text(json.dumps({"text_template": "{ctx_text}", "task_description": "x"}))
    assert read_input_format(path) == {"text_template": "{ctx_text}", "task_description": "x"}
    path.write_text(json.dumps({"text_template": "no placeholder", "task_description": "x"}))
    with pytest.raises(InputError, match="ctx_text"):
        read_input_format(path)
    path.write_text(json.dumps({"text_template": "{ctx_text}"}))
    with pytest.raises(InputError, match="task_description"):
        read_input_format(path)
    path.write_text("{")
    with pytest.raises(InputError, match="cannot read"):
        read_input_format(path)
