"""The Milvus store (``QA_BACKEND=milvus``): a generation published as Milvus collections and
served through one alias.

A generation ``gen-…`` becomes three collections named ``<name>_<gen>_…``:

- ``chunks``: one entity per chunk row (primary key ``row``): its text and citation metadata
  (the ``chunks.jsonl`` row), its dense vector, its BM25 weights as a sparse vector (term id ->
  weight, from our own analysis: OpenCC folding, jieba words and Han bigrams), its hubness and
  its run of sentence rows;
- ``sentences``: one entity per distinct sentence vector (primary key = sentence row);
- ``files``: the manifest, ``documents.jsonl`` and the lexical vocabulary with document
  frequencies, in pieces.

The alias ``<name>`` points at the ``chunks`` collection of the generation being served. A
generation is written, indexed, loaded and checked (entity counts, file checksums) before the
alias moves, so a reader never sees a half-written one; the previous generation is kept for
readers in flight, older ones are dropped.

Ranking is the retriever's, as with the local store: Milvus finds the dense candidates (inner
product over the same vectors FAISS holds) and the lexical ones (inner product of the
question's term counts with each row's BM25 weights: exactly BM25), and hands back stored
sentence vectors for rescoring. ``pymilvus`` is imported only here, and only when this store
is used.
"""

from __future__ import annotations

import hashlib
import json
import threading
from array import array
from collections.abc import Callable, Collection, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from qa.dense import DenseInfo, vectors_of
from qa.errors import (
    BackendUnavailableError,
    DependencyMissingError,
    IndexCorruptError,
    IndexNotFoundError,
)
from qa.index import (
    ChunkTable,
    Index,
    check_compatible,
    documents_from_rows,
    iter_jsonl,
    open_generation,
)
from qa.lexical import TermStatistics
from qa.store import sentence_ids
from qa.types import Document

_T = TypeVar("_T")
_PIECE_CHARS = 16_000  # a VARCHAR holds 65,535 bytes; 16k characters of any script fit
_BATCH = 512  # entities per insert call
_SCAN = 2048  # chunk entities per query when loading
_MAX_RUNS = 64  # a filter of more runs of rows is sent as a list of rows
_FILES = ("manifest.json", "documents.jsonl")
_VOCABULARY = "vocabulary.json"


@dataclass(frozen=True)
class MilvusTarget:
    """Where generations are published and served from."""

    uri: str
    name: str = "qa"  # the alias; collections are ``<name>_<generation>_<part>``
    token: str | None = None
    timeout: float = 10.0


_CLIENTS: dict[tuple[str, str | None], Any] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(target: MilvusTarget) -> Any:
    """One client per URI per process (gRPC channels are thread-safe); a ``.db`` path starts
    the embedded milvus-lite server in this process."""
    key = (target.uri, target.token)
    with _CLIENTS_LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            try:
                from pymilvus import MilvusClient
            except ImportError:
                raise DependencyMissingError(
                    "QA_BACKEND=milvus needs pymilvus (and milvus-lite for a .db URI): "
                    "pip install pymilvus milvus-lite"
                ) from None
            options: dict[str, Any] = {"uri": target.uri, "timeout": target.timeout}
            if target.token:
                options["token"] = target.token
            client = _call(target, lambda: MilvusClient(**options))
            _CLIENTS[key] = client
    return client


def _call(target: MilvusTarget, action: Callable[[], _T]) -> _T:
    """Run one Milvus call; any failure of the client or the server is a 503 for the API."""
    try:
        return action()
    except (DependencyMissingError, IndexNotFoundError, IndexCorruptError):
        raise
    except Exception as exc:  # pymilvus raises MilvusException, grpc errors, OSError...
        reason = getattr(exc, "message", None) or str(exc) or type(exc).__name__
        raise BackendUnavailableError(target.uri, str(reason).splitlines()[0][:300]) from None


def _base(target: MilvusTarget, generation: str) -> str:
    return f"{target.name}_{generation.replace('-', '_')}"


