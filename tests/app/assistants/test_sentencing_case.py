from __future__ import annotations

import pytest

from app.assistants.sentencing_case import (
    NOT_LEGAL_ADVICE,
    CaseError,
    SentencingCase,
    render_case,
    with_notice,
)


def test_case_renders_sections_in_order_and_skips_empty_ones():
    facts = "被告人于2021年3月窃取手机一部，价值人民币3000元。"
    case = SentencingCase(charges="盗窃罪", facts=facts, plea="到案后如实供述，自愿认罪认罚",
                          mitigating="退赔被害人损失")
    text = render_case(case)
    lines = text.splitlines()
    assert lines[0].startswith("请根据以下案件信息")
    assert lines[2:] == ["【罪名】盗窃罪", f"【案件事实】{facts}",
                         "【认罪认罚及态度】到案后如实供述，自愿认罪认罚",
                         "【从轻、减轻处罚情节】退赔被害人损失"]
    assert "前科" not in text and "从重" not in text


def test_charges_and_facts_are_required():
    with pytest.raises(CaseError, match="charges"):
        render_case(SentencingCase(charges=" ", facts="x"))
    with pytest.raises(CaseError, match="facts"):
        render_case(SentencingCase(charges="盗窃罪", facts=""))


def test_every_answer_carries_the_notice():
    shown = with_notice("建议判处有期徒刑六个月。\n")
    assert shown.startswith("建议判处有期徒刑六个月。")
    assert shown.endswith(NOT_LEGAL_ADVICE)
    assert "不构成法律意见" in NOT_LEGAL_ADVICE


def test_facts_come_from_a_gbk_judgment_file(tmp_path):
    from app.assistants.sentencing_case import facts_from_file, with_facts_from

    facts = ("经审理查明：二〇二三年五月十二日，被告人张某在某市某小区内盗窃电动自行车一辆，"
             "经鉴定价值人民币三千元。案发后，被告人如实供述了自己的罪行，并退赔了被害人的全部损失。")
    path = tmp_path / "判决书.txt"
    path.write_bytes(facts.encode("gbk"))
    assert facts_from_file(path) == facts
    case = with_facts_from(SentencingCase(charges="盗窃罪", facts="", plea="认罪"), path)
    assert (case.charges, case.facts, case.plea) == ("盗窃罪", facts, "认罪")
    assert f"【案件事实】{facts}" in render_case(case)


def test_facts_from_a_file_that_cannot_be_read(tmp_path):
    from app.assistants.sentencing_case import facts_from_file
    from app.documents import DocumentError

    (tmp_path / "scan.pdf").write_bytes(b"%PDF-1.4 broken")
    with pytest.raises(DocumentError, match=r"scan\.pdf: is not a valid PDF"):
        facts_from_file(tmp_path / "scan.pdf")
