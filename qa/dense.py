"""The dense index, chosen by size: exact inner product up to ``EXACT_UP_TO`` vectors, HNSW above.

Exact search costs one dot product per chunk (about 6 ms at 100k chunks and 60 ms at 1M on one
core); HNSW visits a few thousand. Its price is recall, so every HNSW index is measured when it
is built: the top 10 of ``recall_queries`` real vectors (stored sentences, which are question-
like and are not the indexed chunk vectors) against exact search, and the smallest ``efSearch``
reaching ``RECALL_TARGET`` is kept. The figure goes into the manifest and ``GET /v1/index``.

Both kinds keep the full float32 vectors (``IndexFlatIP`` codes; ``IndexHNSWFlat`` storage), so a
chunk's vector is stored once and read back with ``reconstruct``, and both are memory-mapped
when loaded (``IO_FLAG_MMAP_IFC``): server processes share the pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

EXACT_UP_TO = 50_000
HNSW_NEIGHBOURS = 16
HNSW_EF_CONSTRUCTION = 40
EF_SEARCH_CHOICES = (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
RECALL_TARGET = 0.95
RECALL_AT = 10
RECALL_QUERIES = 400
# A filter allowing at most this many rows is searched exactly over those rows alone.
EXACT_FILTER_ROWS = 20_000
_ADD_BLOCK = 16_384

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class DenseInfo:
    """What was built and how well it finds the exact neighbours."""

    kind: str  # "flat" (exact) or "hnsw"
    factory: str  # the FAISS index factory string of the same index
    vectors: int
    recall_at_10: float  # against exact search; 1.0 for flat by construction
    recall_queries: int  # how many vectors measured it (0 for flat)
    search_params: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DenseInfo:
        return cls(**{**data, "search_params": dict(data.get("search_params") or {})})


def _faiss() -> Any:
    import faiss

    return faiss


def build_dense(
    vectors: npt.NDArray[np.float32],
    *,
    probes: npt.NDArray[np.float32] | None = None,
    exact_up_to: int | None = None,
    progress: Progress | None = None,
) -> tuple[Any, DenseInfo]:
    """An index over ``vectors`` (unit rows, may be a memory map) and what it is.

    ``probes`` are the query-like vectors the HNSW recall is measured with; without them, a
    sample of ``vectors`` stands in (each finds itself, so the figure is optimistic)."""
    faiss = _faiss()
    count, dimension = int(vectors.shape[0]), int(vectors.shape[1])
    if count <= (EXACT_UP_TO if exact_up_to is None else exact_up_to):
        index = faiss.IndexFlatIP(dimension)
        _add(index, vectors, "dense index", progress)
        return index, DenseInfo("flat", "Flat", count, 1.0, 0)
    index = faiss.IndexHNSWFlat(dimension, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    index.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
    _add(index, vectors, "dense index (HNSW)", progress)
    queries = _recall_queries(vectors, probes)
    exact = _exact_top(vectors, queries, RECALL_AT)
    recall, ef = 0.0, EF_SEARCH_CHOICES[-1]
    for ef in EF_SEARCH_CHOICES:
        index.hnsw.efSearch = ef
        _, found = index.search(queries, RECALL_AT)
        recall = _recall(found, exact)
        if recall >= RECALL_TARGET:
            break
    factory = f"HNSW{HNSW_NEIGHBOURS},Flat"
    return index, DenseInfo(
        "hnsw", factory, count, round(recall, 4), len(queries), {"efSearch": ef}
    )


def _add(index: Any, vectors: Any, phase: str, progress: Progress | None) -> None:
    count = len(vectors)
    for start in range(0, count, _ADD_BLOCK):
        block = np.ascontiguousarray(vectors[start : start + _ADD_BLOCK], dtype=np.float32)
        index.add(block)
        if progress is not None:
            progress(phase, min(start + _ADD_BLOCK, count), count)


def _recall_queries(vectors: Any, probes: Any) -> npt.NDArray[np.float32]:
    source = probes if probes is not None and len(probes) else vectors
    rows = np.linspace(0, len(source) - 1, min(RECALL_QUERIES, len(source))).astype(np.int64)
    return np.ascontiguousarray(np.asarray(source[rows], dtype=np.float32))


def _exact_top(vectors: Any, queries: Any, k: int) -> npt.NDArray[np.int64]:
    """Exact top ``k`` rows for each query, a block of vectors at a time (bounded memory)."""
    best_scores = np.full((len(queries), k), -np.inf, dtype=np.float32)
    best_rows = np.full((len(queries), k), -1, dtype=np.int64)
    for start in range(0, len(vectors), _ADD_BLOCK):
        block = np.asarray(vectors[start : start + _ADD_BLOCK], dtype=np.float32)
        scores = queries @ block.T
        scores = np.concatenate([best_scores, scores], axis=1)
        rows = np.concatenate(
            [best_rows, np.broadcast_to(np.arange(start, start + len(block)), scores[:, k:].shape)],
            axis=1,
        )
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        best_scores = np.take_along_axis(scores, top, axis=1)
        best_rows = np.take_along_axis(rows, top, axis=1)
    return best_rows


def _recall(found: Any, exact: Any) -> float:
    pairs = zip(found.tolist(), exact.tolist(), strict=True)
    hits = sum(len({r for r in f if r >= 0} & set(e)) for f, e in pairs)
    return float(hits / max(1, exact.size))


def write_dense(index: Any, path: Path) -> None:
    _faiss().write_index(index, str(path))


def load_dense(path: Path, info: DenseInfo) -> Any:
    """The index memory-mapped (its vectors stay in the page cache, shared between processes)."""
    faiss = _faiss()
    index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC | faiss.IO_FLAG_READ_ONLY)
    if info.kind == "hnsw":
        index.hnsw.efSearch = int(info.search_params.get("efSearch", 64))
    return index


def search(
    index: Any,
    info: DenseInfo,
    vector: npt.NDArray[np.float32],
    k: int,
    allowed: npt.NDArray[np.int64] | None = None,
) -> list[tuple[int, float]]:
    """The ``k`` most similar rows, best first; with ``allowed`` (sorted row numbers), only
    those: a few thousand are scored exactly, more are searched with a FAISS ID selector, so
    a filter never ranks every chunk."""
    query = np.ascontiguousarray(vector[None, :], dtype=np.float32)
    if allowed is None:
        scores, rows = index.search(query, min(k, index.ntotal))
    elif len(allowed) <= EXACT_FILTER_ROWS:
        return _exact_over(index, query[0], allowed, k)
    else:
        faiss = _faiss()
        selector = faiss.IDSelectorBatch(allowed)
        if info.kind == "hnsw":
            ef = max(int(info.search_params.get("efSearch", 64)), k)
            params: Any = faiss.SearchParametersHNSW(sel=selector, efSearch=ef)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, rows = index.search(query, min(k, len(allowed)), params=params)
    # FAISS pads with -1 when it holds fewer vectors than asked for.
    return [(int(r), float(s)) for r, s in zip(rows[0], scores[0], strict=True) if r >= 0]


def _exact_over(index: Any, query: Any, allowed: Any, k: int) -> list[tuple[int, float]]:
    if not len(allowed):
        return []
    vectors = index.reconstruct_batch(np.asarray(allowed, dtype=np.int64))
    scores = vectors @ query
    top = np.argsort(-scores, kind="stable")[:k] if len(scores) <= k else None
    if top is None:
        part = np.argpartition(-scores, k - 1)[:k]
        top = part[np.lexsort((allowed[part], -scores[part]))]
    return [(int(allowed[i]), float(scores[i])) for i in top]


def vectors_of(index: Any, rows: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
    """The stored vectors of ``rows`` (exact for both kinds: both keep float32 vectors)."""
    result: npt.NDArray[np.float32] = index.reconstruct_batch(np.asarray(rows, dtype=np.int64))
    return result
