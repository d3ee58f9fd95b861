"""Does the passage a generated sentence cites support it? A screen run on every sentence.

A reply is checked one sentence at a time (``qa.generate`` streams it through ``Checker``):

- a marker naming no passage (``n < 1`` or ``n > k``) is removed, so it never reaches a client;
- a sentence with valid markers is judged against the passages it cites. It is *unsupported*
  when a number in it is not in them, or when it states no number but years and both its
  lexical agreement (the share of its terms, ``qa.lexical.analyze``, found in them) is below
  LEXICAL_SUPPORT and its dense agreement (the best cosine between its vector and the stored
  sentence vectors of them) is below DENSE_SUPPORT. Numbers are compared as values after
  width folding and removing thousands separators, with their scale word: 141 億 and 14.1
  billion agree. A number other than a year that the passage states is evidence by itself:
  "That is roughly 2 trillion yen [1]." shares no words with 約 2 兆日圓 and is a vague
  sentence to embed (lexical 0.25, dense 0.19), yet it is exactly what passage 1 says.
- a sentence without a valid marker that makes a claim (not a question, a label or a sentence
  saying the passages do not answer) is *uncited*, and flagged too.

Flagged sentences stay in the text (the client decides how to show them) and are listed in
``Answer.unsupported``.

Why these signals and thresholds (0.3 and 0.3): they are chosen on the gold set's dev split,
where a gold answer cited to the top-5 hit holding its evidence is a supported claim and the
same answer cited to another top-5 hit (same topic, no evidence) is a hard negative. Lexical
agreement alone fails across languages (an English claim about a Chinese passage shares only
its Latin names), and dense agreement alone separates poorly, so a claim passes when either is
clear. The thresholds keep flagged supported claims to a few terse fragments while catching
about half of the negatives; higher ones catch more negatives at the cost of more supported
claims. The check is a screen, not a reader: a claim citing a passage on its topic passes
when it shares enough words or meaning, whether or not the passage states that fact.
Measurements: ``eval/EXPERIMENTS.md``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qa.lexical import analyze, fold
from qa.types import Hit

if TYPE_CHECKING:
    from qa.retrieve import Retriever

LEXICAL_SUPPORT = 0.3
DENSE_SUPPORT = 0.3

# A citation marker: [1], [1, 2], full-width ［1］ or 【1】.
MARKER_BODY = r"[\[［【]\s*\d{1,4}(?:\s*[,，、]\s*\d{1,4})*\s*[\]］】]"
_MARKER = re.compile(rf"(\s*)({MARKER_BODY})")
_VISIBLE = re.compile(r"\w")
_NUMBER = re.compile(
    r"(?<![\d.])(\d+(?:\.\d+)?)\s*(thousand|million|billion|trillion|百万|千万|千|万|亿|兆)?"
)
_YEAR = re.compile(r"(?:19|20)\d\d")
_SCALE = {
    "thousand": 1e3,
    "million": 1e6,
    "billion": 1e9,
    "trillion": 1e12,
    "千": 1e3,
    "万": 1e4,
    "百万": 1e6,
    "千万": 1e7,
    "亿": 1e8,
    "兆": 1e12,
}
# "The passages do not say ...": not a claim, needs no marker (matched on NFKC lower case).
_NO_ANSWER = re.compile(
    r"(passage|document|source|text|context)s?\b.{0,40}(\b(not|no|neither|nothing)\b|n['’]t)"
    r"|(文件|段落|資料|资料|文獻|文献|內容|内容|原文).{0,15}(沒有|没有|未|無|无|找不到|並未|并未|不)"
    r"|(資料|文書|箇所|文献|パッセージ).{0,20}(ない|ません|見当たら)"
)


@dataclass(frozen=True)
class Agreement:
    """How a claim compares with the passages it cites."""

    supported: bool
    numbers_agree: bool
    lexical: float  # share of the claim's terms found in the passages
    dense: float  # best cosine between the claim and a sentence of the passages


@dataclass
class Checker:
    """Checks sentences against the passages sent (``hits[n - 1]`` is passage ``n``) and
    remembers which passages were cited, which sentences were flagged, and how many claims
    were made (none: the reply only said the passages do not answer)."""

    retriever: Retriever
    hits: Sequence[Hit]
    cited: set[int] = field(default_factory=set)
    unsupported: list[str] = field(default_factory=list)
    claims: int = 0
    _terms: dict[int, set[str]] = field(default_factory=dict)
    _numbers: dict[int, set[float]] = field(default_factory=dict)
    _vectors: list[Any] | None = None  # every passage's sentence vectors, fetched at once

    def piece(self, reply: str, span: tuple[int, int, int]) -> str:
        """The text from the end of the last piece to the end of this sentence, checked."""
        before, start, end = span
        return reply[before:start] + self.check(reply[start:end])

    def check(self, sentence: str) -> str:
        """The sentence with bad markers removed; recorded as unsupported when it is."""
        numbers: list[int] = []

        def keep_valid(match: re.Match[str]) -> str:
            valid = [int(n) for n in re.findall(r"\d+", match.group(2))]
            valid = list(dict.fromkeys(n for n in valid if 1 <= n <= len(self.hits)))
            numbers.extend(valid)
            return f"{match.group(1)}[{', '.join(map(str, valid))}]" if valid else ""

        cleaned = _MARKER.sub(keep_valid, sentence)
        claim = " ".join(_MARKER.sub("", cleaned).split())
        if numbers:
            self.claims += 1
            self.cited.update(numbers)
            if not self.agreement(claim, sorted(set(numbers))).supported:
                self.unsupported.append(cleaned)
        elif makes_claim(claim):
            self.claims += 1
            self.unsupported.append(cleaned)
        return cleaned

    def agreement(self, claim: str, cited: Sequence[int]) -> Agreement:
        """The claim (markers removed) against the passages numbered ``cited``."""
        passage_numbers = set().union(*(self._passage_numbers(n) for n in cited))
        folded = fold(claim)
        numbers = number_values(folded)
        numbers_agree = all(values & passage_numbers for values in numbers.values())
        terms = set(analyze(claim))
        passage_terms = set().union(*(self._passage_terms(n) for n in cited))
        lexical = len(terms & passage_terms) / len(terms) if terms else 0.0
        vector = self.retriever.embedder.encode_queries([claim])[0]
        dense = max(float((self._passage_vectors(n) @ vector).max()) for n in cited)
        agrees = lexical >= LEXICAL_SUPPORT or dense >= DENSE_SUPPORT
        supported = numbers_agree and (agrees or (bool(numbers) and not only_years(folded)))
        return Agreement(supported, numbers_agree, lexical, dense)

    def _passage_terms(self, n: int) -> set[str]:
        if n not in self._terms:
            self._terms[n] = set(analyze(self.hits[n - 1].text))
        return self._terms[n]

    def _passage_numbers(self, n: int) -> set[float]:
        if n not in self._numbers:
            found = number_values(fold(self.hits[n - 1].text)).values()
            self._numbers[n] = set().union(*found)
        return self._numbers[n]

    def _passage_vectors(self, n: int) -> Any:
        if self._vectors is None:
            passages = [(hit.rows, hit.text) for hit in self.hits]
            self._vectors = self.retriever.sentence_vectors_of(passages)
        return self._vectors[n - 1]


def makes_claim(sentence: str) -> bool:
    """Does an uncited sentence state something? Not a question, a label (short, or ending in a
    colon) or a sentence saying the passages do not answer."""
    text = sentence.strip()
    if len(_VISIBLE.findall(text)) < 8 or text.endswith(("?", "？", ":", "：")):
        return False
    return _NO_ANSWER.search(unicodedata.normalize("NFKC", text).lower()) is None


def only_years(folded: str) -> bool:
    """Are all the numbers in folded text bare years (1900-2099, no scale word)?"""
    return all(_YEAR.fullmatch(m.group(1)) and not m.group(2) for m in _NUMBER.finditer(folded))


def number_values(folded: str) -> dict[int, set[float]]:
    """Each number in folded text (by offset): its value as written and, with a scale word
    after it (億, billion…), its scaled value, to 6 significant digits."""
    found: dict[int, set[float]] = {}
    for match in _NUMBER.finditer(folded):
        value = float(match.group(1))
        values = {value}
        if match.group(2):
            values.add(value * _SCALE[match.group(2)])
        found[match.start()] = {float(f"{v:.6g}") for v in values}
    return found
