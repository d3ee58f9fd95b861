"""The dense index, chosen by size: exact inner product up to ``EXACT_UP_TO`` vectors, IVF above.

Exact search costs one dot product per chunk (about 6 ms at 100k chunks and 60 ms at 1M on one
core). The inverted file (``IVF<nlist>,Flat``) clusters the vectors into about ``4 sqrt(n)``
cells and scans only the ``nprobe`` cells nearest the question. Its price is recall, so every
IVF index is measured when it is built: the top 10 of ``RECALL_QUERIES`` real query-like vectors
(stored sentences, which are not the indexed chunk vectors) against exact search, and the
smallest ``nprobe`` reaching ``RECALL_TARGET`` is kept. The figure goes into the manifest,
``qa ingest``'s output and ``GET /v1/index``.

IVF rather than HNSW because corpora repeat themselves (copies, versions, boilerplate): near
duplicates share a cell and a scanned cell is searched exhaustively, while an HNSW graph
(``HNSW16``, efConstruction 40) found 57% of the exact top 10 among a million such vectors even
at efSearch 512 (``eval/EXPERIMENTS.md``).

Both kinds keep the full float32 vectors, so a chunk's vector is stored once and read back with
``reconstruct``, and both are memory-mapped when loaded: server processes share the pages.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

EXACT_UP_TO = 50_000
NPROBE_CHOICES = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
_TRAIN_PER_CELL = 40  # k-means sample: this many vectors per cell
_KMEANS_ITERATIONS = 10
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

    kind: str  # "flat" (exact) or "ivf"
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

    ``probes`` are the query-like vectors the IVF recall is measured with; without them, a
    sample of ``vectors`` stands in (each finds itself, so the figure is optimistic)."""
    faiss = _faiss()
    count, dimension = int(vectors.shape[0]), int(vectors.shape[1])
    if count <= (EXACT_UP_TO if exact_up_to is None else exact_up_to):
        index = faiss.IndexFlatIP(dimension)
        _add(index, vectors, "dense index", progress)
        return index, DenseInfo("flat", "Flat", count, 1.0, 0)
    cells = cells_for(count)
    quantizer = faiss.IndexFlatIP(dimension)
    index = faiss.IndexIVFFlat(quantizer, dimension, cells, faiss.METRIC_INNER_PRODUCT)
    index.cp.niter = _KMEANS_ITERATIONS
    sample = np.linspace(0, count - 1, min(count, cells * _TRAIN_PER_CELL)).astype(np.int64)
    if progress is not None:
        progress("dense index (IVF training)", 0, count)
    index.train(np.ascontiguousarray(vectors[sample], dtype=np.float32))
    index.set_direct_map_type(faiss.DirectMap.Array)  # reconstruct(row): a vector stored once
    _add(index, vectors, "dense index (IVF)", progress)
    queries = _recall_queries(vectors, probes)
    exact = _exact_top(vectors, queries, RECALL_AT)
    recall, nprobe = 0.0, NPROBE_CHOICES[-1]
    for nprobe in NPROBE_CHOICES:
        index.nprobe = min(nprobe, cells)
        _, found = index.search(queries, RECALL_AT)
        recall = _recall(found, exact)
        if recall >= RECALL_TARGET:
            break
    params = {"nprobe": min(nprobe, cells), "nlist": cells}
    info = DenseInfo("ivf", f"IVF{cells},Flat", count, round(recall, 4), len(queries), params)
    return index, info


def cells_for(count: int) -> int:
    """IVF cells for ``count`` vectors: about 4 sqrt(n) (FAISS's guidance for this range), and
    never fewer than ``_TRAIN_PER_CELL`` vectors to train each."""
    return max(1, min(int(4 * np.sqrt(count)), count // _TRAIN_PER_CELL))


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
    mmap = faiss.IO_FLAG_MMAP if info.kind == "ivf" else faiss.IO_FLAG_MMAP_IFC
    index = faiss.read_index(str(path), mmap | faiss.IO_FLAG_READ_ONLY)
    if info.kind == "ivf":
        index.nprobe = int(info.search_params.get("nprobe", 32))
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
        if info.kind == "ivf":
            # A filter leaves fewer rows in each cell: scan more cells to still find k.
            share = len(allowed) / max(1, index.ntotal)
            nprobe = int(info.search_params.get("nprobe", 32) / max(share, 1e-3) ** 0.5)
            params: Any = faiss.SearchParametersIVF(sel=selector, nprobe=min(nprobe, index.nlist))
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
