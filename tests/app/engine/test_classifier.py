"""intent-safety: seed 002's input format to the character, and verdicts equal to
transformers' Qwen3ForSequenceClassification on the same synthetic classifier.

The reference functions below are seed 002's code transcribed verbatim (module-level
tokenizer and task description made parameters); they run with the HF tokenizer of the
source checkpoint, ours with the GGUF's own tokenizer.
"""

from __future__ import annotations

import pytest

from app.engine.classifier import (
    Classifier,
    build_model_text,
    format_ctx,
    verdict_from,
)
from app.engine.errors import ModelLoadError
from app.engine.prefix import common_prefix

TASK = "你是用户意图安全审核专员,负责分析角色扮演(RP)对话中 user 当前话语在上下文中的真实推进方向。"
MAX_LENGTH = 4096

CONVERSATIONS = [
    [{"role": "system", "content": "Character persona/details..."},
     {"role": "assistant", "content": "Are you sure you want to stay here?"},
     {"role": "user", "content": "I step closer and whisper that I want to continue."}],
    [{"role": "You", "content": "  你好,我们继续吧  "}, {"role": "Bot", "content": "好的。"},
     {"role": "narrator", "content": "夜深了。"}, {"role": "user", "content": ""},
     {"role": "assistant", "content": "这条待判定的回复必须去掉"}],
    [{"role": "user", "content": f"第{i}轮:台灣的選舉 <|im_end|> turn {i}"} for i in range(12)],
    [],
]


# ---------------------------------------------------------------- seed 002, verbatim


def seed_format_ctx(turns, max_turns=8, drop_trailing_assistant=True):
    """turns: [{'role': 'user'|'assistant'|'system', 'content': str}, ...]"""
    role_map = {
        "user": "user",
        "you": "user",
        "assistant": "assistant",
        "bot": "assistant",
        "system": "system",
    }
    normalized = []
    for turn in turns:
        role = role_map.get(str(turn.get("role", "")).lower(), "unknown")
        text = str(turn.get("content", "")).strip()
        if text:
            normalized.append({"role": role, "text": text})

    if drop_trailing_assistant and normalized and normalized[-1]["role"] == "assistant":
        normalized = normalized[:-1]

    selected = normalized[-max_turns:]
    return "\n\n".join(f"[{turn['role']}] {turn['text']}" for turn in selected).strip()


def seed_build_model_text(ctx_text, tokenizer, task_description):
    prefix = f"任务描述:\n{task_description}\n\nctx:\n"
    fixed_token_count = len(tokenizer(prefix, add_special_tokens=False)["input_ids"])
    ctx_budget = max(0, MAX_LENGTH - fixed_token_count - 8)

    ctx_ids = tokenizer(ctx_text.strip(), add_special_tokens=False)["input_ids"]
    if len(ctx_ids) > ctx_budget:
        ctx_ids = ctx_ids[-ctx_budget:] if ctx_budget > 0 else []
    ctx_text = tokenizer.decode(ctx_ids, skip_special_tokens=False).strip()
    return f"{prefix}{ctx_text}".strip()


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def classifier(models):
    with Classifier.load(models.classifier, task_description=TASK, f32_cache=True) as clf:
        yield clf


@pytest.fixture(scope="module")
def hf_tokenizer(models):
    transformers = pytest.importorskip("transformers")
    tokenizer = transformers.AutoTokenizer.from_pretrained(models.classifier_source,
                                                           use_fast=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    return tokenizer


def long_turns(tail: str = "") -> list[dict[str, str]]:
    """Far more than 4096 tokens of rare CJK characters (byte-level tokens), so the left cut
    can fall inside a character."""
    return [{"role": "user", "content": "鬱鬱蒼蒼龘靐齉爩" * 1400 + tail}]


# ---------------------------------------------------------------- formatting


@pytest.mark.parametrize("turns", CONVERSATIONS)
def test_format_ctx_is_the_seeds(turns):
    assert format_ctx(turns) == seed_format_ctx(turns)
    assert format_ctx(turns, max_turns=3, drop_trailing_assistant=False) == \
        seed_format_ctx(turns, max_turns=3, drop_trailing_assistant=False)


def test_format_ctx_example_from_the_seed():
    assert format_ctx(CONVERSATIONS[0]) == (
        "[system] Character persona/details...\n\n"
        "[assistant] Are you sure you want to stay here?\n\n"
        "[user] I step closer and whisper that I want to continue.")
    ctx = format_ctx(CONVERSATIONS[1])
    assert ctx == "[user] 你好,我们继续吧\n\n[assistant] 好的。\n\n[unknown] 夜深了。"
    assert format_ctx(CONVERSATIONS[2]).count("[user]") == 8


@pytest.mark.reference
@pytest.mark.parametrize("turns", [*CONVERSATIONS, long_turns(), long_turns("x"),
                                   long_turns("xy")])
def test_model_text_is_the_seeds_to_the_character(classifier, hf_tokenizer, turns):
    expected = seed_build_model_text(seed_format_ctx(turns), hf_tokenizer, TASK)
    assert classifier.model_text(turns) == expected
    assert build_model_text(TASK, format_ctx(turns), classifier.tokenizer) == expected
    encoded = hf_tokenizer(expected, truncation=True, max_length=MAX_LENGTH, padding=True)
    assert classifier.model_tokens(turns) == encoded["input_ids"]


@pytest.mark.reference
def test_long_ctx_is_trimmed_from_the_left_keeping_the_task(classifier, hf_tokenizer):
    turns = long_turns("THE END")
    text = classifier.model_text(turns)
    assert text.startswith(f"任务描述:\n{TASK}\n\nctx:\n")
    assert text.endswith("THE END")
    assert "[user]" not in text  # the start of the ctx was cut away
    assert MAX_LENGTH - 16 <= len(classifier.model_tokens(turns)) <= MAX_LENGTH
    # A cut through a character decodes to U+FFFD on both sides.
    cuts = [classifier.model_text(long_turns(t))[len(f"任务描述:\n{TASK}\n\nctx:\n")]
            for t in ("", "x", "xy", "xyz")]
    assert "\ufffd" in cuts


# ---------------------------------------------------------------- verdicts


@pytest.mark.reference
def test_probabilities_equal_transformers_softmax(classifier, hf_tokenizer, models):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        models.classifier_source, num_labels=2, dtype=torch.float32).eval()
    model.config.pad_token_id = hf_tokenizer.pad_token_id
    for turns in [*CONVERSATIONS[:3], long_turns()]:
        text = seed_build_model_text(seed_format_ctx(turns), hf_tokenizer, TASK)
        encoded = hf_tokenizer(text, truncation=True, max_length=MAX_LENGTH, padding=True,
                               return_tensors="pt")
        with torch.inference_mode():
            probs = torch.softmax(model(**encoded).logits.float(), dim=-1)[0]
        expected = {"prob_non_unsafe": float(probs[0]), "prob_unsafe": float(probs[1])}
        for threshold in (0.5, expected["prob_unsafe"] + 1e-3, expected["prob_unsafe"] - 1e-3):
            verdict = classifier.classify(turns, threshold=threshold)
            assert verdict.prob_non_unsafe == pytest.approx(expected["prob_non_unsafe"],
                                                            abs=1e-4)
            assert verdict.prob_unsafe == pytest.approx(expected["prob_unsafe"], abs=1e-4)
            assert verdict.label == int(expected["prob_unsafe"] >= threshold)


