"""Conversation titles from their content: a case by charge and defendant, a framed
moral-audit prompt by frame and situation, anything else by its first line."""

from __future__ import annotations

from rich.cells import cell_len

from app.assistants.moral_frames import FRAMES, render_frame
from app.assistants.sentencing_case import SentencingCase, parse_case, render_case
from app.assistants.titles import DEFAULT_TITLE, TITLE_CELLS, conversation_title

STORY = {"situation": "Mike found a wallet full of cash\nin the park near his office.",
         "intention": "Mike wants to pay his rent.", "action": "He keeps the cash.",
         "norm": "It is wrong to keep what is not yours."}


def test_a_case_is_titled_by_charge_and_defendant():
    case = SentencingCase("盗窃罪", "被告人张某于2023年5月在某超市盗窃财物，价值3000元。",
                          plea="认罪认罚")
    assert conversation_title("sentencing", render_case(case)) == "盗窃罪 · 张某"
    two = SentencingCase("盗窃罪、诈骗罪", "经审理查明，被告人欧阳某某因琐事……\n被告人李某……")
    assert conversation_title("sentencing", render_case(two)) == "盗窃罪、诈骗罪 · 欧阳某某"
    unnamed = SentencingCase("危险驾驶罪", "2023年醉酒驾驶机动车。")
    assert conversation_title("sentencing", render_case(unnamed)) == "危险驾驶罪"
    assert conversation_title("sentencing", "盗窃三千元怎么判？\n详情如下") == "盗窃三千元怎么判？"


def test_the_case_read_back_from_its_prompt_is_the_case():
    case = SentencingCase("故意伤害罪", "被告人王某甲于……\n致一人轻伤。", plea="认罪",
                          prior_record="无", mitigating="赔偿并取得谅解", aggravating="")
    assert parse_case(render_case(case)) == case
    assert parse_case("没有案件格式") is None


def test_a_framed_prompt_is_titled_by_frame_and_situation():
    titles = {f: conversation_title("moral-audit", render_frame(f, STORY)) for f in FRAMES}
    assert titles["action"] == "Action · Mike found a wallet full of…"
    assert titles["norm"].startswith("Norm · Mike found")
    assert all(cell_len(t) <= TITLE_CELLS for t in titles.values())
    assert conversation_title("moral-audit", "Is lying ever fine?") == "Is lying ever fine?"


def test_free_chat_is_titled_by_its_first_line_within_the_width():
    assert conversation_title("civic-qa", "\n  租屋押金\t問題 \n第二行") == "租屋押金 問題"
    long = conversation_title("civic-qa", "房東" * 30)
    assert cell_len(long) <= TITLE_CELLS and long.endswith("…")
    assert conversation_title("general", "bell\x07 and \x1b[2J") == "bell\ufffd and \ufffd[2J"
    assert conversation_title("my-own-model", "   ") == DEFAULT_TITLE
