"""Does the corpus answer the question? A calibrated guess from two retrieval signals.

- ``dense_top``: the best passage's dense score (chunk and best-sentence cosine, blended as
  the retriever ranks; its scale is the model's). It is the undiscounted similarity, not the
  hubness-discounted ranking score: the thresholds are on the model's own scale;
- ``coverage``: the IDF-weighted share of the question's lexical terms that occur together in
  one of the top three passages.

The question counts as answerable when either signal clears its threshold. The thresholds are
chosen on the gold set's dev split only (``qa eval --split dev``) so that at most about 5% of
answerable questions are flagged; a wrong "unanswerable" hides an answer the corpus has, which
costs more than passing an off-topic question. Questions that name the corpus's own entities but
ask for a fact it does not contain ("near misses") mostly pass: telling them apart needs a
reader model, not scores. For an embedder without a calibrated threshold only coverage can
flag, and only in lexical mode.

One kind of near miss needs no reader: a question that asks for a quantity (a tonnage, a sum of
money, a percentage) when none of the top five passages states a number in that unit.
Retrieval puts the passage with the answer in the top five for nearly every answerable
question, so a missing unit there means the corpus most likely does not say (or retrieval
missed, and the hits do not answer either). The check overrides both signals. It cannot catch
a question whose unit the corpus states about something else (a deal's total price for a
"price per share").

Measurements and rejected variants: ``eval/EXPERIMENTS.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

COVERAGE_THRESHOLD = 0.11
DENSE_THRESHOLDS = {"use-multilingual-v3": 0.31}
_DENSE_WIDTH = 0.04  # logistic widths: how fast confidence moves around each threshold
_COVERAGE_WIDTH = 0.03


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def judge(
    model_id: str,
    dense_top: float | None,
    coverage: float,
    quantity_stated: bool | None = None,
) -> tuple[bool, float]:
    """(answerable, confidence in 0..1); confidence is 0.5 exactly at a threshold.

    ``quantity_stated`` comes from ``quantity_in_passages`` (None: the question asks for no
    quantity); False vetoes whatever the scores say."""
    confidence = _sigmoid((coverage - COVERAGE_THRESHOLD) / _COVERAGE_WIDTH)
    threshold = DENSE_THRESHOLDS.get(model_id)
    if dense_top is not None:
        if threshold is None:
            confidence = max(confidence, 0.5)  # no calibration for this model: never flag
        else:
            confidence = max(confidence, _sigmoid((dense_top - threshold) / _DENSE_WIDTH))
    if quantity_stated is False:
        return False, min(confidence, MISSING_QUANTITY_CONFIDENCE)
    return confidence >= 0.5, confidence


@dataclass(frozen=True)
class Quantity:
    """A kind of number a question can ask for: how it is asked, and how a passage states it."""

    name: str
    asked: re.Pattern[str]
    stated: re.Pattern[str]


# A number as the corpus writes it: Arabic or full-width digits with separators, or Chinese
# numerals, then an optional multiplier ("141 億", "14.1 billion", "數萬").
_NUMBER = (
    r"(?:[0-9０-９][0-9０-９,，.．]*|[〇一二兩两三四五六七八九十百千萬万億亿兆]+)\s*"
    r"(?:萬|万|億|亿|兆|千|百|million|billion|trillion|bn|mn)?\s*"
)
_IGNORE = re.IGNORECASE

QUANTITIES = (
    Quantity(
        "tonnage",
        asked=re.compile(
            r"how many (?:\w+\s+){0,3}?(?:metric\s+)?(?:tonnes|tons)\b"
            r"|\b(?:what|how much) (?:\w+\s+){0,6}?tonnage\b"
            r"|(?:多少|幾|几)\s*(?:萬|万|億|亿)?\s*公?(?:噸|吨)|(?:噸位|吨位)[^？?。]{0,6}(?:多少|幾|几)"
            r"|何(?:万|億)?トン|トン数は",
            _IGNORE,
        ),
        stated=re.compile(
            _NUMBER + r"(?:公噸|噸|吨|トン|metric tons?\b|tonnes?\b|tons?\b)", _IGNORE
        ),
    ),
    Quantity(
        "money",
        asked=re.compile(
            r"how much (?:\w+\s+){0,8}?(?:pay|paid|cost|spen[dt]|invest|allocat|raise|earn"
            r"|budget|fund)|\bwhat (?:is|was|are|were|will be) the (?:\w+\s+){0,4}?(?:price|cost"
            r"|budget|revenue)s?\b|\bwhat (?:price|sum of money)\b"
            r"|(?:多少|幾|几)\s*(?:錢|钱|元|美元|日圓|日元|資金|资金|預算|预算|經費|经费|補貼|补贴)"
            r"|(?:金額|金额|預算|预算|經費|经费|價格|价格|售價|售价|均價|均价|營收|营收|資金|资金"
            r"|補貼|补贴|投資|投资|融資|融资|損失|损失)[^？?。]{0,8}多少"
            r"|いくら|何(?:億|兆|万)?円|(?:金額|予算|価格|費用|資金|売上|投資額|補助金)"
            r"[はが]?(?:どれ(?:くらい|ほど|だけ))",
            _IGNORE,
        ),
        stated=re.compile(
            _NUMBER + r"(?:美元|美金|日圓|日元|日幣|円|新台幣|台幣|韓元|韓圜|歐元|欧元|英鎊|英镑"
            r"|盧比|卢比|法郎|人民幣|人民币|元|ドル|ユーロ|ポンド|ウォン|ルピー|フラン|人民元"
            r"|dollars?\b|yen\b|euros?\b|pounds?(?: sterling)?\b|won\b|rupees?\b|francs?\b"
            r"|yuan\b|renminbi\b|USD|JPY|EUR|GBP|CHF|KRW|INR|CNY|RMB|NTD|TWD)"
            r"|(?:US\$|NT\$|\$|¥|￥|€|£|₩|₹|CHF|GBP|USD|EUR)\s*[0-9]",
            _IGNORE,
        ),
    ),
    Quantity(
        "percent",
        asked=re.compile(
            r"\bwhat (?:\w+\s+){0,3}?(?:percentage|proportion|share of)\b|\bwhat percent"
            r"|\bhow many percent|(?:比例|百分比|占比|佔比|比重)[^？?。，,]{0,4}(?:多少|幾|几|多高)"
            r"|(?:多少|多大|多高)(?:的)?(?:比例|百分比|占比|佔比|比重)|百分之(?:幾|几|多少)|幾成|几成"
            r"|多少\s*[%％]|割合は|何割|何\s*[%％]|何パーセント|シェアは",
            _IGNORE,
        ),
        stated=re.compile(
            r"[0-9０-９][0-9０-９.．]*\s*(?:%|％|percent\b|per cent\b|パーセント|割)|百分之"
            r"|[〇零一二兩两三四五六七八九十百0-9０-９]+\s*分之|[一二三四五六七八九十]成|[一二三四五六七八九十]割"
            r"|[0-9]+\s*/\s*[0-9]+|半數|半数|一半|過半|过半|\bhalf\b|\bquarters?\b|\bthirds?\b"
            r"|\bfifths?\b|\btenths?\b|\bmajority\b|半分|過半数",
            _IGNORE,
        ),
    ),
)

MISSING_QUANTITY_CONFIDENCE = 0.2
QUANTITY_PASSAGES = 5  # how many of the top passages may state the asked quantity


def asked_quantities(question: str) -> tuple[Quantity, ...]:
    """The kinds of number the question asks for (none for most questions)."""
    return tuple(q for q in QUANTITIES if q.asked.search(question))


def quantity_in_passages(asked: Sequence[Quantity], passages: Iterable[str]) -> bool | None:
    """None if the question asks for no quantity (``asked_quantities``); else whether a passage
    states one it asks for (any of them: "price per tonne" is answered by a sum of money)."""
    if not asked:
        return None
    return any(q.stated.search(text) for text in passages for q in asked)
