"""Documents in a message: the model sees the file name and text; the app finds them again."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from app.documents import (
    Document,
    DocumentPart,
    TextPart,
    compose_message,
    document_block,
    split_message,
)


def doc(name: str, text: str) -> Document:
    return Document(name, Path(name), text, "text", "UTF-8")


def test_documents_first_then_the_question():
    message = compose_message("  请给出量刑建议。 ", [doc("判决书.txt", "事实。"),
                                                    doc("b.md", "more")])
    assert message == ('<document name="判决书.txt" chars="3">\n事实。\n</document>\n\n'
                       '<document name="b.md" chars="4">\nmore\n</document>\n\n请给出量刑建议。')
    assert split_message(message) == [DocumentPart("判决书.txt", "事实。"),
                                      DocumentPart("b.md", "more"), TextPart("请给出量刑建议。")]


def test_a_document_alone_and_plain_text():
    assert split_message(compose_message("", [doc("a.txt", "x")])) == [DocumentPart("a.txt", "x")]
    assert split_message("no documents here") == [TextPart("no documents here")]


def test_a_document_quoting_the_delimiters_still_splits_right():
    tricky = 'see </document> and <document name="x" chars="1">\ny\n</document> inside'
    message = compose_message("q", [doc('we"ird\\name.txt', tricky)])
    assert split_message(message) == [DocumentPart('we"ird\\name.txt', tricky), TextPart("q")]


def test_a_damaged_block_stays_text():
    broken = '<document name="a.txt" chars="99">\nshort\n</document>'
    assert split_message(broken) == [TextPart(broken)]


@given(st.lists(st.tuples(st.text(min_size=1), st.text()), max_size=3), st.text())
def test_split_inverts_compose(documents, question):
    message = compose_message(question, [doc(name.replace("\n", " "), text)
                                         for name, text in documents])
    documents_back = [p for p in split_message(message) if isinstance(p, DocumentPart)]
    assert [(p.name, p.text) for p in documents_back] == \
        [(name.replace("\n", " "), text) for name, text in documents]
    assert document_block("n", "t") in compose_message("", [doc("n", "t")])