def _generation_of(target: MilvusTarget, collection: str) -> str:
    prefix, suffix = f"{target.name}_", "_chunks"
    if not (collection.startswith(prefix) and collection.endswith(suffix)):
        raise IndexCorruptError(f"alias {target.name} points at {collection}, not a generation")
    return collection[len(prefix) : -len(suffix)].replace("_", "-")


def served_generation(target: MilvusTarget) -> str | None:
    """The generation the alias points at, or None when nothing was published."""
    client = _client(target)
    aliases = _call(target, lambda: client.list_aliases(timeout=target.timeout))
    if target.name not in aliases.get("aliases", ()):
        return None
    described = _call(target, lambda: client.describe_alias(target.name, timeout=target.timeout))
    return _generation_of(target, described["collection_name"])


# ---------------------------------------------------------------------------------------------
# Publishing


def publish(
    generation: Path,
    target: MilvusTarget,
    *,
    model_id: str,
    dimension: int,
    progress: Callable[[str, int, int], None] | None = None,
) -> bool:
    """Publish the local generation folder ``generation`` to Milvus and point the alias at it;
    False when it is already the one served. Collections of an unfinished publish (a killed
    ``qa ingest``) are dropped first: a generation is only ever served complete."""
    current = served_generation(target)
    if current == generation.name:
        return False
    client = _client(target)
    index = open_generation(generation, model_id=model_id, dimension=dimension)
    files = _file_texts(generation, index)
    keep = {_base(target, current)} if current else set()
    _drop_generations(target, client, keep)
    base = _base(target, generation.name)
    _create(target, client, base, index.dense.d, index.dense_info)
    _insert_files(target, client, base, files)
    _insert_sentences(target, client, base, index, progress)
    _insert_chunks(target, client, base, index, progress)
    for part in ("files", "sentences", "chunks"):
        _call(target, partial(client.load_collection, f"{base}_{part}"))
    _verify(target, client, base, index, files)
    if current is None:
        _call(target, lambda: client.create_alias(f"{base}_chunks", target.name))
    else:
        _call(target, lambda: client.alter_alias(f"{base}_chunks", target.name))
    _drop_generations(target, client, {base, *keep})
    return True


def _drop_generations(target: MilvusTarget, client: Any, keep: set[str]) -> None:
    """Drop the collections of every generation under ``target.name`` but ``keep``'s."""
    names = _call(target, lambda: client.list_collections())
    prefix = f"{target.name}_gen_"
    for name in names:
        if not name.startswith(prefix):
            continue
        base = name.rsplit("_", 1)[0]
        if base not in keep:
            _call(target, partial(client.drop_collection, name))


