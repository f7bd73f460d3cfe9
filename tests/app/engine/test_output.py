"""The text pipeline between sampled tokens and the caller: stops, think split, UTF-8."""

from __future__ import annotations

from app.engine.events import AnswerDelta, ThinkingDelta
from app.engine.output import OutputParser, StopMatcher, ThinkSplitter, prompt_opens_thinking


def run(tokens: list[str], stops: tuple[str, ...] = (), inside_think: bool = False):
    parser = OutputParser(stops, inside_think=inside_think)
    deltas = []
    for token in tokens:
        deltas += parser.feed_text(token)
        if parser.stopped:
            break
    deltas += parser.finish()
    return parser, deltas


def joined(deltas, kind) -> str:
    return "".join(d.text for d in deltas if isinstance(d, kind))


def test_stop_string_split_across_tokens_is_never_emitted():
    parser, deltas = run(["Hello", " wor", "ld<|im", "_e", "nd|>", "never"], ("<|im_end|>",))
    assert parser.stopped
    assert parser.texts.answer == joined(deltas, AnswerDelta) == "Hello world"
    assert all("<" not in d.text for d in deltas)


def test_text_that_only_looks_like_a_stop_start_is_released():
    parser, _ = run(["a <", "|im", "_x and more"], ("<|im_end|>",))
    assert not parser.stopped
    assert parser.texts.answer == "a <|im_x and more"


def test_partial_stop_at_the_end_of_output_is_text():
    parser, _ = run(["the end <|im"], ("<|im_end|>",))
    assert parser.texts.answer == "the end <|im"


def test_earliest_of_several_stops_wins():
    matcher = StopMatcher(["STOP", "ST"])
    assert matcher.feed("abST") == "ab"
    assert matcher.stopped


def test_thinking_is_delivered_apart_from_the_answer():
    tokens = ["<think>", "\n", "Let me", " think", ".\n", "</", "think>", "\n\n", "The", " answer"]
    parser, deltas = run(tokens)
    assert parser.texts.thinking == joined(deltas, ThinkingDelta) == "Let me think."
    assert parser.texts.answer == joined(deltas, AnswerDelta) == "The answer"
    kinds = [type(d) for d in deltas]
    assert kinds.index(AnswerDelta) > max(i for i, k in enumerate(kinds) if k is ThinkingDelta)


def test_output_that_starts_inside_a_prefilled_think_block():
    parser, _ = run(["reasoning", " here\n", "</think>", "\n\nAnswer."], inside_think=True)
    assert (parser.texts.thinking, parser.texts.answer) == ("reasoning here", "Answer.")


def test_empty_think_block_and_no_think_block():
    parser, _ = run(["<think>\n\n</think>\n\n", "Just", " this"])
    assert (parser.texts.thinking, parser.texts.answer) == ("", "Just this")
    parser, _ = run(["No", " tags <think> later"])
    assert (parser.texts.thinking, parser.texts.answer) == ("", "No tags <think> later")


def test_unfinished_think_block_stays_thinking():
    parser, _ = run(["<thi", "nk>", "still going </thi"])
    assert (parser.texts.thinking, parser.texts.answer) == ("still going </thi", "")


def test_stop_string_inside_thinking_ends_everything():
    parser, _ = run(["<think>", "a b", "<|im_end|>", "c"], ("<|im_end|>",))
    assert parser.stopped and parser.texts.thinking == "a b"


def test_whitespace_inside_a_block_is_kept_and_edges_are_dropped():
    splitter = ThinkSplitter()
    out = splitter.feed("  line one\n\n") + splitter.feed("line two  ") + splitter.flush()
    assert "".join(d.text for d in out) == "line one\n\nline two"


def test_utf8_sequences_split_across_tokens():
    parser = OutputParser(())
    data = "判决 😀".encode()
    deltas = []
    for i in range(len(data)):
        deltas += parser.feed_bytes(data[i:i + 1])
    deltas += parser.finish()
    assert parser.texts.answer == "判决 😀"
    assert all("\ufffd" not in d.text for d in deltas)


def test_prompt_opens_thinking():
    assert prompt_opens_thinking("<|im_start|>assistant\n<think>\n")
    assert not prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert not prompt_opens_thinking("<|im_start|>assistant\n")