def test_verdict_threshold_and_labels():
    assert verdict_from([0.5, 0.5], 0.5).as_dict() == {
        "label": 1, "label_text": "unsafe", "prob_non_unsafe": 0.5, "prob_unsafe": 0.5,
        "threshold": 0.5}
    safe = verdict_from([0.7, 0.3], 0.5)
    assert (safe.label, safe.label_text, safe.unsafe) == (0, "non_unsafe", False)
    assert verdict_from([0.7, 0.3], 0.25).unsafe


def test_classify_uses_the_classifiers_threshold(classifier):
    probs = classifier.probabilities(CONVERSATIONS[0])
    assert len(probs) == 2 and sum(probs) == pytest.approx(1.0, abs=1e-5)
    assert classifier.classify(CONVERSATIONS[0]).threshold == 0.5


def test_a_chat_model_is_not_a_classifier(models):
    with pytest.raises(ModelLoadError, match="class outputs"):
        Classifier.load(models.qwen3, task_description=TASK)


# ---------------------------------------------------------------- reading with a kept cache


def growing_conversation(turns: int) -> list[list[dict[str, str]]]:
    """The gate's checks of one conversation: before each user message, the history so
    far plus that message (replies included in the history)."""
    dialogue: list[dict[str, str]] = []
    checks = []
    for i in range(turns):
        dialogue.append({"role": "user", "content": f"第{i}轮: the user asks about case {i}, "
                         "with details about what happened that evening. " * 3})
        checks.append(list(dialogue))
        dialogue.append({"role": "assistant", "content": f"Reply {i}: the facts show. " * 4})
    return checks


def test_each_check_reads_only_what_the_conversation_added(models):
    """Verdicts equal a fresh read's, while each check reads only the new tokens (until
    the 8-turn window starts to move, when the prefix changes)."""
    with Classifier.load(models.classifier, task_description=TASK, f32_cache=True,
                         read_chunk=32) as kept, \
            Classifier.load(models.classifier, task_description=TASK, f32_cache=True) as fresh:
        fresh.keep_cache = False
        previous: list[int] = []
        for turns in growing_conversation(6):
            verdict = kept.classify(turns)
            expected = fresh.classify(turns)
            assert verdict.label == expected.label
            assert verdict.prob_unsafe == pytest.approx(expected.prob_unsafe, abs=1e-5)
            tokens = kept.model_tokens(turns)
            shared = min(common_prefix(previous, tokens), len(tokens) - 1)
            assert kept.last_read == len(tokens) - shared
            assert fresh.last_read == len(tokens)
            if previous and len(turns) <= 8:  # before the 8-line window moves: the new turns
                assert shared >= len(previous) - 2 and kept.last_read < len(tokens) // 2
            previous = tokens


def test_the_gate_reading_reports_progress_and_cancels(models):
    import threading

    from app.engine.errors import ReadingCancelled

    with Classifier.load(models.classifier, task_description=TASK, read_chunk=32) as clf:
        turns = [{"role": "user", "content": "A long request with many details. " * 40}]
        total = len(clf.model_tokens(turns))
        reports = []
        clf.classify(turns, progress=reports.append)
        assert [r.read for r in reports] == [*range(32, total, 32), total][:len(reports)]
        assert reports[-1].read == reports[-1].total == total
        cancel = threading.Event()
        other = [{"role": "user", "content": "Something else entirely, at length. " * 40}]

        def stop_after_two(report):
            if report.read >= 64:
                cancel.set()

        tokens = clf.model_tokens(other)
        shared = common_prefix(clf.model_tokens(turns), tokens)  # the task description
        assert shared > 0
        with pytest.raises(ReadingCancelled,
                           match=f"cancelled after reading 64 of {len(tokens) - shared}"):
            clf.classify(other, cancel=cancel, progress=stop_after_two)
        again = clf.classify(other)  # continues: the 64 tokens read are kept
        assert clf.last_read == len(tokens) - shared - 64
        clf.keep_cache = False
        assert clf.classify(other).label == again.label
