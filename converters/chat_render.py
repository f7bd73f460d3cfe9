"""Render a conversation with a model's Jinja chat template, as transformers renders it.

The template is the one embedded in the GGUF (`tokenizer.chat_template`): the format the
model was trained on. The app renders its prompts with it, the converter its calibration
conversations (a converters module, so that both can). The environment is transformers'
own (transformers 5, `render_jinja_template`): an immutable sandbox with `trim_blocks`
and `lstrip_blocks`, loop controls, `raise_exception`, `strftime_now`, a `tojson` that
keeps non-ASCII text and takes `indent`, a `{% generation %}` tag, and reasoning under
any of its names (`reasoning_content`, `thinking`, `reasoning`) visible as all of them.

For the prompt to equal what Ollama renders from the Modelfile TEMPLATE (Go templates can
neither trim nor split strings), pass message contents without surrounding whitespace and
reasoning in `thinking`, not inline in `<think>` tags.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.sandbox import ImmutableSandboxedEnvironment

from converters.errors import InputError

REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


class ChatTemplateError(InputError):
    """The template refused the conversation (raise_exception) or is not valid Jinja."""


class _GenerationTag(Extension):
    """`{% generation %}...{% endgeneration %}` renders its body (transformers uses it to
    mark assistant tokens for training masks; a prompt has no use for the marks)."""

    tags = {"generation"}  # noqa: RUF012 - jinja2.ext.Extension declares a set

    def parse(self, parser: Any) -> nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> str:
        return caller()


class _Namespace(jinja2.utils.Namespace):
    """namespace() that refuses underscore attributes, as transformers' does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _Namespace._check(name)
        super().__init__(attrs)

    def __setitem__(self, name: str, value: Any) -> None:
        _Namespace._check(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check(name: object) -> None:
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(
                f"chat templates cannot set underscore attributes on a namespace: {name!r}")


class _Dict:
    """dict() for templates without handing them the dict type itself (as transformers)."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
        return dict.fromkeys(*args, **kwargs)


def _raise_exception(message: str) -> None:
    raise jinja2.exceptions.TemplateError(message)


def _tojson(value: Any, ensure_ascii: bool = False, indent: int | None = None,
            separators: tuple[str, str] | None = None, sort_keys: bool = False) -> str:
    # Jinja's own tojson escapes HTML characters and non-ASCII text: transformers' does not.
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                      sort_keys=sort_keys)


def _strftime_now(format: str) -> str:
    return datetime.now().strftime(format)


@lru_cache(maxsize=16)
def _compile(template: str) -> jinja2.Template:
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[_GenerationTag, "jinja2.ext.loopcontrols"])
    env.filters["tojson"] = _tojson
    env.globals.update(raise_exception=_raise_exception, strftime_now=_strftime_now,
                       dict=_Dict(), namespace=_Namespace)
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateSyntaxError as exc:
        raise ChatTemplateError(f"chat template is not valid Jinja: {exc}") from exc


def _with_reasoning_aliases(message: Mapping[str, Any]) -> dict[str, Any]:
    """A plain copy of a message; reasoning given under one name is seen under all."""
    copy = dict(message)
    reasoning = next((copy[k] for k in REASONING_FIELDS if copy.get(k) is not None), None)
    if reasoning is not None:
        copy = {"thinking": reasoning, **copy, "reasoning_content": reasoning}
    return copy


def render_chat(template: str, messages: Sequence[Mapping[str, Any]], *,
                bos_token: str | None, eos_token: str | None,
                add_generation_prompt: bool = True, enable_thinking: bool | None = None,
                **extra: Any) -> str:
    """The prompt text for `messages`, without a leading BOS (llama.cpp adds its own).

    `enable_thinking=None` leaves the variable undefined: the template's default.
    `extra` are further template variables (e.g. `tools`, other special tokens)."""
    variables: dict[str, Any] = {"tools": None, "documents": None, **extra,
                                 "messages": [_with_reasoning_aliases(m) for m in messages],
                                 "add_generation_prompt": add_generation_prompt,
                                 "bos_token": bos_token, "eos_token": eos_token}
    if enable_thinking is not None:
        variables["enable_thinking"] = enable_thinking
    try:
        text = _compile(template).render(**variables)
    except jinja2.exceptions.TemplateError as exc:
        raise ChatTemplateError(str(exc)) from exc
    if bos_token and text.startswith(bos_token):
        text = text[len(bos_token):]
    return text


def thinking_default(template: str, *, bos_token: str | None,
                     eos_token: str | None) -> bool | None:
    """Whether the template thinks when `enable_thinking` is not given: True or False for
    templates that honour the switch, None for those that ignore it."""
    probe = [{"role": "user", "content": "?"}]

    def prompt(enabled: bool | None) -> str:
        return render_chat(template, probe, bos_token=bos_token, eos_token=eos_token,
                           enable_thinking=enabled)

    default, on, off = prompt(None), prompt(True), prompt(False)
    if on == off:
        return None
    if default == on:
        return True
    return False if default == off else None
