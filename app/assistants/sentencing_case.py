"""The sentencing assistant's structured case, rendered into a Chinese prompt.

The model (seed 004) learned from Chinese first-instance criminal judgments: facts ->
legal characterisation -> sentence. The case form mirrors what a judgment states, in the
order a judge weighs it; empty sections are left out rather than sent as blanks. Every
answer carries a not-legal-advice notice, appended by the app, never left to the model.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from pathlib import Path

from app.documents import read_document
from converters.errors import InputError

NOT_LEGAL_ADVICE = (
    "【提示】以上内容由AI模型依据历史裁判文书的统计规律生成，仅供学习与参考，"
    "不构成法律意见或建议；实际量刑取决于具体案情、证据及司法政策，请咨询执业律师。"
)


@dataclass(frozen=True)
class SentencingCase:
    """A criminal case as the form collects it (all text, Simplified Chinese expected)."""

    charges: str  # 罪名
    facts: str  # 案件事实
    plea: str = ""  # 认罪认罚及态度
    prior_record: str = ""  # 前科劣迹
    mitigating: str = ""  # 从轻、减轻情节
    aggravating: str = ""  # 从重情节


SECTION_TITLES: dict[str, str] = {
    "charges": "罪名",
    "facts": "案件事实",
    "plea": "认罪认罚及态度",
    "prior_record": "前科劣迹",
    "mitigating": "从轻、减轻处罚情节",
    "aggravating": "从重处罚情节",
}
_INSTRUCTION = "请根据以下案件信息，依法分析犯罪事实的认定与法律定性，并给出量刑建议及理由。"


class CaseError(InputError):
    """The case lacks what any analysis needs (the message names the field)."""


def render_case(case: SentencingCase) -> str:
    """The user prompt: an instruction, then one 【section】 per filled field."""
    for required in ("charges", "facts"):
        if not getattr(case, required).strip():
            raise CaseError(f"{SECTION_TITLES[required]}（{required}）不能为空")
    lines = [_INSTRUCTION, ""]
    for field in fields(case):
        value = getattr(case, field.name).strip()
        if value:
            lines.append(f"【{SECTION_TITLES[field.name]}】{value}")
    return "\n".join(lines)


def with_notice(answer: str) -> str:
    """An answer as shown and stored: the model's text, then the notice."""
    return f"{answer.rstrip()}\n\n{NOT_LEGAL_ADVICE}"


def facts_from_file(path: Path | str) -> str:
    """The case facts (案件事实) from a document: a judgment or case file as .txt (UTF-8,
    UTF-16, GB18030/GBK or Big5), .docx or .pdf with a text layer. The form puts the text in
    its facts field, where it stays editable; a file that cannot be read raises
    DocumentError (one line naming it) and the form keeps what was typed."""
    return read_document(path).text


def with_facts_from(case: SentencingCase, path: Path | str) -> SentencingCase:
    """`case` with its facts replaced by the document's text (charges and the rest kept)."""
    return replace(case, facts=facts_from_file(path))
