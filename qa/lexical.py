"""Lexical side: a Chinese-aware analyzer and a BM25 index (``bm25s``) over its tokens.

Corpus and query go through the same ``analyze``: NFKC width folding, lower case,
Traditional -> Simplified folding (OpenCC), then jieba search-mode words plus character
bigrams for Han text, bigrams for kana, and whole Latin words and numbers.
"""

from __future__ import annotations

import logging
import math
import os
import re
import unicodedata
from collections.abc import Collection, Container, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

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


def han_words(text: str) -> list[str]:
    """jieba's words of ``text`` in its precise mode (no overlapping sub-words); fold first."""
    return list(_jieba().cut(text))


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


# --- the index ----------------------------------------------------------------------------------
#
# On disk, one directory: bm25s's files, so ``bm25s.BM25.load`` reads it, plus two of ours.
#   params.index.json, vocab.index.json    bm25s: BM25 parameters; term -> column
#   {data,indices,indptr}.csc.index.npy    bm25s: CSC matrix (chunk x term) of BM25 term scores;
#                                          column t holds the chunks that contain term t, ascending
#   chunk_terms.npy, chunk_ptr.npy         the same entries row by row: the term ids of chunk i are
#                                          chunk_terms[chunk_ptr[i] : chunk_ptr[i + 1]]
# Every array is memory-mapped on load, so server processes share its pages.

_PLACEHOLDER = "\x00"  # the one token of a chunk with none: rows stay aligned with chunks
_K1, _B = 1.5, 0.75  # bm25s defaults (method "lucene"), the parameters every index was built with
_EXTRA = ("chunk_terms.npy", "chunk_ptr.npy")


def _index_dtype(limit: int) -> type[np.signedinteger[Any]]:
    """int32 for positions that fit in it, int64 beyond."""
    return np.int32 if limit < 2**31 else np.int64


_FLOAT32 = np.dtype(np.float32)


# From this many chunks on, queries use bm25s's numba scorer; below it NumPy's scatter-add is
# about as fast, and loading a small index skips compiling the scorer (or reading numba's cache).
JIT_FROM_CHUNKS = 20_000


@lru_cache(maxsize=1)
def _jit_scorer() -> Any:
    """bm25s's scorer compiled by numba, as ``BM25(backend="numba")`` compiles it (cached on disk
    after the first compilation of about 2 s); None without numba (NumPy does the same sums)."""
    if os.environ.get("NUMBA_DISABLE_JIT"):
        return None
    try:
        from bm25s.scoring import _compute_relevance_from_scores_jit_ready
        from numba import njit
    except ImportError:
        return None
    return njit(cache=True, nogil=True)(_compute_relevance_from_scores_jit_ready)