def _create(target: MilvusTarget, client: Any, base: str, dimension: int, info: DenseInfo) -> None:
    from pymilvus import DataType, MilvusClient

    chunks = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    chunks.add_field("row", DataType.INT64, is_primary=True)
    chunks.add_field("doc_id", DataType.VARCHAR, max_length=1024)
    chunks.add_field("text", DataType.VARCHAR, max_length=65_535)
    chunks.add_field("meta", DataType.JSON)  # the chunks.jsonl row but its text
    chunks.add_field("dense", DataType.FLOAT_VECTOR, dim=dimension)
    chunks.add_field("lexical", DataType.SPARSE_FLOAT_VECTOR)
    chunks.add_field("hubness", DataType.FLOAT)
    chunks.add_field("sentence_start", DataType.INT64)
    chunks.add_field("sentence_end", DataType.INT64)
    params = client.prepare_index_params()
    if info.kind == "flat":
        params.add_index("dense", index_type="FLAT", metric_type="IP")
    else:  # the cell count the local build chose; its nprobe is passed at search time
        nlist = int(info.search_params.get("nlist", 1024))
        params.add_index("dense", index_type="IVF_FLAT", metric_type="IP", params={"nlist": nlist})
    params.add_index("lexical", index_type="SPARSE_INVERTED_INDEX", metric_type="IP")
    _call(target, lambda: client.create_collection(f"{base}_chunks", schema=chunks))
    _call(target, lambda: client.create_index(f"{base}_chunks", params))

    sentences = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    sentences.add_field("row", DataType.INT64, is_primary=True)
    sentences.add_field("vector", DataType.FLOAT_VECTOR, dim=dimension)
    params = client.prepare_index_params()
    params.add_index("vector", index_type="FLAT", metric_type="IP")
    _call(target, lambda: client.create_collection(f"{base}_sentences", schema=sentences))
    _call(target, lambda: client.create_index(f"{base}_sentences", params))

    files = MilvusClient.create_schema(auto_id=False, enable_dynamic_field=False)
    files.add_field("key", DataType.VARCHAR, is_primary=True, max_length=256)
    files.add_field("name", DataType.VARCHAR, max_length=128)
    files.add_field("part", DataType.INT64)
    files.add_field("data", DataType.VARCHAR, max_length=65_535)
    # Milvus requires a vector field in every collection; this one is never searched.
    files.add_field("unused", DataType.FLOAT_VECTOR, dim=2)
    params = client.prepare_index_params()
    params.add_index("unused", index_type="FLAT", metric_type="L2")
    _call(target, lambda: client.create_collection(f"{base}_files", schema=files))
    _call(target, lambda: client.create_index(f"{base}_files", params))


def _file_texts(generation: Path, index: Index) -> dict[str, str]:
    texts = {name: (generation / name).read_text("utf-8") for name in _FILES}
    vocabulary = {
        "terms": index.lexical.terms(),
        "doc_freq": index.lexical.document_frequencies().tolist(),
        "size": index.lexical.size,
    }
    texts[_VOCABULARY] = json.dumps(vocabulary, ensure_ascii=False)
    return texts


def _insert_files(target: MilvusTarget, client: Any, base: str, files: dict[str, str]) -> None:
    rows = []
    for name, text in files.items():
        for part, start in enumerate(range(0, max(len(text), 1), _PIECE_CHARS)):
            piece = text[start : start + _PIECE_CHARS]
            rows.append(
                {
                    "key": f"{name}/{part:08d}",
                    "name": name,
                    "part": part,
                    "data": piece,
                    "unused": [0.0, 0.0],
                }
            )
    for start in range(0, len(rows), _BATCH):
        batch = rows[start : start + _BATCH]
        _call(target, partial(client.insert, f"{base}_files", batch))


