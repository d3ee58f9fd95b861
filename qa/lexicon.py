"""A Japanese -> Chinese lexicon mined from the corpus's own footnotes, once per loaded index.

A footnote cites its source by title, and a Chinese-language document about Japan cites many
Japanese titles: 〈南鳥島沖のレアアース、水中ドローンで探査〉 beside a body sentence that says
稀土. The body sentence carrying the footnote's marker and the title talk about the same thing in
two languages, so a katakana word that recurs in footnote titles is paired with the Chinese word
that recurs in the sentences citing them:

* each body sentence ending at a marker (``Document.markers``) is cut into jieba words of two or
  more Han characters (folded to Simplified, as the lexical index stores them);
* a katakana word (three or more characters) in a footnote's text is paired with every such word
  of the sentences citing that footnote;
* the word kept for a katakana word is the one paired with it most often, at least
  ``MIN_PAIRS`` times and in at least ``MIN_SHARE`` of the footnotes holding the katakana word;
  a tie goes to the word fewer footnotes cite (the more specific one).

No dictionary and no tuning to questions: the lexicon grows with the corpus. A Japanese question
then gets the Chinese word of each katakana word it contains (``katakana_terms``), which the
Chinese body text can match where its own katakana cannot. English glosses in parentheses
(日鐵（Nippon Steel）) were measured too and not kept (``eval/EXPERIMENTS.md``).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Container, Iterable
from dataclasses import dataclass
from functools import lru_cache

from qa.ingest.structure import SUPERSCRIPTS
from qa.lexical import analyze, fold, han_words
from qa.scripts import HAN, KATAKANA
from qa.types import Document

MIN_PAIRS = 2
MIN_SHARE = 0.5

_KATAKANA_WORD = re.compile(f"[{KATAKANA}]{{3,}}")
_HAN_WORD = re.compile(f"[{HAN}]{{2,}}")
_SENTENCE_END = "。！？!?\n"
# What may sit between a sentence's last word and its footnote marker.
_BEFORE_MARKER = frozenset("。！？!?」』）)]” " + SUPERSCRIPTS)


@dataclass(frozen=True)
class Lexicon:
    """Katakana word (NFKC) -> Chinese word (folded to Simplified)."""

    katakana: dict[str, str]

    def katakana_terms(self, question: str, vocab: Container[str]) -> list[str]:
        """Analyzed index terms of the Chinese words the question's katakana words stand for."""
        text = unicodedata.normalize("NFKC", question)
        terms: list[str] = []
        for word in dict.fromkeys(_KATAKANA_WORD.findall(text)):
            chinese = self.katakana.get(word)
            if chinese:
                terms.extend(t for t in _analyzed(chinese) if t in vocab)
        return terms


@lru_cache(maxsize=4096)
def _analyzed(word: str) -> tuple[str, ...]:
    return tuple(analyze(word))


def citing_sentence(document: Document, offset: int) -> str:
    """The body sentence that ends at the footnote marker at ``offset``."""
    text = document.text
    end = offset
    while end > 0 and text[end - 1] in _BEFORE_MARKER:
        end -= 1
    start = max(text.rfind(mark, 0, end) for mark in _SENTENCE_END) + 1
    return text[start:end].lstrip(SUPERSCRIPTS + " \n")


def mine_lexicon(documents: Iterable[Document]) -> Lexicon:
    """The katakana lexicon of ``documents`` (see the module docstring)."""
    pairs: Counter[tuple[str, str]] = Counter()
    katakana_notes: Counter[str] = Counter()
    word_notes: Counter[str] = Counter()
    for document in documents:
        cited: dict[int, set[str]] = {}
        for offset, n in document.markers:
            sentence = fold(citing_sentence(document, offset))
            words = {w for w in han_words(sentence) if _HAN_WORD.fullmatch(w)}
            cited.setdefault(n, set()).update(words)
        notes = {note.n: note for note in document.footnotes}
        for n, words in cited.items():
            note = notes.get(n)
            if note is None:
                continue
            word_notes.update(words)
            for katakana in set(_KATAKANA_WORD.findall(unicodedata.normalize("NFKC", note.text))):
                katakana_notes[katakana] += 1
                pairs.update((katakana, w) for w in words)
    best: dict[str, tuple[int, int, str]] = {}
    for (katakana, word), count in pairs.items():
        if count < MIN_PAIRS or count < MIN_SHARE * katakana_notes[katakana]:
            continue
        candidate = (count, -word_notes[word], word)
        if katakana not in best or candidate > best[katakana]:
            best[katakana] = candidate
    return Lexicon({k: word for k, (_, _, word) in sorted(best.items())})
