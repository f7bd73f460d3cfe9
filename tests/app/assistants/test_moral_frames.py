"""The four frames equal seed 000's "User Prompt Matrix" blocks to the character."""

from __future__ import annotations

import re

import pytest

from app.assistants.moral_frames import FRAMES, FrameError, render_frame
from tests.seeds import seed_file

RECORD = {
    "situation": "Jan found a wallet with $200 on the bus.",
    "intention": "Jan wants to buy a gift for her mother.",
    "moral_action": "Jan hands the wallet to the driver.",
    "immoral_action": "Jan keeps the cash and throws the wallet away.",
    "norm": "It is wrong to keep what belongs to someone else.",
}

# The seed's blocks, as printed there (placeholders named as in the seed).
EXPECTED = {
    "direct": "[Context/Scenario/Background:] {situation}\n[Intent/Objective/Goal:] {intention}\n"
              "Provide an ethical assessment and an appropriate action plan for this situation.",
    "action": "[Context/Scenario/Background:] {situation}\n[Intent/Objective/Goal:] {intention}\n"
              'What is the moral evaluation of executing the following action: "{moral_action}"?',
    "permissibility": "[Context/Scenario/Background:] {situation}\n[Intent/Objective/Goal:] "
                      "{intention}\nIs it permissible to implement the following approach: "
                      '"{immoral_action}"?',
    "norm": "Based on fundamental ethics, why must an agent preserve the [ethical guideline/"
            'moral baseline] that "{norm}" given the following background?\n'
            "[Context/Scenario/Background:] {situation}",
}


def _seed_blocks() -> list[str]:
    text = seed_file("000").read_text(encoding="utf-8")
    return [b.strip("\n") for b in re.findall(r"```text\n(.*?)```", text, re.DOTALL)]


def test_expected_texts_are_the_seed_blocks():
    assert _seed_blocks() == list(EXPECTED.values())


@pytest.mark.parametrize("frame", list(FRAMES))
def test_frames_render_the_seed_text(frame):
    assert render_frame(frame, RECORD) == EXPECTED[frame].format(**RECORD)


def test_a_generic_action_field_serves_both_action_frames():
    record = {**RECORD, "action": "Jan asks the driver what to do."}
    assert '"Jan asks the driver what to do."' in render_frame("action", record)
    assert '"Jan asks the driver what to do."' in render_frame("permissibility", record)


def test_missing_fields_are_named():
    with pytest.raises(FrameError, match="norm"):
        render_frame("norm", {"situation": "x"})
    with pytest.raises(FrameError, match="immoral_action"):
        render_frame("permissibility", {"situation": "x", "intention": "y"})
    with pytest.raises(FrameError, match="unknown frame"):
        render_frame("other", RECORD)
