"""What the service says when the documents do not answer: a short refusal in the question's
language (zh-Hant, zh-Hans, ja; English otherwise) naming the kinds of number the corpus does not
state, and, in a chat, the closest passages labelled as not an answer. A refusal cites nothing:
its ``references`` are empty and no passage gets a marker.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from qa.language import Language, question_language
from qa.types import Answer, SearchResult

_REFUSAL: dict[Language, str] = {
    "en": "The documents do not answer this question.",
    "zh-Hant": "文件中找不到這個問題的答案。",
    "zh-Hans": "文件中找不到这个问题的答案。",
    "ja": "資料にはこの質問への答えが見当たりません。",
}
_UNSTATED: dict[Language, str] = {
    "en": "They state no {} for it.",
    "zh-Hant": "文件沒有提到相關的{}。",
    "zh-Hans": "文件没有提到相关的{}。",
    "ja": "該当する{}は記載されていません。",
}
_QUANTITY_NAMES: dict[Language, dict[str, str]] = {
    "en": {"tonnage": "tonnage", "money": "sum of money", "percent": "percentage"},
    "zh-Hant": {"tonnage": "噸數", "money": "金額", "percent": "百分比"},
    "zh-Hans": {"tonnage": "吨数", "money": "金额", "percent": "百分比"},
    "ja": {"tonnage": "トン数", "money": "金額", "percent": "割合"},
}
CLOSEST_LABEL: dict[Language, str] = {
    "en": "Closest passages (not an answer):",
    "zh-Hant": "最接近的段落（並非答案）：",
    "zh-Hans": "最接近的段落（并非答案）：",
    "ja": "最も近い箇所（答えではありません）：",
}
_OR: dict[Language, str] = {"en": " or ", "zh-Hant": "或", "zh-Hans": "或", "ja": "や"}


def refusal_text(language: Language, unstated: Sequence[str]) -> str:
    """The refusal, naming the kinds of number the corpus does not state when known."""
    text = _REFUSAL[language]
    names = [_QUANTITY_NAMES[language].get(q, q) for q in unstated]
    if names:
        joiner = " " if language == "en" else ""
        text += joiner + _UNSTATED[language].format(_OR[language].join(names))
    return text


def answer_language(result: SearchResult) -> Language:
    """The question's language, as search found it (``Query.language``)."""
    if result.query is not None:
        return result.query.language
    return question_language(result.question)


def refuse(result: SearchResult, started: float | None = None) -> Answer:
    language = answer_language(result)
    return Answer(
        question=result.question,
        text=refusal_text(language, result.unstated_quantities),
        method="refusal",
        language=language,
        references=(),
        search=result,
        took_ms=elapsed_ms(started, result),
    )


def elapsed_ms(started: float | None, result: SearchResult) -> float:
    """Milliseconds since ``started`` (``time.perf_counter``), or the search's own time."""
    if started is None:
        return result.took_ms
    return (time.perf_counter() - started) * 1000


def closest_text(answer: Answer, limit: int = 3, chars: int = 160) -> str:
    """After a refusal in a chat: the closest passages, labelled as not an answer, each with
    its anchor and no marker (they are not cited as answering)."""
    lines = ["", "", CLOSEST_LABEL[answer.language]]
    for hit in answer.search.hits[:limit]:
        c = hit.citation
        snippet = " ".join(hit.text.split())
        snippet = snippet if len(snippet) <= chars else snippet[: chars - 1] + "…"
        where = " > ".join(part for part in (c.title, c.section) if part)
        lines.append(f"- {where}: “{snippet}” ({c.anchor})")
    return "\n".join(lines)
