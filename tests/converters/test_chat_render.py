"""converters.chat_render renders Jinja chat templates exactly as transformers does."""

from __future__ import annotations

import pytest

from converters.chat_render import ChatTemplateError, render_chat, thinking_default
from converters.synthetic import chat_templates as ct

QWEN = {"bos_token": None, "eos_token": "<|im_end|>"}
LLAMA = {"bos_token": "<s>", "eos_token": "</s>"}
TEMPLATES = {
    "qwen3": (ct.QWEN3_CHAT_TEMPLATE, QWEN),
    "qwen3-instruct": (ct.QWEN3_INSTRUCT_CHAT_TEMPLATE, QWEN),
    "qwen35": (ct.QWEN35_CHAT_TEMPLATE, QWEN),
    "llama2": (ct.LLAMA2_CHAT_TEMPLATE, LLAMA),
}
CONVERSATIONS = [
    [{"role": "user", "content": "Hi"}],
    [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
    [{"role": "system", "content": "你是法律助理。"}, {"role": "user", "content": "什么是盗窃罪？"},
     {"role": "assistant", "content": "非法占有他人财物。", "reasoning_content": "刑法第264条"},
     {"role": "user", "content": "第一条\u3000量刑标准呢？"}],
    [{"role": "user", "content": "U"},
     {"role": "assistant", "content": "A", "reasoning_content": "T"}],
    [{"role": "user", "content": " padded \n"}, {"role": "assistant", "content": "\nA "},
     {"role": "user", "content": "<think>x</think>y"}],
]


def test_chatml_literal():
    text = render_chat(ct.QWEN3_INSTRUCT_CHAT_TEMPLATE, CONVERSATIONS[1], **QWEN)
    assert text == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n" \
                   "<|im_start|>assistant\n"


def test_qwen3_thinking_switch_literal():
    base = "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n"
    for enabled, tail in ((None, ""), (True, ""), (False, "<think>\n\n</think>\n\n")):
        assert render_chat(ct.QWEN3_CHAT_TEMPLATE, CONVERSATIONS[1], enable_thinking=enabled,
                           **QWEN) == base + tail


def test_llama2_literal_strips_only_the_leading_bos():
    conversation = [*CONVERSATIONS[1], {"role": "assistant", "content": "A"},
                    {"role": "user", "content": "V"}]
    assert render_chat(ct.LLAMA2_CHAT_TEMPLATE, conversation, **LLAMA) == (
        "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s><s>[INST] V [/INST]")


def test_thinking_given_as_thinking_is_seen_as_reasoning_content():
    message = {"role": "assistant", "content": "A", "thinking": "T"}
    text = render_chat(ct.QWEN3_CHAT_TEMPLATE, [{"role": "user", "content": "U"}, message],
                       **QWEN)
    assert "<think>\nT\n</think>\n\nA" in text
    assert message == {"role": "assistant", "content": "A", "thinking": "T"}  # not mutated


def test_thinking_defaults():
    assert thinking_default(ct.QWEN3_CHAT_TEMPLATE, **QWEN) is True
    assert thinking_default(ct.QWEN35_CHAT_TEMPLATE, **QWEN) is False
    assert thinking_default(ct.QWEN3_INSTRUCT_CHAT_TEMPLATE, **QWEN) is None
    assert thinking_default(ct.LLAMA2_CHAT_TEMPLATE, **LLAMA) is None


def test_template_errors_become_chat_template_errors():
    with pytest.raises(ChatTemplateError, match="alternate"):
        render_chat(ct.LLAMA2_CHAT_TEMPLATE, [{"role": "assistant", "content": "A"}], **LLAMA)
    with pytest.raises(ChatTemplateError, match="not valid Jinja"):
        render_chat("{% if %}", [], **QWEN)
    with pytest.raises(ChatTemplateError):
        render_chat("{% set ns = namespace(_x=1) %}", [], **QWEN)


def test_environment_matches_transformers_helpers():
    template = ("{{ messages[0].content|tojson }}|{{ {'a': 1}|tojson(indent=2) }}|"
                "{% for m in messages %}{% if loop.first %}{% continue %}{% endif %}"
                "{{ m.role }}{% endfor %}|{% generation %}g{% endgeneration %}|"
                "{{ strftime_now('%Y') | length }}|{{ dict(k='v').k }}")
    text = render_chat(template, [{"role": "user", "content": "<法>"},
                                  {"role": "assistant", "content": "x"}], **QWEN)
    assert text == '"<法>"|{\n  "a": 1\n}|assistant|g|4|v'


def test_sandbox_hides_internals():
    text = render_chat("{{ messages.__class__ }}{{ ''.__class__ }}", [], **QWEN)
    assert "class" not in text


@pytest.mark.reference
@pytest.mark.parametrize("name", TEMPLATES)
@pytest.mark.parametrize("conversation", CONVERSATIONS, ids=lambda c: str(len(c)))
@pytest.mark.parametrize("enabled", [None, True, False])
def test_same_text_as_transformers(name, conversation, enabled):
    chat_template_utils = pytest.importorskip("transformers.utils.chat_template_utils")
    template, tokens = TEMPLATES[name]
    extra = {} if enabled is None else {"enable_thinking": enabled}
    try:
        (expected,), _ = chat_template_utils.render_jinja_template(
            conversations=[conversation], chat_template=template, add_generation_prompt=True,
            **tokens, **extra)
    except Exception as error:  # the same refusal on both sides
        with pytest.raises(ChatTemplateError):
            render_chat(template, conversation, enable_thinking=enabled, **tokens)
        assert str(error)
        return
    if tokens["bos_token"] and expected.startswith(tokens["bos_token"]):
        expected = expected[len(tokens["bos_token"]):]
    assert render_chat(template, conversation, enable_thinking=enabled, **tokens) == expected
