"""Hubness: how close each passage lies to the rest of the corpus, so dense ranking can discount it.

In a multilingual embedding space some passages are near almost everything: a section opening
that names every topic of the chapter, a run of Japanese footnote titles. They come up first for
many questions they do not answer, most of all for questions in another language than the
passage. Cross-domain similarity local scaling (CSLS; Conneau et al., 2018, "Word translation
without parallel data") ranks a target ``d`` for a query ``q`` by ``2 cos(q, d) - r(d)``, where
``r(d)`` is the mean similarity of ``d`` to its ``K`` nearest queries. With no query log, the
corpus's own sentences stand in for questions (each states one fact, as a question asks for
one). A passage's own sentences, and those of passages overlapping it, are left out: otherwise
every passage would be its own nearest neighbour.

``r`` depends on the whole corpus, so it is computed for each index generation, after the
vectors are known, and stored beside them (``hubness.npy``). The retriever subtracts a share of it
from the dense similarity (``DenseSettings.hubness_weight``).
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Any

import numpy as np

from qa.types import Chunk

HUB_NEIGHBOURS = 20
# Above this many distinct sentences an evenly spaced sample stands in for all of them: the
# mean over the nearest K barely moves, and the cost stays linear in the number of chunks.
HUB_REFERENCE_CAP = 20_000
_BLOCK = 1024


def hub_scores(
    chunks: Sequence[Chunk],
    sentence_vectors: Any,
    sentence_ptr: Any,
    chunk_vectors: Any,
    sentence_keys: Sequence[Hashable] | None = None,
    *,
    neighbours: int = HUB_NEIGHBOURS,
    reference_cap: int = HUB_REFERENCE_CAP,
) -> np.ndarray:
    """``r`` per chunk row: mean cosine to its ``neighbours`` nearest sentences elsewhere.

    ``sentence_keys`` names each sentence row (the same sentence stored by two overlapping
    chunks has one key, and is counted once); without them every row is its own sentence."""
    count = len(chunks)
    result = np.zeros(count, dtype=np.float32)
    if count == 0 or len(sentence_vectors) == 0:
        return result
    sentences = np.asarray(sentence_vectors, dtype=np.float32)
    owners = np.repeat(np.arange(count), np.diff(np.asarray(sentence_ptr)))
    keys = list(range(len(sentences))) if sentence_keys is None else list(sentence_keys)
    if len(keys) != len(sentences) or len(owners) != len(sentences):
        raise ValueError(f"{len(sentences)} sentences, {len(keys)} keys, {len(owners)} owned")
    distinct: dict[Hashable, int] = {}  # key -> its first row, in document order
    for row, key in enumerate(keys):
        distinct.setdefault(key, row)
    first_rows = np.fromiter(distinct.values(), dtype=np.int64, count=len(distinct))
    if len(first_rows) > reference_cap:  # an evenly spaced sample
        first_rows = first_rows[np.linspace(0, len(first_rows) - 1, reference_cap).astype(np.int64)]
    column_of_key = {keys[row]: column for column, row in enumerate(first_rows.tolist())}
    columns_by_chunk: list[set[int]] = [set() for _ in range(count)]
    for owner, key in zip(owners.tolist(), keys, strict=True):
        column = column_of_key.get(key)
        if column is not None:
            columns_by_chunk[owner].add(column)
    excluded = [
        sorted(set().union(*(columns_by_chunk[other] for other in overlapping)))
        for overlapping in _overlapping(chunks)
    ]
    reference_vectors = sentences[first_rows]
    vectors = np.asarray(chunk_vectors, dtype=np.float32)
    for start in range(0, count, _BLOCK):
        stop = min(start + _BLOCK, count)
        similarity = vectors[start:stop] @ reference_vectors.T
        for local, row in enumerate(range(start, stop)):
            values = np.delete(similarity[local], excluded[row])
            if len(values):
                k = min(neighbours, len(values))
                result[row] = float(np.partition(values, len(values) - k)[-k:].mean())
    return result


def _overlapping(chunks: Sequence[Chunk]) -> list[list[int]]:
    """For each chunk row, the rows of chunks sharing text with it (itself included)."""
    found: list[list[int]] = [[row] for row in range(len(chunks))]
    by_doc: dict[str, list[int]] = {}
    for row, chunk in enumerate(chunks):
        by_doc.setdefault(chunk.doc_id, []).append(row)
    for rows in by_doc.values():
        rows.sort(key=lambda r: (chunks[r].char_start, chunks[r].char_end))
        for position, row in enumerate(rows):
            end = chunks[row].char_end
            for other in rows[position + 1 :]:
                if chunks[other].char_start >= end:
                    break
                found[row].append(other)
                found[other].append(row)
    return found
