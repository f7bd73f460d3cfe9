"""Template agreement: for the same conversation, the prompt Amicus renders from the GGUF's
embedded Jinja chat template is the prompt Ollama renders from the Modelfile TEMPLATE.

Three renderings must be equal for every case: the expected literal string, the Jinja
template (chat_templates.* and the copy embedded in a GGUF converted from a synthetic
checkpoint) rendered by converters.chat_render, and the shipped Modelfile's TEMPLATE
rendered by real Go text/template with the data Ollama's server builds
(tests/tools/ollama_template). Contents carry no surrounding whitespace and reasoning comes
as `thinking` (see chat_render's docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import gguf
import pytest

from app.paths import modelfiles_dir
from converters.chat_render import render_chat
from converters.ollama.modelfile import Modelfile, read_modelfile
from converters.pipeline import ConvertRequest, Progress, convert
from converters.synthetic import chat_templates as ct
from converters.synthetic import checkpoints as synthetic
from tests.tools import go_template
from tests.tools.go_template import case

ASSISTANTS = ("moral-audit", "civic-qa", "sentencing", "general")
JINJA = {"moral-audit": ct.QWEN3_CHAT_TEMPLATE, "civic-qa": ct.QWEN35_CHAT_TEMPLATE,
         "sentencing": ct.QWEN3_INSTRUCT_CHAT_TEMPLATE, "general": ct.LLAMA2_CHAT_TEMPLATE}
THINK = (None, True, False)


def _user(text: str) -> dict[str, str]:
    return {"role": "user", "content": text}


def _assistant(text: str, thinking: str = "") -> dict[str, str]:
    return {"role": "assistant", "content": text, "thinking": thinking}


SYSTEM = {"role": "system", "content": "S"}
SIMPLE = [SYSTEM, _user("U")]
CHINESE = [{"role": "system", "content": "你是法律助理。"}, _user("什么是盗窃罪？"),
           _assistant("以非法占有为目的，窃取他人财物。", "回忆刑法第二百六十四条。"),
           _user("第一条\u3000量刑标准呢？")]
AFTER_LAST_USER = [SYSTEM, _user("U"), _assistant("A", "T")]

CHATML_SIMPLE = ("<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n"
                 "<|im_start|>assistant\n")
CHATML_CHINESE = ("<|im_start|>system\n你是法律助理。<|im_end|>\n"
                  "<|im_start|>user\n什么是盗窃罪？<|im_end|>\n"
                  "<|im_start|>assistant\n以非法占有为目的，窃取他人财物。<|im_end|>\n"
                  "<|im_start|>user\n第一条\u3000量刑标准呢？<|im_end|>\n"
                  "<|im_start|>assistant\n")
EMPTY_THINK = "<think>\n\n</think>\n\n"

# (assistant, conversation, think) -> the prompt both sides must render.
EXPECTED = {
    ("sentencing", "simple", None): CHATML_SIMPLE,
    ("sentencing", "chinese", None): CHATML_CHINESE,
    ("sentencing", "after", None): CHATML_SIMPLE + "A<|im_end|>\n<|im_start|>assistant\n",
    ("moral-audit", "simple", None): CHATML_SIMPLE,
    ("moral-audit", "simple", True): CHATML_SIMPLE,
    ("moral-audit", "simple", False): CHATML_SIMPLE + EMPTY_THINK,
    ("moral-audit", "chinese", True): CHATML_CHINESE,
    ("moral-audit", "chinese", False): CHATML_CHINESE + EMPTY_THINK,
    ("moral-audit", "after", None):
        CHATML_SIMPLE + "<think>\nT\n</think>\n\nA<|im_end|>\n<|im_start|>assistant\n",
    ("moral-audit", "after", False):
        CHATML_SIMPLE + "<think>\nT\n</think>\n\nA<|im_end|>\n<|im_start|>assistant\n"
        + EMPTY_THINK,
    ("civic-qa", "simple", None): CHATML_SIMPLE + EMPTY_THINK,
    ("civic-qa", "simple", False): CHATML_SIMPLE + EMPTY_THINK,
    ("civic-qa", "simple", True): CHATML_SIMPLE + "<think>\n",
    ("civic-qa", "chinese", None): CHATML_CHINESE + EMPTY_THINK,
    ("civic-qa", "chinese", True): CHATML_CHINESE + "<think>\n",
    ("civic-qa", "after", True):
        CHATML_SIMPLE + "<think>\nT\n</think>\n\nA<|im_end|>\n<|im_start|>assistant\n<think>\n",
    ("general", "simple", None): "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST]",
    ("general", "chinese", None):
        "[INST] <<SYS>>\n你是法律助理。\n<</SYS>>\n\n什么是盗窃罪？ [/INST] "
        "以非法占有为目的，窃取他人财物。 </s><s>[INST] 第一条\u3000量刑标准呢？ [/INST]",
    ("general", "after", None): "[INST] <<SYS>>\nS\n<</SYS>>\n\nU [/INST] A </s>",
}
CONVERSATIONS = {"simple": SIMPLE, "chinese": CHINESE, "after": AFTER_LAST_USER}
MORE = [  # further shapes, compared Jinja against Go
    [_user("Hello")],
    [SYSTEM, _user("U1"), _assistant("A1"), _user("U2"), _assistant("A2", "T2"), _user("U3")],
    [_user("台灣是什麼？"), _assistant("台灣是位於東亞的自治民主政體。"),
     _user("Is Taiwan part of China?")],
    [SYSTEM, _user("U"), _assistant("A")],
    [SYSTEM, _user("Quote \"\"\" and {{ .Content }} and <|im_end|> stay text")],
]


@dataclass(frozen=True)
class Embedded:
    template: str
    bos_token: str | None
    eos_token: str


@pytest.fixture(scope="module")
def ollama():
    if not go_template.go_available():
        pytest.fail("`go` is not installed (make test installs golang-go)")
    return go_template.shared_renderer()


@pytest.fixture(scope="module")
def modelfiles() -> dict[str, Modelfile]:
    return {name: read_modelfile(modelfiles_dir() / f"{name}.Modelfile") for name in ASSISTANTS}


def _embedded(path: Path) -> Embedded:
    reader = gguf.GGUFReader(path)
    tokens = reader.fields["tokenizer.ggml.tokens"].contents()

    def token(key: str) -> str | None:
        field = reader.fields.get(f"tokenizer.ggml.{key}_token_id")
        return tokens[field.contents()] if field else None

    return Embedded(reader.fields["tokenizer.chat_template"].contents(), token("bos"),
                    token("eos") or "")


@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> dict[str, Embedded]:
    """Chat templates as the converter embeds them in GGUFs of the synthetic stand-ins."""
    root = tmp_path_factory.mktemp("agreement")
    sources = {
        "moral-audit": synthetic.build_qwen3(root / "qwen3").path,
        "civic-qa": synthetic.build_qwen35(root / "qwen35").path,
        "sentencing": synthetic.build_qwen3(
            root / "instruct", chat_template=ct.QWEN3_INSTRUCT_CHAT_TEMPLATE).path,
        "general": synthetic.build_llama(root / "llama").path,
    }
    found = {}
    for name, source in sources.items():
        request = ConvertRequest(base=str(source), name=name, out_dir=root / f"out-{name}",
                                 quant="F16", verify=False)
        found[name] = _embedded(convert(request, Progress(enabled=False)).outputs[0])
    return found


def _jinja(name: str, conversation: list[dict], think: bool | None, template: str | None = None,
           bos: str | None = None, eos: str | None = None) -> str:
    llama = name == "general"
    return render_chat(template or JINJA[name], conversation,
                       bos_token=bos or ("<s>" if llama else None),
                       eos_token=eos or ("</s>" if llama else "<|im_end|>"),
                       enable_thinking=think)


@pytest.mark.parametrize(("name", "conversation", "think"), list(EXPECTED),
                         ids=["-".join(map(str, key)) for key in EXPECTED])
def test_expected_equals_jinja_equals_gguf_equals_ollama(name, conversation, think, ollama,
                                                         modelfiles, embedded):
    expected = EXPECTED[(name, conversation, think)]
    messages = CONVERSATIONS[conversation]
    assert _jinja(name, messages, think) == expected
    gguf_side = embedded[name]
    assert gguf_side.template == JINJA[name]
    assert _jinja(name, messages, think, gguf_side.template, gguf_side.bos_token,
                  gguf_side.eos_token) == expected
    rendered = ollama.render(modelfiles[name].template, messages, think=think)
    assert rendered == expected


def test_every_shape_and_thinking_setting_agrees(ollama, modelfiles):
    cases, wanted = [], []
    for name in ASSISTANTS:
        for conversation in [*CONVERSATIONS.values(), *MORE]:
            for think in THINK:
                cases.append(case(modelfiles[name].template, conversation, think=think))
                wanted.append(_jinja(name, conversation, think))
    for result, expected, request in zip(ollama.render_many(cases), wanted, cases, strict=True):
        assert not result.error, result.error
        assert result.prompt == expected, request


@pytest.mark.parametrize("name", ASSISTANTS)
def test_modelfile_system_is_prepended_only_when_the_conversation_has_none(name, ollama,
                                                                          modelfiles):
    modelfile = modelfiles[name]
    conversation = [_user("U1"), _assistant("A1"), _user("U2")]
    with_default = [{"role": "system", "content": modelfile.system}, *conversation]
    assert ollama.render(modelfile.template, conversation, system=modelfile.system,
                         think=False) == _jinja(name, with_default, False)
    own = [SYSTEM, *conversation]
    assert ollama.render(modelfile.template, own, system=modelfile.system,
                         think=False) == _jinja(name, own, False)


@pytest.mark.parametrize("name", ASSISTANTS)
def test_same_capabilities_so_ollama_keeps_the_modelfile_template(name, ollama, modelfiles):
    """Ollama (v0.30+) switches to the GGUF's Jinja template when it shows more
    capabilities (tools; thinking: both <think> and </think>) than the Modelfile's."""
    (result,) = ollama.render_many([case(modelfiles[name].template, SIMPLE)])
    jinja = JINJA[name]
    assert result.thinking_capable == ("<think>" in jinja and "</think>" in jinja)
    if result.thinking_capable:
        assert (result.opening_tag, result.closing_tag) == ("<think>", "</think>")
    assert "tools" not in jinja and "tool_call" not in jinja


