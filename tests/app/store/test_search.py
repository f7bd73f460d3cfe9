"""Search across every assistant: one hit per matching title or shown message, with a
snippet around the match (sized in terminal cells, CJK-safe) and the message's id."""

from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.cells import cell_len

from app.store.search import ELLIPSIS, find, snippet


def test_hits_span_assistants_with_snippets_and_message_ids(store):
    civic = store.create_conversation("civic-qa", title="租屋押金")
    store.add_message(civic.id, "user", "房東不退押金，我可以怎麼辦？")
    reply = store.add_message(civic.id, "assistant",
                              "依民法規定，租賃關係消滅後，出租人應返還押金。" * 3)
    sentencing = store.create_conversation("sentencing", title="盗窃罪 · 张某")
    asked = store.add_message(sentencing.id, "user", "被告人张某退还押金后，能否从轻处罚？")
    store.create_conversation("general", title="nothing here")
    hits = store.search("押金")
    assert [(h.conversation.assistant, h.message_id) for h in hits] == [
        ("sentencing", asked.id), ("civic-qa", None), ("civic-qa", hits[2].message_id),
        ("civic-qa", reply.id)]
    for hit in hits:
        assert hit.snippet.text[hit.snippet.start:hit.snippet.end] == "押金"
    assert hits[1].snippet.text == "租屋押金" and hits[1].role is None
    assert hits[3].role == "assistant" and hits[3].snippet.text.endswith(ELLIPSIS)


def test_search_is_literal_and_ascii_case_insensitive(store):
    chat = store.create_conversation("general")
    message = store.add_message(chat.id, "user", "Interest at 5%_per month\non the LOAN")
    [hit] = store.search("loan")
    assert hit.message_id == message.id
    assert hit.snippet.text == "Interest at 5%_per month on the LOAN"
    assert hit.snippet.text[hit.snippet.start:hit.snippet.end] == "LOAN"
    assert [h.message_id for h in store.search("5%_")] == [message.id]
    assert store.search("5%%") == [] and store.search("   ") == []


def test_earlier_versions_are_not_searched(store):
    chat = store.create_conversation("general")
    store.add_message(chat.id, "user", "Q")
    old = store.add_message(chat.id, "assistant", "the old wording")
    new = store.add_alternative(old.id, "the new wording")
    assert [h.message_id for h in store.search("wording")] == [new.id]
    store.pick_alternative(old.id)
    assert [h.message_id for h in store.search("wording")] == [old.id]


def test_search_is_bounded(store):
    chat = store.create_conversation("general")
    for n in range(30):
        store.add_message(chat.id, "user", f"needle {n}")
    assert len(store.search("needle", limit=10)) == 10


def test_snippets_are_sized_in_cells_and_keep_combining_marks():
    text = "甲" * 50 + "押金" + "乙" * 50
    at = find(text, "押金")
    cut = snippet(text, at, at + 2, cells=20)
    assert cut.text == ELLIPSIS + "甲" * 3 + "押金" + "乙" * 4 + ELLIPSIS
    assert cell_len(cut.text) <= 20
    accented = "cafe\u0301 " * 20 + "needle" + " cafe\u0301" * 20
    at = find(accented, "needle")
    for cells in range(6, 30):
        cut = snippet(accented, at, at + 6, cells=cells)
        left = cut.text[:cut.start].removeprefix(ELLIPSIS)
        right = cut.text[cut.end:].removesuffix(ELLIPSIS)
        assert not left.startswith("\u0301") and not right.endswith("cafe")  # never split


@settings(max_examples=300, deadline=None)
@given(st.text(), st.text(min_size=1), st.text(), st.integers(min_value=0, max_value=80))
def test_a_snippet_always_shows_the_match_within_its_width(before, match, after, cells):
    flat = re.compile(r"\s+")
    cut = snippet(before + match + after, len(before), len(before) + len(match), cells)
    shown = cut.text[cut.start:cut.end]
    assert shown == flat.sub(" ", match)
    assert cell_len(cut.text) <= max(cells, cell_len(shown))
    left, right = cut.text[:cut.start], cut.text[cut.end:]
    assert flat.sub(" ", before).endswith(left.removeprefix(ELLIPSIS))
    assert flat.sub(" ", after).startswith(right.removesuffix(ELLIPSIS))
    assert not any(ch in cut.text for ch in "\n\r\t")
