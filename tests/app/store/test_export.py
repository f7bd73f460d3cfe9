"""Markdown transcripts and the file names they are saved under."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from app.store import Conversation, export_filename
from app.store.export import MAX_STEM_BYTES
from tests.app.store.conftest import record


def _conversation(title: str, **options) -> Conversation:
    moment = datetime(2026, 5, 9, 8, 30, tzinfo=timezone.utc)
    return Conversation(id=7, assistant="civic-qa", title=title, created_at=moment,
                        updated_at=moment, **options)


def test_export_is_a_readable_transcript_with_thinking_collapsed(store):
    chat = store.create_conversation("civic-qa", title="租屋押金問題", model="civic-qa.Q4_K_M",
                                     system_prompt="你是一位臺灣的公民法律助理。\n請用繁體中文回答。",
                                     parameters={"temperature": 0.2})
    store.add_message(chat.id, "user", "房東可以不退押金嗎？")
    store.add_message(chat.id, "assistant", "**不行**，除非有欠租或損壞。",
                      thinking="使用者問押金。</details>注意民法。", completion_tokens=12,
                      tokens_per_second=24.0, generation_ms=500.0)
    markdown = store.export_markdown(chat.id)
    assert markdown.startswith(
        "# 租屋押金問題\n\n- Assistant: civic-qa\n- Model: civic-qa.Q4_K_M\n")
    assert '- Parameters: `{"temperature": 0.2}`' in markdown
    assert "> 你是一位臺灣的公民法律助理。\n> 請用繁體中文回答。" in markdown
    assert "## User\n\n房東可以不退押金嗎？\n\n## Assistant\n\n" in markdown
    assert ("<details>\n<summary>Thinking</summary>\n\n使用者問押金。&lt;/details>注意民法。"
            "\n\n</details>\n\n**不行**，除非有欠租或損壞。\n\n"
            "_12 tokens · 24.0 tokens/s · 0.5 s_\n") in markdown
    assert markdown.count("</details>") == 1


def test_export_notes_blocked_and_cancelled_turns(store):
    chat = store.create_conversation("general", safety_gate=True)
    store.add_message(chat.id, "user", "bad request", status="blocked", blocked_probability=0.87)
    store.add_message(chat.id, "assistant", "Part", status="cancelled")
    markdown = store.export_markdown(chat.id)
    assert "# Untitled conversation" in markdown and "- Intent-safety gate: on" in markdown
    assert "> **Blocked by the intent-safety gate** (probability unsafe: 0.87)" in markdown
    assert "Part\n\n_(cancelled: a partial reply)_" in markdown


def test_filenames_keep_cjk_and_drop_only_unsafe_characters():
    assert export_filename(_conversation("租屋押金：房東/不退？")) == "租屋押金：房東 不退？.md"
    assert export_filename(_conversation('a<b>c:d"e|f?g*h\\i')) == "a b c d e f g h i.md"
    assert export_filename(_conversation("  ..隱藏\t檔案..  ")) == "隱藏 檔案.md"
    assert export_filename(_conversation("évaluation morale")) == "évaluation morale.md"
    assert export_filename(_conversation("abc\u202egpj.exe")) == "abcgpj.exe.md"


def test_filenames_are_never_empty_nor_reserved():
    assert export_filename(_conversation("")) == "civic-qa 7.md"
    assert export_filename(_conversation("/// ... ???")) == "civic-qa 7.md"
    assert export_filename(_conversation("con")) == "_con.md"
    assert export_filename(_conversation("LPT1.txt")) == "_LPT1.txt.md"


def test_filenames_are_bounded_in_bytes_without_splitting_characters():
    name = export_filename(_conversation("刑" * 100))
    assert name == "刑" * (MAX_STEM_BYTES // 3) + ".md"
    assert len(export_filename(_conversation("a" + "刑" * 100)).encode()) <= MAX_STEM_BYTES + 3


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_any_title_gives_a_safe_name(title):
    name = export_filename(_conversation(title))
    stem = name.removesuffix(".md")
    assert stem and stem == stem.strip(" .") and len(name.encode()) <= MAX_STEM_BYTES + 3
    assert not set(name) & set('\\/:*?"<>|\0\n\r\t')


def test_export_names_the_model_file_and_settings_of_the_replies(store):
    chat = store.create_conversation("sentencing", title="盗窃罪 · 张某")
    store.add_message(chat.id, "user", "被告人张某盗窃。")
    store.add_message(chat.id, "assistant", "判处有期徒刑一年。", provenance=record())
    store.add_message(chat.id, "user", "缓刑？")
    store.add_message(chat.id, "assistant", "可以", provenance=record())
    markdown = store.export_markdown(chat.id)
    header = markdown.split("## User")[0]
    assert "- Model: sentencing.Q4_K_M.gguf\n" not in header  # said once, in full:
    assert ("- Model: sentencing · sentencing.Q4_K_M.gguf · Q4_K_M · 2,497,280,256 bytes\n"
            in header)
    assert f"- SHA-256: {'ab' * 32}\n" in header
    assert "- Verification: verified\n" in header
    assert "- Backend: embedded llama.cpp · CPU · adaptive threads\n" in header
    assert "- Context: 4096 tokens\n" in header
    assert '- Sampling: stop ["<|im_end|>"] · temperature 0.2 · top_p 0.9\n' in header
    assert "- Amicus: 0.1.0\n" in header
    assert "**System prompt**\n\n> 你是严谨的刑事审判辅助系统。" in header
    assert "changed" not in markdown and "Demo model" not in markdown


def test_export_notes_where_the_model_or_settings_change(store):
    chat = store.create_conversation("sentencing")
    store.add_message(chat.id, "user", "Q1")
    store.add_message(chat.id, "assistant", "A1", provenance=record())
    store.add_message(chat.id, "user", "Q2")
    store.add_message(chat.id, "assistant", "A2", provenance=record(temperature=0.7))
    store.add_message(chat.id, "user", "Q3")
    store.add_message(chat.id, "assistant", "A3", provenance=record(temperature=0.7))
    markdown = store.export_markdown(chat.id)
    note = ("> **Model or settings changed from this reply on:**\n"
            '> - Sampling: stop ["<|im_end|>"] · temperature 0.7 · top_p 0.9\n\n'
            "## Assistant\n\nA2")
    assert note in markdown
    assert markdown.count("changed from this reply on") == 1
    assert "temperature 0.2" in markdown.split("## User")[0]


def test_export_warns_of_demo_and_unverified_models(store):
    chat = store.create_conversation("sentencing")
    store.add_message(chat.id, "user", "Q1")
    store.add_message(chat.id, "assistant", "A1", provenance=record())
    markdown = store.export_markdown(chat.id)
    assert "Demo model" not in markdown and "Unverified model" not in markdown
    store.add_message(chat.id, "user", "Q2")
    store.add_message(chat.id, "assistant", "zx qv", provenance=record(
        demo=True, used_anyway=True, verification="FAILED"))
    markdown = store.export_markdown(chat.id)
    header, body = markdown.split("## User", 1)
    assert ("> **Demo model**: replies marked DEMO below come from a random-weight stand-in; "
            "their text is meaningless.") in header
    assert "> **Unverified model**" in header
    assert "DEMO (random weights: meaningless text)" in body
    assert "> - Verification: FAILED: used anyway" in body
