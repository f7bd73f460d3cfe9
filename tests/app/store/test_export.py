"""Markdown transcripts and the file names they are saved under."""

from __future__ import annotations

from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from app.store import Conversation, export_filename
from app.store.export import MAX_STEM_BYTES


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
