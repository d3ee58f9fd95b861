"""What a retriever needs from wherever a generation is stored: the ``Store`` protocol.

Two stores implement it: ``qa.index.Index`` (the generation folder under ``QA_INDEX_DIR``,
FAISS and BM25 arrays memory-mapped in the process) and ``qa.milvus.MilvusIndex`` (the same
generation published to Milvus collections). The retriever ranks, fuses, rescores and cites
the same way over both: a store only finds rows and hands back what was stored for them.

What every store keeps in the serving process is small per chunk: the documents (text and
structure, for citations and context), the chunk table (spans, sections, document runs for
filters), each chunk's hubness value, and the lexical vocabulary with document frequencies
(question analysis and IDF). Vectors and BM25 postings may live elsewhere.
"""

from __future__ import annotations

from collections.abc import Collection, Container, Iterator, Sequence
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from qa.dense import DenseInfo
from qa.types import Chunk, Document


class Lexical(Protocol):
    """BM25 over the analysed chunk texts (``qa.lexical.LexicalIndex`` is the local one)."""

    def top(
        self,
        terms: Sequence[str],
        depth: int,
        allowed: npt.NDArray[np.integer[Any]] | Collection[int] | None = None,
    ) -> dict[int, float]: ...

    def term_weights(self, terms: Sequence[str]) -> list[tuple[int | None, float]]: ...

    def weights_of(self, terms: Sequence[str]) -> dict[str, float]: ...

    def term_ids_of(self, rows: Sequence[int]) -> list[set[int]]:
        """The ids of the terms each of chunk ``rows`` contains (one request for all)."""
        ...

    @property
    def vocabulary(self) -> Container[str]: ...

    @property
    def size(self) -> int: ...


class ChunkRows(Protocol):
    """The chunk table (``qa.index.ChunkTable``): rows, filters' runs and sections."""

    @property
    def doc_rows(self) -> dict[str, tuple[int, int]]: ...

    @property
    def sections(self) -> tuple[str, ...]: ...

    @property
    def section_ids(self) -> npt.NDArray[np.int32]: ...

    def __len__(self) -> int: ...

    def __getitem__(self, row: int) -> Chunk: ...

    def __iter__(self) -> Iterator[Chunk]: ...


class Store(Protocol):
    """A loaded generation, immutable once loaded."""

    @property
    def manifest(self) -> dict[str, Any]: ...

    @property
    def documents(self) -> dict[str, Document]: ...

    @property
    def dense_info(self) -> DenseInfo: ...

    @property
    def hubness(self) -> Any:
        """Per chunk row (``qa.hubness``)."""
        ...

    @property
    def chunks(self) -> ChunkRows: ...

    @property
    def lexical(self) -> Lexical: ...

    @property
    def generation(self) -> str: ...

    @property
    def backend(self) -> str:
        """Where the generation is served from: "local" or "milvus"."""
        ...

    @property
    def collection(self) -> str | None:
        """The Milvus alias served (None for the local store)."""
        ...

    def dense_top(
        self, vector: Any, k: int, allowed: npt.NDArray[np.int64] | None
    ) -> list[tuple[int, float]]:
        """The ``k`` rows (among ``allowed``, sorted, when given) most similar to ``vector``,
        with their inner products, best first."""
        ...

    def sentence_rows(
        self, rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """The stored sentence vectors of chunk ``rows``, concatenated in row order, and how
        many belong to each row."""
        ...

    def check(self) -> None:
        """Raise ``BackendUnavailableError`` when the store cannot answer now (readiness)."""
        ...


def sentence_ids(
    ranges: Any, rows: npt.NDArray[np.int64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The sentence rows of chunk ``rows`` concatenated in row order (a sentence shared by two
    overlapping chunks appears for each), and how many belong to each chunk row."""
    spans = np.asarray(ranges[rows], dtype=np.int64).reshape(-1, 2)
    counts = spans[:, 1] - spans[:, 0]
    offsets = np.repeat(spans[:, 0] - np.cumsum(counts) + counts, counts)
    return offsets + np.arange(int(counts.sum()), dtype=np.int64), counts