def _insert_sentences(
    target: MilvusTarget,
    client: Any,
    base: str,
    index: Index,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    total = len(index.sentence_vectors)
    for start in range(0, total, _BATCH):
        block = np.asarray(index.sentence_vectors[start : start + _BATCH], dtype=np.float32)
        batch = [{"row": start + i, "vector": vector.tolist()} for i, vector in enumerate(block)]
        _call(target, partial(client.insert, f"{base}_sentences", batch))
        if progress:
            progress("publishing sentences", start + len(batch), total)


def _insert_chunks(
    target: MilvusTarget,
    client: Any,
    base: str,
    index: Index,
    progress: Callable[[str, int, int], None] | None,
) -> None:
    terms, weights, ptr = index.lexical.postings_by_row()
    lines = iter_jsonl(index.path / "chunks.jsonl")
    total = len(index.chunks)
    for start in range(0, total, _BATCH):
        rows = np.arange(start, min(start + _BATCH, total), dtype=np.int64)
        vectors = vectors_of(index.dense, rows)
        batch = []
        for i, row in enumerate(rows.tolist()):
            meta = next(lines)
            text = meta.pop("text")
            a, b = int(ptr[row]), int(ptr[row + 1])
            sparse = dict(zip(terms[a:b].tolist(), weights[a:b].tolist(), strict=True))
            first, end = (int(v) for v in index.sentence_ranges[row])
            batch.append(
                {
                    "row": row,
                    "doc_id": meta["doc_id"],
                    "text": text,
                    "meta": meta,
                    "dense": vectors[i].tolist(),
                    # Milvus rejects an empty sparse vector: a row without terms gets a zero
                    # weight on term 0, which adds nothing to any score.
                    "lexical": sparse or {0: 0.0},
                    "hubness": float(index.hubness[row]),
                    "sentence_start": first,
                    "sentence_end": end,
                }
            )
        _call(target, partial(client.insert, f"{base}_chunks", batch))
        if progress:
            progress("publishing chunks", start + len(batch), total)


def _count(target: MilvusTarget, client: Any, collection: str) -> int:
    found = _call(target, lambda: client.query(collection, filter="", output_fields=["count(*)"]))
    return int(found[0]["count(*)"])


def _verify(
    target: MilvusTarget, client: Any, base: str, index: Index, files: dict[str, str]
) -> None:
    """Entity counts and file contents as written, before the alias may move."""
    expected = {"chunks": len(index.chunks), "sentences": len(index.sentence_vectors)}
    for part, count in expected.items():
        found = _count(target, client, f"{base}_{part}")
        if found != count:
            raise BackendUnavailableError(
                target.uri, f"{base}_{part} holds {found} entities after publishing {count}"
            )
    for name, text in files.items():
        if _read_file(target, client, base, name) != text:
            raise BackendUnavailableError(target.uri, f"{base}_files: {name} differs once stored")


def _read_file(target: MilvusTarget, client: Any, base: str, name: str) -> str:
    """A stored file, its pieces read a page at a time (a query returns a bounded window)."""
    rows: list[dict[str, Any]] = []
    while True:
        expression = f'name == "{name}" and part >= {len(rows)} and part < {len(rows) + _SCAN}'
        page = _call(
            target,
            partial(
                client.query, f"{base}_files", filter=expression, output_fields=["part", "data"]
            ),
        )
        rows.extend(page)
        if len(page) < _SCAN:
            break
    if not rows:
        raise IndexCorruptError(f"{base}_files has no {name}")
    rows.sort(key=lambda r: int(r["part"]))
    if [int(r["part"]) for r in rows] != list(range(len(rows))):
        raise IndexCorruptError(f"{base}_files: pieces of {name} are missing")
    return "".join(r["data"] for r in rows)


# ---------------------------------------------------------------------------------------------
# Serving


def open_milvus(target: MilvusTarget, *, model_id: str, dimension: int) -> MilvusIndex:
    """The generation the alias points at, with what the serving process keeps of it loaded."""
    generation = served_generation(target)
    if generation is None:
        raise IndexNotFoundError(
            f"no index published to Milvus at {target.uri} under {target.name!r}; "
            "build one with `qa ingest` (QA_BACKEND=milvus)"
        )
    client = _client(target)
    base = _base(target, generation)
    for part in ("files", "sentences", "chunks"):  # a no-op where they are loaded already
        _call(target, partial(client.load_collection, f"{base}_{part}"))
    manifest = json.loads(_read_file(target, client, base, "manifest.json"))
    check_compatible(manifest, model_id=model_id, dimension=dimension)
    documents_text = _read_file(target, client, base, "documents.jsonl")
    expected = manifest.get("files", {}).get("documents.jsonl")
    if expected and hashlib.sha256(documents_text.encode("utf-8")).hexdigest() != expected:
        raise IndexCorruptError(f"{base}_files: documents.jsonl does not match its checksum")
    documents = {
        d.doc_id: d
        for d in documents_from_rows(
            json.loads(line) for line in documents_text.split("\n") if line
        )
    }
    vocabulary = json.loads(_read_file(target, client, base, _VOCABULARY))
    hubness, ranges = array("f"), array("q")  # 4 and 16 bytes a chunk, not Python objects

    def items() -> Iterator[dict[str, Any]]:
        """Chunk rows in order, one scan batch at a time (never the whole table as dicts);
        each row's hubness and sentence range kept on the way."""
        for row in _scan_chunks(target, client, f"{base}_chunks"):
            hubness.append(float(row["hubness"]))
            ranges.extend((int(row["sentence_start"]), int(row["sentence_end"])))
            yield {**row["meta"], "text": row["text"]}

    chunks = ChunkTable(items(), documents, f"{base}_chunks")
    lexical = MilvusLexical(
        target,
        f"{base}_chunks",
        {str(k): int(v) for k, v in vocabulary["terms"].items()},
        np.asarray(vocabulary["doc_freq"], dtype=np.int64),
        int(vocabulary["size"]),
    )
    if lexical.size != len(chunks):
        raise IndexCorruptError(f"{base}: {len(chunks)} chunks, {lexical.size} lexical rows")
    return MilvusIndex(
        target=target,
        base=base,
        generation=generation,
        manifest=manifest,
        documents=documents,
        chunks=chunks,
        dense_info=DenseInfo.from_dict(manifest["dense"]),
        hubness=np.frombuffer(hubness, dtype=np.float32),
        sentence_ranges=np.frombuffer(ranges, dtype=np.int64).reshape(-1, 2),
        lexical=lexical,
    )


def _scan_chunks(target: MilvusTarget, client: Any, collection: str) -> Iterator[dict[str, Any]]:
    """Every chunk entity in row order, read by ranges of rows; the primary key must run
    0..n-1 without a gap (a half-written or altered collection is refused)."""
    fields = ["row", "text", "meta", "hubness", "sentence_start", "sentence_end"]
    total = _count(target, client, collection)
    for start in range(0, total, _SCAN):
        expression = f"row >= {start} and row < {start + _SCAN}"
        found = _call(
            target,
            partial(client.query, collection, filter=expression, output_fields=fields),
        )
        batch = sorted(found, key=lambda r: int(r["row"]))
        expected = list(range(start, min(start + _SCAN, total)))
        if [int(r["row"]) for r in batch] != expected:
            raise IndexCorruptError(f"{collection}: chunk rows are not 0..{total - 1}")
        yield from batch


def _row_filter(allowed: npt.NDArray[np.int64] | None) -> str:
    """A Milvus boolean expression for the sorted rows ``allowed`` ("" for no filter): runs of
    consecutive rows as ranges (a document's rows are one run), else the list of rows."""
    if allowed is None:
        return ""
    breaks = np.flatnonzero(np.diff(allowed) != 1) + 1
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks, [len(allowed)]]) - 1
    if len(starts) > _MAX_RUNS:
        return f"row in [{','.join(map(str, allowed.tolist()))}]"
    return " or ".join(
        f"(row >= {int(allowed[a])} and row <= {int(allowed[b])})"
        for a, b in zip(starts.tolist(), ends.tolist(), strict=True)
    )


