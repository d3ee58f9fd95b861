"""Lexical side: a Chinese-aware analyzer and a BM25 index (``bm25s``) over its tokens.

Corpus and query go through the same ``analyze``: NFKC width folding, lower case,
Traditional -> Simplified folding (OpenCC), then jieba search-mode words plus character
bigrams for Han text, bigrams for kana, and whole Latin words and numbers.
"""

from __future__ import annotations

import logging
import math
import re
import unicodedata
from collections.abc import Container, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qa.errors import DependencyMissingError, IndexCorruptError
from qa.scripts import HAN, HANGUL, KANA

ANALYZER_VERSION = 1

# Runs of one script in folded text (``qa.scripts`` ranges): Han, kana and Hangul runs are cut
# into words and bigrams; a "word" is lower-case ASCII letters and digits (folding has already
# made fullwidth letters ASCII), with inner dots, apostrophes and hyphens and a trailing "%".
_TOKEN_RUNS = re.compile(
    rf"(?P<han>[{HAN}]+)|(?P<kana>[{KANA}]+)|(?P<hangul>[{HANGUL}]+)"
    r"|(?P<word>[a-z0-9]+(?:[.'\-][a-z0-9]+)*%?)"
)
_NUMBER_GROUPING = re.compile(r"(?<=\d),(?=\d{3})")
# Function words that carry no topic; single Han characters only (multi-char words are kept).
_HAN_STOP = frozenset("的了在是和与及或而之其于也就都并对把被从向为以这那有个中上下等")
_LATIN_STOP = frozenset(
    """a an the of in on at to for from by with and or is are was were be been what which who
    whom whose when where why how does do did has have had it its this that these those as about
    into than then there their they them he she his her we our you your i me my""".split()
)


@lru_cache(maxsize=1)
def _converter() -> Any:
    try:
        from opencc import OpenCC
    except ImportError:
        raise DependencyMissingError(
            "lexical search needs OpenCC: pip install opencc-python-reimplemented"
        ) from None
    return OpenCC("t2s")


@lru_cache(maxsize=1)
def _jieba() -> Any:
    try:
        import jieba
    except ImportError:
        raise DependencyMissingError("lexical search needs jieba: pip install jieba") from None
    jieba.setLogLevel(logging.WARNING)
    jieba.initialize()
    return jieba


def word_prefixes() -> Container[str]:
    """jieba's prefix dictionary: every word and every beginning of one, in Simplified script."""
    prefixes: Container[str] = _jieba().dt.FREQ
    return prefixes


def fold(text: str) -> str:
    """Width, case and script folding shared by corpus and queries."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _NUMBER_GROUPING.sub("", text)
    return str(_converter().convert(text))


def analyze(text: str) -> list[str]:
    tokens: list[str] = []
    for match in _TOKEN_RUNS.finditer(fold(text)):
        kind, run = match.lastgroup, match.group()
        if kind == "han":
            tokens.extend(
                w for w in _jieba().cut_for_search(run) if len(w) > 1 or w not in _HAN_STOP
            )
            tokens.extend(run[i : i + 2] for i in range(len(run) - 1))
        elif kind in ("kana", "hangul"):
            tokens.extend([run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)])
        elif run not in _LATIN_STOP:
            tokens.append(run)
    return tokens


class LexicalIndex:
    """BM25 over analyzed chunk texts; row ``i`` is chunk ``i``."""

    def __init__(self, retriever: Any) -> None:
        self._retriever = retriever
        self._vocab: dict[str, int] = dict(retriever.vocab_dict)
        scores = retriever.scores
        # bm25s keeps a CSC matrix over (chunk, term): a term's column lists its chunks.
        indptr = np.asarray(scores["indptr"])
        chunk_of_entry = np.asarray(scores["indices"])
        self._doc_freq = np.diff(indptr)
        term_of_entry = np.repeat(np.arange(len(self._doc_freq)), self._doc_freq)
        order = np.argsort(chunk_of_entry, kind="stable")  # the same entries, chunk by chunk
        self._terms_sorted = term_of_entry[order]
        self._chunk_ptr = np.searchsorted(chunk_of_entry[order], np.arange(self.size + 1))

    @classmethod
    def build(cls, texts: list[str]) -> LexicalIndex:
        import bm25s

        retriever = bm25s.BM25()
        # An empty token list would make bm25s fail; a placeholder keeps row numbers aligned.
        retriever.index([analyze(t) or ["\x00"] for t in texts], show_progress=False)
        return cls(retriever)

    def save(self, directory: Path) -> None:
        self._retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> LexicalIndex:
        import bm25s

        try:
            retriever = bm25s.BM25.load(str(directory), show_progress=False)
        except (OSError, ValueError, KeyError) as exc:
            raise IndexCorruptError(f"lexical index in {directory} is unreadable: {exc}") from None
        analyze("warm up 预热")  # load jieba's dictionary now, not on the first query
        return cls(retriever)

    def scores(self, query: str, extra: Sequence[str] = ()) -> npt.NDArray[np.float32]:
        """BM25 score of every chunk for the text ``query`` plus ``extra`` analyzed terms."""
        return self.scores_for_terms([*analyze(query), *extra])

    def scores_for_terms(self, terms: Sequence[str]) -> npt.NDArray[np.float32]:
        """BM25 score of every chunk for already analyzed ``terms`` (``analyze`` output and
        translations); zeros when no term is known."""
        known = [t for t in terms if t in self._vocab]
        if not known:
            return np.zeros(self.size, dtype=np.float32)
        return np.asarray(self._retriever.get_scores(known), dtype=np.float32)

    def term_weights(self, terms: Sequence[str]) -> list[tuple[int | None, float]]:
        """(term id or None when the corpus lacks it, IDF) for each distinct analyzed term."""
        return [(self._vocab.get(term), idf) for term, idf in self.weights_of(terms).items()]

    def weights_of(self, terms: Sequence[str]) -> dict[str, float]:
        """IDF of each distinct analyzed term; a term the corpus lacks gets the highest IDF."""
        n = self.size
        weights = {}
        for term in set(terms):
            index = self._vocab.get(term)
            df = int(self._doc_freq[index]) if index is not None else 0
            weights[term] = math.log(1 + (n - df + 0.5) / (df + 0.5))
        return weights

    def term_ids_of(self, row: int) -> set[int]:
        """Ids of the terms chunk ``row`` contains."""
        start, end = self._chunk_ptr[row], self._chunk_ptr[row + 1]
        return set(self._terms_sorted[start:end].tolist())

    @property
    def vocabulary(self) -> Container[str]:
        """The analyzed terms the index knows."""
        return self._vocab.keys()

    @property
    def size(self) -> int:
        return int(self._retriever.scores["num_docs"])
