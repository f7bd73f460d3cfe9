"""The sentencing assistant's structured case, rendered into a Chinese prompt.

The model (seed 004) learned from Chinese first-instance criminal judgments: facts ->
legal characterisation -> sentence. The case form mirrors what a judgment states, in the
order a judge weighs it; empty sections are left out rather than sent as blanks. Every
answer carries a not-legal-advice notice, appended by the app, never left to the model.
"""

from __future__ import annotations

import re
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


_SECTION = re.compile(r"^【(?P<title>[^】]+)】(?P<value>.*)$")
_FIELD_BY_TITLE = {title: name for name, title in SECTION_TITLES.items()}
# The defendant as judgments name them: anonymised (张某, 欧阳某某, 王某甲, 李XX) or in full,
# then a word that ends the name (于, 在, 因, punctuation...).
_DEFENDANT = re.compile(
    r"被告人[\s:：]*(?P<name>[\u4e00-\u9fff]{1,2}?某{1,2}[甲乙丙丁]?"
    r"|[\u4e00-\u9fff][XＸ×*＊]{1,3}"
    r"|[\u4e00-\u9fff]{2,3}?(?=[于在因系将与和等以、，。,;；:：（(\s]))")


def parse_case(prompt: str) -> SentencingCase | None:
    """The case a prompt rendered by `render_case` holds (None: not such a prompt): each
    【section】 runs until the next one."""
    values: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in prompt.splitlines():
        match = _SECTION.match(line.strip())
        if match and match["title"] in _FIELD_BY_TITLE:
            current = values.setdefault(_FIELD_BY_TITLE[match["title"]], [])
            current.append(match["value"])
        elif current is not None:
            current.append(line)
    texts = {name: "\n".join(lines).strip() for name, lines in values.items()}
    if not texts.get("charges"):
        return None
    return SentencingCase(**{"facts": "", **texts})


def defendant(case: SentencingCase) -> str | None:
    """The first defendant the facts name ("被告人张某于..." -> "张某"), if any."""
    match = _DEFENDANT.search(case.facts)
    return match["name"] if match else None


def title_parts(prompt: str) -> list[str] | None:
    """A sentencing conversation's title from its first prompt: the charge and the
    defendant, e.g. ["盗窃罪", "张某"] (None: the prompt is not a case)."""
    case = parse_case(prompt)
    if case is None:
        return None
    name = defendant(case)
    charges = " ".join(case.charges.split())
    return [charges, name] if name else [charges]


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