def _hits(found: Any) -> list[tuple[int, float]]:
    """Search results as (row, score), best first, ties by lower row (as the local store)."""
    pairs = [(int(hit["row"]), float(hit["distance"])) for hit in (found[0] if found else [])]
    return sorted(pairs, key=lambda pair: (-pair[1], pair[0]))


class MilvusLexical(TermStatistics):
    """BM25 over the ``lexical`` sparse field: the question's known terms, counted, as a
    sparse query; IDF and vocabulary from the generation's stored vocabulary."""

    def __init__(
        self,
        target: MilvusTarget,
        collection: str,
        vocab: dict[str, int],
        doc_freq: npt.NDArray[np.int64],
        size: int,
    ) -> None:
        self._target, self._collection = target, collection
        self._vocab, self._doc_freq_of, self._size = vocab, doc_freq, size

    def top(
        self,
        terms: Sequence[str],
        depth: int,
        allowed: npt.NDArray[np.integer[Any]] | Collection[int] | None = None,
    ) -> dict[int, float]:
        counts: dict[int, float] = {}
        for term in terms:
            column = self._vocab.get(term)
            if column is not None and self._doc_freq(column):
                counts[column] = counts.get(column, 0.0) + 1.0
        if not counts or depth <= 0:
            return {}
        rows = None if allowed is None else np.unique(np.fromiter(allowed, dtype=np.int64))
        if rows is not None and not len(rows):
            return {}
        client = _client(self._target)
        found = _call(
            self._target,
            lambda: client.search(
                self._collection,
                data=[counts],
                anns_field="lexical",
                limit=depth,
                filter=_row_filter(rows),
                output_fields=["row"],
                search_params={"metric_type": "IP", "params": {"drop_ratio_search": 0.0}},
                timeout=self._target.timeout,
            ),
        )
        return {row: score for row, score in _hits(found) if score > 0}

    def _doc_freq(self, column: int) -> int:
        return int(self._doc_freq_of[column]) if column < len(self._doc_freq_of) else 0

    def term_ids_of(self, rows: Sequence[int]) -> list[set[int]]:
        if not rows:
            return []
        client = _client(self._target)
        found = _call(
            self._target,
            lambda: client.get(
                self._collection,
                ids=sorted(set(rows)),
                output_fields=["lexical"],
                timeout=self._target.timeout,
            ),
        )
        by_row = {
            int(item["row"]): {int(t) for t, weight in dict(item["lexical"]).items() if weight}
            for item in found
        }
        return [by_row.get(row, set()) for row in rows]