def test_under_ollamas_server_defaults(ollama, modelfiles):
    """Ollama turns thinking on when a request does not say, for templates that think:
    Qwen3's own default; civic-qa's model defaults to off, which Amicus passes explicitly
    (and `ollama run civic-qa --think=false` asks for)."""
    def server(name: str, think: bool | None) -> go_template.GoRender:
        (result,) = ollama.render_many([case(modelfiles[name].template, SIMPLE, think=think,
                                             server=True)])
        return result

    assert server("moral-audit", None).prompt == _jinja("moral-audit", SIMPLE, None)
    assert server("civic-qa", None).prompt == _jinja("civic-qa", SIMPLE, True)
    assert server("civic-qa", False).prompt == _jinja("civic-qa", SIMPLE, None)
    assert server("sentencing", None).prompt == _jinja("sentencing", SIMPLE, None)
    assert "does not support thinking" in server("general", True).error


@pytest.mark.parametrize("template", [
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] ",
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{ .Prompt }}[/INST] {{ .Response }}",
    "[INST] {{ if .System }}{{ .System }}\n\n{{ end }}{{- range .Messages }}"
    '{{- if eq .Role "user" }}{{ .Content }}[/INST] {{ else if eq .Role "assistant" }}'
    "{{ .Content }}[INST] {{ end }}{{- end }}",
])
def test_harness_renders_legacy_templates_as_ollama_does(ollama, template):
    """The harness itself: .Prompt/.Response templates are run once per exchange, the last
    run cut after .Response (a template naming neither gets one appended)."""
    conversation = [SYSTEM, _user("Hello friend!"), _assistant("Hello human!"),
                    _user("What is your name?")]
    assert ollama.render(template, conversation) == (
        "[INST] S\n\nHello friend![/INST] Hello human![INST] What is your name?[/INST] ")


def test_harness_legacy_chatml(ollama):
    template = ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
                "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
                "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n")
    conversation = [SYSTEM, _user("U1"), _assistant("A1"), _user("U2")]
    assert ollama.render(template, conversation) == (
        "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
        "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
        "<|im_start|>assistant\n")
