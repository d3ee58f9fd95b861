"""Does the corpus answer the question? A calibrated guess from two retrieval signals.

- ``dense_top``: the best passage's dense score (chunk and best-sentence cosine, blended as
  the retriever ranks; its scale is the model's). It is the undiscounted similarity, not the
  hubness-discounted ranking score: the thresholds are on the model's own scale;
- ``coverage``: the IDF-weighted share of the question's lexical terms that occur together in
  one of the top three passages.

The question counts as answerable when either signal clears its threshold. A wrong
"unanswerable" hides an answer the corpus has, which costs more than passing an off-topic
question, so the dense thresholds are set where at most 1% of the answerable questions of the
dev suite (DRCD, XQuAD, JSQuAD dev halves) fall below them, one for questions written in the
corpus's script and a lower one for questions that cross scripts (English over Chinese), whose
similarities run lower. Questions asked without their article are the suite's unanswerable
ones: on XQuAD about 40% of them are flagged (18% across scripts), on DRCD and JSQuAD almost
none, because their articles are so alike that another article scores as close as the right
one. Telling those apart needs a reader model, not scores. For an embedder without calibrated
thresholds only coverage can flag, and only in lexical mode.

``confidence`` is a separate, calibrated number: the probability that the answer composed from
these passages holds the answer (``CONFIDENCE_MODELS``).

One kind of near miss needs no reader: a question that asks for a quantity (a tonnage, a sum of
money, a percentage) when none of the top five passages states a number in that unit.
Retrieval puts the passage with the answer in the top five for nearly every answerable
question, so a missing unit there means the corpus most likely does not say. The check
overrides both signals. Its patterns are general, in English, Chinese and Japanese (any
currency, fractions as shares). It cannot catch a question whose unit the corpus states about
something else (a deal's total price for a "price per share").

Measurements and rejected variants: ``eval/EXPERIMENTS.md``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

COVERAGE_THRESHOLD = 0.11
# The best passage's similarity below which a question is flagged, by whether the question
# shares characters with the corpus (``qa.scripts.shares_characters``): across scripts (English
# over Chinese) similarities run lower for questions that are answered, so the bar is lower. The
# cross-script one is the similarity that 1% of the dev suite's English-over-Chinese questions
# fall below; the other lets 1% or fewer of its same-script questions fall below it.
DENSE_THRESHOLDS = {"use-multilingual-v3": 0.31}
CROSS_SCRIPT_DENSE_THRESHOLDS = {"use-multilingual-v3": 0.20}
_DENSE_WIDTH = 0.04  # logistic widths: how fast the flag's belief moves around each threshold
_COVERAGE_WIDTH = 0.03
# ``confidence`` = P(the answer holds), a logistic model of the dense top similarity, the
# coverage, whether the question crosses scripts, and that crossing times the similarity;
# fitted on the dev suite's questions, answerable and asked without their article alike, each
# of its five cases weighing the same.
CONFIDENCE_MODELS = {"use-multilingual-v3": (-2.786, 3.378, 4.702, -2.56, 11.13)}


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(min(x, 50.0), -50.0)))


def judge(
    model_id: str,
    dense_top: float | None,
    coverage: float,
    quantity_stated: bool | None = None,
    *,
    cross_script: bool = False,
) -> tuple[bool, float]:
    """(answerable, confidence in 0..1).

    ``answerable``: either signal clears its threshold (the dense one chosen by
    ``cross_script``); ``quantity_stated`` from ``quantity_in_passages`` (None: the question
    asks for no quantity), when False, vetoes whatever the scores say. ``confidence`` is the
    calibrated probability that the answer composed from these passages holds the answer
    (``CONFIDENCE_MODELS``); for a model without one, the flag's own belief, 0.5 at a
    threshold."""
    belief = _sigmoid((coverage - COVERAGE_THRESHOLD) / _COVERAGE_WIDTH)
    table = CROSS_SCRIPT_DENSE_THRESHOLDS if cross_script else DENSE_THRESHOLDS
    threshold = table.get(model_id)
    if dense_top is not None:
        if threshold is None:
            belief = max(belief, 0.5)  # no calibration for this model: never flag
        else:
            belief = max(belief, _sigmoid((dense_top - threshold) / _DENSE_WIDTH))
    answerable = belief >= 0.5
    weights = CONFIDENCE_MODELS.get(model_id)
    if weights is not None and dense_top is not None:
        cross = float(cross_script)
        b0, b_dense, b_coverage, b_cross, b_both = weights
        z = b0 + b_dense * dense_top + b_coverage * coverage + b_cross * cross
        confidence = _sigmoid(z + b_both * dense_top * cross)
    else:
        confidence = belief
    if quantity_stated is False:
        return False, min(confidence, MISSING_QUANTITY_CONFIDENCE)
    return answerable, confidence


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
            r"|半數|半数|一半|過半|过半|\bhalf\b|\bquarters?\b|\bthirds?\b"
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