class LexicalBuilder:
    """Builds a ``LexicalIndex`` from batches of chunks, keeping only term-id arrays.

    A batch is analysed, mapped to term ids and reduced to each chunk's distinct terms with their
    frequencies (about 8 bytes per distinct term); the BM25 matrix is written when every chunk
    has been seen, because IDF and the average chunk length need them all. The scores are the
    ones ``bm25s.BM25().index(token_lists)`` computes (Lucene BM25, k1 1.5, b 0.75), bit for bit.
    """

    def __init__(self) -> None:
        self._vocab: dict[str, int] = {}
        self._terms: list[npt.NDArray[np.int32]] = []  # per batch, chunk by chunk, ascending ids
        self._counts: list[npt.NDArray[np.int32]] = []  # their frequencies in the chunk
        self._distinct: list[npt.NDArray[np.int64]] = []  # per chunk: how many distinct terms
        self._lengths: list[npt.NDArray[np.int64]] = []  # per chunk: how many tokens

    def term_ids(self, tokens: Sequence[str]) -> npt.NDArray[np.int32]:
        """Ids of ``tokens`` in this builder's vocabulary, adding the new ones."""
        vocab = self._vocab
        return np.fromiter(
            (vocab.setdefault(t, len(vocab)) for t in tokens), dtype=np.int32, count=len(tokens)
        )

    def add_texts(self, texts: Sequence[str]) -> None:
        """Analyse and add one batch of chunk texts, in row order."""
        tokens = [analyze(t) or [_PLACEHOLDER] for t in texts]
        lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
        self.add_ids(self.term_ids([t for chunk in tokens for t in chunk]), lengths)

    def add_ids(self, ids: npt.NDArray[np.integer[Any]], lengths: npt.NDArray[np.int64]) -> None:
        """Add a batch of chunks given as the concatenation ``ids`` of their term ids
        (from ``term_ids``) and each chunk's token count ``lengths`` (at least 1)."""
        lengths = np.asarray(lengths, dtype=np.int64)
        if len(lengths) and (lengths.min() < 1 or lengths.sum() != len(ids)):
            raise ValueError("every chunk needs at least one token and lengths must sum to ids")
        width = max(len(self._vocab), 1)
        chunk = np.repeat(np.arange(len(lengths), dtype=np.int64), lengths)
        keys, counts = np.unique(chunk * width + ids, return_counts=True)
        self._terms.append((keys % width).astype(np.int32))
        self._counts.append(counts.astype(np.int32))
        self._distinct.append(np.bincount(keys // width, minlength=len(lengths)))
        self._lengths.append(lengths)

    def finish(self) -> LexicalIndex:
        vocab, n_terms = self._vocab, len(self._vocab)
        vocab.setdefault("", n_terms)  # bm25s adds an empty token after the real ones
        lengths = np.concatenate([np.zeros(0, np.int64), *self._lengths])
        size, average = len(lengths), lengths.mean() if len(lengths) else 0.0
        doc_freq = np.zeros(n_terms, dtype=np.int64)
        for terms in self._terms:
            doc_freq += np.bincount(terms, minlength=n_terms)
        idf = np.zeros(n_terms, dtype=np.float32)
        for df in np.unique(doc_freq[doc_freq > 0]).tolist():  # bm25s's Lucene IDF, in floats
            idf[doc_freq == df] = math.log(1 + (size - df + 0.5) / (df + 0.5))
        indptr = np.zeros(n_terms + 1, dtype=np.int64)
        np.cumsum(doc_freq, out=indptr[1:])
        entries = int(indptr[-1])
        data = np.empty(entries, dtype=np.float32)
        rows = np.empty(entries, dtype=np.int32)
        chunk_terms = np.empty(entries, dtype=np.int32)
        distinct_all = np.concatenate([np.zeros(0, np.int64), *self._distinct])
        chunk_ptr = np.concatenate([[0], np.cumsum(distinct_all)]).astype(_index_dtype(entries))
        heads = indptr[:-1].copy()
        first_row = 0
        while self._terms:  # batch by batch, freeing each as it is written
            terms, counts = self._terms.pop(0), self._counts.pop(0)
            distinct, own_lengths = self._distinct.pop(0), self._lengths.pop(0)
            start = int(chunk_ptr[first_row])
            chunk_terms[start : start + len(terms)] = terms
            # bm25s: tf / (k1 * ((1 - b) + b * l_d / l_avg) + tf) * idf, in float64, stored float32
            norm = np.repeat(_K1 * ((1 - _B) + _B * own_lengths / average), distinct)
            tf = counts.astype(np.float32)
            scores = (idf[terms] * (tf / (norm + tf))).astype(np.float32)
            chunk = first_row + np.repeat(np.arange(len(distinct)), distinct)
            order = np.argsort(terms, kind="stable")  # column by column, rows ascending
            sorted_terms = terms[order]
            rank = np.arange(len(order)) - np.searchsorted(sorted_terms, sorted_terms)
            position = heads[sorted_terms] + rank
            rows[position] = chunk[order]
            data[position] = scores[order]
            seen, per_term = np.unique(sorted_terms, return_counts=True)
            heads[seen] += per_term
            first_row += len(distinct)
        self._vocab = {}
        return LexicalIndex(vocab, data, rows, indptr, size, chunk_terms, chunk_ptr)


class TermStatistics:
    """The vocabulary (analysed term -> id), the number of chunks and each term's document
    frequency: what question analysis and IDF need, whether the postings are here
    (``LexicalIndex``) or in Milvus (``qa.milvus.MilvusLexical``)."""

    _vocab: dict[str, int]
    _size: int

    def _doc_freq(self, column: int) -> int:
        """How many chunks hold term ``column``."""
        raise NotImplementedError

    def term_weights(self, terms: Sequence[str]) -> list[tuple[int | None, float]]:
        """(term id or None when the corpus lacks it, IDF) for each distinct analyzed term."""
        return [(self._vocab.get(term), idf) for term, idf in self.weights_of(terms).items()]

    def weights_of(self, terms: Sequence[str]) -> dict[str, float]:
        """BM25's IDF, ``log(1 + (n - df + 0.5) / (df + 0.5))``, of each distinct analyzed
        term; a term the corpus lacks (df 0) gets the highest. Only these terms' document
        frequencies are looked up."""
        weights = {}
        for term in set(terms):
            column = self._vocab.get(term)
            df = self._doc_freq(column) if column is not None else 0
            weights[term] = math.log(1 + (self._size - df + 0.5) / (df + 0.5))
        return weights

    @property
    def vocabulary(self) -> Container[str]:
        """The analyzed terms the index knows."""
        return self._vocab.keys()

    @property
    def size(self) -> int:
        return self._size


class LexicalIndex(TermStatistics):
    """BM25 over analyzed chunk texts; row ``i`` is chunk ``i``."""

    def __init__(
        self,
        vocab: dict[str, int],
        data: npt.NDArray[np.float32],
        rows: npt.NDArray[np.int32],
        indptr: npt.NDArray[np.int64],
        size: int,
        chunk_terms: npt.NDArray[np.int32],
        chunk_ptr: npt.NDArray[np.integer[Any]],
    ) -> None:
        self._vocab = vocab
        # Plain ndarray views of memory maps: the same shared pages, without np.memmap's
        # per-slice overhead (several microseconds, paid per term per query).
        self._data, self._rows, self._indptr = (
            np.asarray(data),
            np.asarray(rows),
            np.asarray(indptr),
        )
        self._size = size
        self._columns = len(indptr) - 1  # the empty token "" has an id but no column
        self._chunk_terms, self._chunk_ptr = np.asarray(chunk_terms), np.asarray(chunk_ptr)

    @classmethod
    def build(cls, texts: Sequence[str], batch: int = 4096) -> LexicalIndex:
        builder = LexicalBuilder()
        for start in range(0, len(texts), batch):
            builder.add_texts(texts[start : start + batch])
        return builder.finish()

    def save(self, directory: Path) -> None:
        import bm25s

        retriever = bm25s.BM25(k1=_K1, b=_B)
        retriever.scores = {
            "data": self._data,
            "indices": self._rows,
            "indptr": self._indptr,
            "num_docs": self._size,
        }
        retriever.vocab_dict = self._vocab
        retriever.nonoccurrence_array = None
        retriever.save(str(directory), show_progress=False)
        for name, array in zip(_EXTRA, (self._chunk_terms, self._chunk_ptr), strict=True):
            np.save(directory / name, array, allow_pickle=False)

    @classmethod
    def load(cls, directory: Path, *, mmap: bool = True) -> LexicalIndex:
        """The index saved in ``directory``; its arrays memory-mapped unless ``mmap`` is False.
        An index written before ``chunk_terms.npy`` existed gets the row view derived."""
        import bm25s

        try:
            retriever = bm25s.BM25.load(str(directory), mmap=mmap, show_progress=False)
            scores, vocab = retriever.scores, dict(retriever.vocab_dict)
            data, rows, indptr = scores["data"], scores["indices"], scores["indptr"]
            size = int(scores["num_docs"])
            if (
                indptr.ndim != 1
                or len(indptr) - 1 > len(vocab)
                or int(indptr[-1]) != len(rows)
                or len(rows) != len(data)
            ):
                raise ValueError("the CSC arrays disagree")
            if all((directory / name).exists() for name in _EXTRA):
                mode: Literal["r"] | None = "r" if mmap else None
                chunk_terms, chunk_ptr = (
                    np.load(directory / name, mmap_mode=mode, allow_pickle=False) for name in _EXTRA
                )
                if len(chunk_ptr) != size + 1 or int(chunk_ptr[-1]) != len(chunk_terms):
                    raise ValueError("the row arrays disagree with the CSC arrays")
            else:
                chunk_terms, chunk_ptr = _row_view(rows, indptr, size)
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            raise IndexCorruptError(f"lexical index in {directory} is unreadable: {exc}") from None
        analyze("warm up 预热")  # load jieba's dictionary now, not on the first query
        index = cls(vocab, data, rows, indptr, size, chunk_terms, chunk_ptr)
        index.scores_for_terms([])  # a large index compiles (or reads from cache) the scorer now
        return index

    def scores(self, query: str, extra: Sequence[str] = ()) -> npt.NDArray[np.float32]:
        """BM25 score of every chunk for the text ``query`` plus ``extra`` analyzed terms."""
        return self.scores_for_terms([*analyze(query), *extra])

    def scores_for_terms(self, terms: Sequence[str]) -> npt.NDArray[np.float32]:
        """BM25 score of every chunk for already analyzed ``terms`` (``analyze`` output and
        translations); zeros when no term is known. A repeated term counts again; the terms are
        added in their order, in float32, as ``bm25s`` does (with its numba scorer when numba
        is installed: several times faster than NumPy's scatter-add on large indexes)."""
        columns = np.asarray(self._known(terms), dtype=np.int64)
        scorer = _jit_scorer() if self._size >= JIT_FROM_CHUNKS else None
        if scorer is not None:
            args = (self._data, self._indptr, self._rows, self._size, columns, _FLOAT32)
            return np.asarray(scorer(*args))
        scores = np.zeros(self._size, dtype=np.float32)
        for column in columns.tolist():
            start, end = self._indptr[column], self._indptr[column + 1]
            scores[self._rows[start:end]] += self._data[start:end]
        return scores

    def top(
        self,
        terms: Sequence[str],
        depth: int,
        allowed: npt.NDArray[np.integer[Any]] | Collection[int] | None = None,
    ) -> dict[int, float]:
        """The ``depth`` best rows for ``terms`` (among ``allowed`` rows, when given) with their
        positive scores, best first, ties by lower row: ``scores_for_terms`` ranked without
        sorting every score; a filter's rows alone are scored when probing them is cheaper."""
        columns = self._known(terms)
        if not columns or depth <= 0:
            return {}
        if allowed is not None:
            if isinstance(allowed, np.ndarray):
                rows = allowed.astype(np.int64, copy=False)
            else:
                rows = np.fromiter(allowed, dtype=np.int64, count=len(allowed))
            rows = np.unique(rows[(rows >= 0) & (rows < self._size)])
            if self._probing_is_cheaper(columns, len(rows)):
                return _best(rows, self._scores_of(columns, rows), depth)
            return _best(rows, self.scores_for_terms(terms)[rows], depth)
        scores = self.scores_for_terms(terms)
        rows = _above(scores, depth)
        return _best(rows, scores[rows], depth)

    def _known(self, terms: Sequence[str]) -> list[int]:
        """Column of each term the index knows, in order, repeats kept."""
        ids = (self._vocab.get(t) for t in terms)
        return [i for i in ids if i is not None and i < self._columns]

    def _probing_is_cheaper(self, columns: Sequence[int], allowed: int) -> bool:
        """Whether binary searches for ``allowed`` rows beat scoring every posting (rough
        costs in ns, measured on this machine at 100k and 1M chunks)."""
        ids = np.asarray(columns, dtype=np.int64)
        df = (self._indptr[ids + 1] - self._indptr[ids]).astype(np.float64)
        shorter, longer = np.minimum(df, allowed), np.maximum(df, allowed)
        probe = float((shorter * np.log2(longer + 2)).sum()) * 3 + 12_000 * len(ids)
        jit = self._size >= JIT_FROM_CHUNKS and _jit_scorer() is not None
        scatter = float(df.sum()) * (2.2 if jit else 8) + self._size * 0.5
        return probe < scatter

    def _scores_of(
        self, columns: Sequence[int], rows: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.float32]:
        """``scores_for_terms`` at ``rows`` only (ascending), each column probed by binary
        search from whichever side is shorter; the same float32 sums in the same order."""
        scores = np.zeros(len(rows), dtype=np.float32)
        if not len(rows):
            return scores
        rows = rows.astype(self._rows.dtype)  # searchsorted copies a column of another dtype
        for column in columns:
            start, end = int(self._indptr[column]), int(self._indptr[column + 1])
            if end == start:
                continue
            posting = self._rows[start:end]
            if end - start < len(rows):  # look the column's rows up among ``rows``
                at = np.searchsorted(rows, posting).clip(max=len(rows) - 1)
                hit = rows[at] == posting
                scores[at[hit]] += self._data[start:end][hit]
            else:  # look ``rows`` up in the column
                at = np.searchsorted(posting, rows).clip(max=end - start - 1)
                hit = posting[at] == rows
                scores[hit] += self._data[start + at[hit]]
        return scores

    def _doc_freq(self, column: int) -> int:
        """How many chunks hold term ``column`` (0 for an id without a column)."""
        if column >= self._columns:
            return 0
        return int(self._indptr[column + 1] - self._indptr[column])

    def document_frequencies(self) -> npt.NDArray[np.int64]:
        """How many chunks hold each term, by term id (ids past the end: none)."""
        return np.diff(self._indptr).astype(np.int64)

    def terms(self) -> dict[str, int]:
        """Each analysed term the index knows and its id (a copy)."""
        return dict(self._vocab)

    def postings_by_row(
        self,
    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The BM25 weights as rows: chunk ``i``'s term ids and weights are entries
        ``ptr[i]:ptr[i + 1]`` of the first two arrays (term ids ascending). A row's weights
        summed over a question's terms is ``scores_for_terms`` at that row: what a sparse
        inner-product search over these rows computes."""
        doc_freq = self.document_frequencies()
        term_of_entry = np.repeat(np.arange(len(doc_freq), dtype=np.int32), doc_freq)
        order = np.argsort(self._rows, kind="stable")
        ptr = np.searchsorted(self._rows[order], np.arange(self._size + 1)).astype(np.int64)
        return term_of_entry[order], np.asarray(self._data)[order], ptr

    def term_ids_of(self, rows: Sequence[int]) -> list[set[int]]:
        """Ids of the terms each of chunk ``rows`` contains."""
        ptr, terms = self._chunk_ptr, self._chunk_terms
        return [set(terms[ptr[row] : ptr[row + 1]].tolist()) for row in rows]


def _above(scores: npt.NDArray[np.float32], depth: int) -> npt.NDArray[np.int64]:
    """Rows (ascending) that include the ``depth`` best positive ones and all their ties, without
    sorting every score: a threshold from an evenly spaced sample of about ``32 * depth`` scores
    (its 16th best, so about n / (2 * depth) rows pass), lowered to zero when too few pass."""
    if len(scores) > 64 * depth:
        sample = scores[:: len(scores) // (32 * depth)]
        threshold = np.partition(sample, len(sample) - 16)[len(sample) - 16]
        if threshold > 0:
            rows = np.flatnonzero(scores >= threshold)
            if len(rows) >= depth:
                return rows
    return np.flatnonzero(scores > 0)


def _best(
    rows: npt.NDArray[np.integer[Any]], scores: npt.NDArray[np.float32], depth: int
) -> dict[int, float]:
    """The ``depth`` rows of highest positive score, ties by lower row; ``rows`` ascending."""
    positive = scores > 0
    rows, scores = rows[positive], scores[positive]
    if len(rows) > depth:  # keep everything tied with the depth-th score, then sort that
        kth = np.partition(scores, len(scores) - depth)[len(scores) - depth]
        keep = scores >= kth
        rows, scores = rows[keep], scores[keep]
    order = np.lexsort((rows, -scores))[:depth]
    return {int(r): float(s) for r, s in zip(rows[order], scores[order], strict=True)}


def _row_view(
    rows: npt.NDArray[np.int32], indptr: npt.NDArray[np.int64], size: int
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.integer[Any]]]:
    """The row view of an index saved without it (before ``chunk_terms.npy`` existed)."""
    doc_freq = np.diff(indptr)
    term_of_entry = np.repeat(np.arange(len(doc_freq), dtype=np.int32), doc_freq)
    order = np.argsort(rows, kind="stable")
    chunk_ptr = np.searchsorted(rows[order], np.arange(size + 1)).astype(_index_dtype(len(rows)))
    return term_of_entry[order], chunk_ptr