@dataclass(frozen=True)
class MilvusIndex:
    """A generation served from Milvus (``qa.store.Store``)."""

    target: MilvusTarget
    base: str  # the generation's collections are ``<base>_<part>``
    generation: str
    manifest: dict[str, Any]
    documents: dict[str, Document]
    chunks: ChunkTable
    dense_info: DenseInfo
    hubness: Any
    sentence_ranges: Any
    lexical: MilvusLexical

    @property
    def backend(self) -> str:
        return "milvus"

    @property
    def collection(self) -> str | None:
        return self.target.name

    def dense_top(
        self, vector: Any, k: int, allowed: npt.NDArray[np.int64] | None
    ) -> list[tuple[int, float]]:
        if allowed is not None and not len(allowed):
            return []
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.dense_info.kind != "flat":
            params["params"] = {"nprobe": int(self.dense_info.search_params.get("nprobe", 16))}
        client = _client(self.target)
        found = _call(
            self.target,
            lambda: client.search(
                f"{self.base}_chunks",
                data=[np.asarray(vector, dtype=np.float32).tolist()],
                anns_field="dense",
                limit=k,
                filter=_row_filter(allowed),
                output_fields=["row"],
                search_params=params,
                timeout=self.target.timeout,
            ),
        )
        return _hits(found)

    def sentence_rows(
        self, rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        ids, counts = sentence_ids(self.sentence_ranges, rows)
        return self._sentences(ids), counts

    def _sentences(self, wanted: npt.NDArray[np.int64]) -> npt.NDArray[np.float32]:
        """The stored sentence vectors of sentence rows ``wanted`` (repeats allowed), in order."""
        if not len(wanted):
            return np.zeros((0, int(self.manifest["dimension"])), dtype=np.float32)
        unique = np.unique(wanted)
        client = _client(self.target)
        found = _call(
            self.target,
            lambda: client.get(
                f"{self.base}_sentences",
                ids=unique.tolist(),
                output_fields=["vector"],
                timeout=self.target.timeout,
            ),
        )
        by_row = {int(item["row"]): item["vector"] for item in found}
        if len(by_row) != len(unique):
            raise IndexCorruptError(f"{self.base}_sentences lacks sentence rows")
        vectors = np.asarray([by_row[i] for i in unique.tolist()], dtype=np.float32)
        return vectors[np.searchsorted(unique, wanted)]

    def check(self) -> None:
        client = _client(self.target)
        _call(
            self.target,
            lambda: client.describe_alias(self.target.name, timeout=self.target.timeout),
        )
