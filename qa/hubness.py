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

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

HUB_NEIGHBOURS = 20
# Above this many sentences an evenly spaced sample stands in for all of them: the mean over
# the nearest K barely moves, and the cost stays linear in the number of chunks.
HUB_REFERENCE_CAP = 20_000
_BLOCK = 1024

Span = tuple[str, int, int]  # (doc_id, char_start, char_end) of a chunk


def hub_scores(
    spans: Sequence[Span],
    sentence_vectors: Any,
    sentence_ranges: Any,
    chunk_vectors: Any,
    *,
    neighbours: int = HUB_NEIGHBOURS,
    reference_cap: int = HUB_REFERENCE_CAP,
    progress: Callable[[str, int, int], None] | None = None,
) -> np.ndarray:
    """``r`` per chunk row: mean cosine to its ``neighbours`` nearest sentences elsewhere.

    Sentence rows are distinct sentences (overlapping chunks share rows); chunk ``i`` owns rows
    ``sentence_ranges[i]``. The sentences of every chunk sharing text with chunk ``i`` (itself
    included) form one run of rows, and that run is left out of its neighbours."""
    count = len(spans)
    result = np.zeros(count, dtype=np.float32)
    total = len(sentence_vectors)
    if count == 0 or total == 0:
        return result
    ranges = np.asarray(sentence_ranges, dtype=np.int64).reshape(count, 2)
    reference_rows = np.arange(total, dtype=np.int64)
    if total > reference_cap:  # an evenly spaced sample
        reference_rows = np.linspace(0, total - 1, reference_cap).astype(np.int64)
    reference = np.asarray(sentence_vectors[reference_rows], dtype=np.float32)
    low, high = ranges[:, 0].copy(), ranges[:, 1].copy()
    for row, others in enumerate(_overlapping(spans)):
        for other in others:
            low[row] = min(low[row], ranges[other, 0])
            high[row] = max(high[row], ranges[other, 1])
    # Columns of the reference sample inside each chunk's excluded run of rows.
    first = np.searchsorted(reference_rows, low, side="left")
    last = np.searchsorted(reference_rows, high, side="left")
    columns = np.arange(len(reference_rows))
    for start in range(0, count, _BLOCK):
        stop = min(start + _BLOCK, count)
        block = np.asarray(chunk_vectors[start:stop], dtype=np.float32)
        similarity = block @ reference.T
        excluded = (columns >= first[start:stop, None]) & (columns < last[start:stop, None])
        similarity[excluded] = -np.inf
        remaining = len(columns) - (last[start:stop] - first[start:stop])
        k = min(neighbours, len(columns))
        nearest = np.partition(similarity, len(columns) - k, axis=1)[:, -k:]
        full = remaining >= k
        result[start:stop][full] = nearest[full].mean(axis=1)
        for local in np.flatnonzero(~full & (remaining > 0)):  # fewer sentences than K left
            values = similarity[local][np.isfinite(similarity[local])]
            result[start + local] = float(values.mean())
        if progress is not None:
            progress("hubness", stop, count)
    return result


def _overlapping(spans: Sequence[Span]) -> list[list[int]]:
    """For each chunk row, the other rows of chunks sharing text with it."""
    found: list[list[int]] = [[] for _ in range(len(spans))]
    by_doc: dict[str, list[int]] = {}
    for row, (doc_id, _, _) in enumerate(spans):
        by_doc.setdefault(doc_id, []).append(row)
    for rows in by_doc.values():
        rows.sort(key=lambda r: (spans[r][1], spans[r][2]))
        for position, row in enumerate(rows):
            end = spans[row][2]
            for other in rows[position + 1 :]:
                if spans[other][1] >= end:
                    break
                found[row].append(other)
                found[other].append(row)
    return found
