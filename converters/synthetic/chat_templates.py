"""Jinja chat templates of the model families we convert, as tokenizer_config.json carries them.

These are the templates our synthetic stand-in checkpoints embed.  They render plain chat
conversations (system / user / assistant; no tool calls) exactly as the real families' own
templates do, under transformers' Jinja environment and llama-cpp-python's alike: every tag
trims the whitespace before it, so the output does not depend on ``trim_blocks`` /
``lstrip_blocks``.

Behaviour worth knowing when writing a matching Ollama TEMPLATE:

* ``QWEN3_CHAT_TEMPLATE`` (Qwen3 hybrid thinking, e.g. Qwen3-4B): the generation prompt is
  ``<|im_start|>assistant\\n``; with ``enable_thinking=False`` it is followed by an empty think
  block ``<think>\\n\\n</think>\\n\\n``.  Assistant turns up to the last user message lose their
  ``<think>...</think>`` reasoning; an assistant turn after the last user message keeps it and,
  when it is the final message, always gets a think block (empty if it had none).
  Message contents are used verbatim (not trimmed).
* ``QWEN3_INSTRUCT_CHAT_TEMPLATE`` (Qwen3-4B-Instruct-2507): plain ChatML, no think handling.
* ``QWEN35_CHAT_TEMPLATE`` (Qwen3.5-0.8B, the civic-QA base): ChatML with thinking like Qwen3,
  with Qwen3.5's own differences.  Thinking is opt-in on the small Qwen3.5 models (0.8B, 2B;
  the 4B and larger default to thinking): the generation prompt is
  ``<|im_start|>assistant\\n<think>\\n\\n</think>\\n\\n`` unless ``enable_thinking=True``, which
  gives ``<|im_start|>assistant\\n<think>\\n``.  Contents and reasoning are ``trim``-med, every
  assistant turn after the last user message gets a think block, a system message anywhere but
  first and a conversation without a user message raise, and contents may be lists of text
  parts.
* ``LLAMA2_CHAT_TEMPLATE`` (Llama-2-chat): every user turn opens with ``bos_token``; the
  system prompt is folded into the first user turn inside ``<<SYS>>``; user and assistant
  contents are ``strip()``-ped; finished assistant turns end with `` </s>``; roles must
  alternate user/assistant (``raise_exception`` otherwise); there is no generation prompt (the
  text already ends with ``[/INST]``).  A system message alone renders nothing.
"""

from __future__ import annotations

__all__ = [
    "LLAMA2_CHAT_TEMPLATE",
    "QWEN3_CHAT_TEMPLATE",
    "QWEN3_INSTRUCT_CHAT_TEMPLATE",
    "QWEN35_CHAT_TEMPLATE",
]

QWEN3_CHAT_TEMPLATE = r"""{%- if messages and messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{#- The last user message decides which assistant turns keep their reasoning. #}
{%- set state = namespace(last_user=messages|length - 1, found=false) %}
{%- for message in messages[::-1] %}
    {%- if not state.found and message.role == 'user' %}
        {%- set state.last_user = messages|length - 1 - loop.index0 %}
        {%- set state.found = true %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set text = message.content %}
    {%- else %}
        {%- set text = '' %}
    {%- endif %}
    {%- if message.role == 'user' or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + text + '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {%- set thought = '' %}
        {%- if message.reasoning_content is string %}
            {%- set thought = message.reasoning_content %}
        {%- elif '</think>' in text %}
            {%- set thought = text.split('</think>')[0].rstrip('\n')
                                  .split('<think>')[-1].lstrip('\n') %}
            {%- set text = text.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
        {%- if loop.index0 > state.last_user and (loop.last or thought) %}
            {{- '<|im_start|>assistant\n<think>\n' + thought.strip('\n') + '\n</think>\n\n'
                + text.lstrip('\n') }}
        {%- else %}
            {{- '<|im_start|>assistant\n' + text }}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""

QWEN3_INSTRUCT_CHAT_TEMPLATE = r"""{%- if messages and messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set text = message.content %}
    {%- else %}
        {%- set text = '' %}
    {%- endif %}
    {%- if message.role == 'user' or message.role == 'assistant'
           or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + text + '<|im_end|>\n' }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
{%- endif %}"""

QWEN35_CHAT_TEMPLATE = r"""{%- macro plain_text(content) %}
    {%- if content is string %}
        {{- content }}
    {%- elif content is iterable and content is not mapping %}
        {%- for part in content %}
            {%- if part is mapping and 'text' in part %}
                {{- part.text }}
            {%- else %}
                {{- raise_exception('Only text parts are supported in message content.') }}
            {%- endif %}
        {%- endfor %}
    {%- elif content is none or content is undefined %}
        {{- '' }}
    {%- else %}
        {{- raise_exception('Unexpected content type.') }}
    {%- endif %}
{%- endmacro %}
{%- if not messages %}
    {{- raise_exception('No messages provided.') }}
{%- endif %}
{%- if messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + plain_text(messages[0].content)|trim + '<|im_end|>\n' }}
{%- endif %}
{%- set state = namespace(last_user=-1) %}
{%- for message in messages[::-1] %}
    {%- if state.last_user < 0 and message.role == 'user' %}
        {%- set state.last_user = messages|length - 1 - loop.index0 %}
    {%- endif %}
{%- endfor %}
{%- if state.last_user < 0 %}
    {{- raise_exception('No user query found in messages.') }}
{%- endif %}
{%- for message in messages %}
    {%- set text = plain_text(message.content)|trim %}
    {%- if message.role == 'system' %}
        {%- if not loop.first %}
            {{- raise_exception('System message must be at the beginning.') }}
        {%- endif %}
    {%- elif message.role == 'user' %}
        {{- '<|im_start|>user\n' + text + '<|im_end|>\n' }}
    {%- elif message.role == 'assistant' %}
        {%- set thought = '' %}
        {%- if message.reasoning_content is string %}
            {%- set thought = message.reasoning_content %}
        {%- elif '</think>' in text %}
            {%- set thought = text.split('</think>')[0].rstrip('\n')
                                  .split('<think>')[-1].lstrip('\n') %}
            {%- set text = text.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
        {%- if loop.index0 > state.last_user %}
            {{- '<|im_start|>assistant\n<think>\n' + thought|trim + '\n</think>\n\n' + text }}
        {%- else %}
            {{- '<|im_start|>assistant\n' + text }}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- else %}
        {{- raise_exception('Unexpected message role.') }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is true %}
        {{- '<think>\n' }}
    {%- else %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""

LLAMA2_CHAT_TEMPLATE = r"""{%- if messages and messages[0]['role'] == 'system' -%}
    {%- set system_message = messages[0]['content'] -%}
    {%- set turns = messages[1:] -%}
{%- else -%}
    {%- set system_message = none -%}
    {%- set turns = messages -%}
{%- endif -%}
{%- for message in turns -%}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}
        {{- raise_exception('Conversation roles must alternate '
                            + 'user/assistant/user/assistant/...') -}}
    {%- endif -%}
    {%- if loop.first and system_message is not none -%}
        {%- set text = '<<SYS>>\n' + system_message + '\n<</SYS>>\n\n' + message['content'] -%}
    {%- else -%}
        {%- set text = message['content'] -%}
    {%- endif -%}
    {%- if message['role'] == 'user' -%}
        {{- bos_token + '[INST] ' + text.strip() + ' [/INST]' -}}
    {%- elif message['role'] == 'assistant' -%}
        {{- ' ' + text.strip() + ' ' + eos_token -}}
    {%- endif -%}
{%- endfor -%}"""
