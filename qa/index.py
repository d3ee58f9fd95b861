"""Build, save and load the index: FAISS (inner product over unit vectors) + BM25 + manifest.

Layout under the index directory::

    CURRENT              name of the generation being served (replaced atomically)
    gen-<time>-<rand>/   manifest.json, documents.jsonl, chunks.jsonl, vectors.npy,
                         sentences.npy, sentence_ptr.npy, hubness.npy, dense.faiss, lexical/

A build writes a complete new generation and only then switches ``CURRENT`` to it, so a
reader sees the old index or the new one, never a mixture. Unchanged documents reuse the
previous generation's chunks and vectors: re-ingesting an unchanged corpus embeds nothing.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from qa.chunk import ChunkerSettings, chunk_document, sentence_spans
from qa.embed import Embedder, Vectors
from qa.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexNotFoundError
from qa.hubness import HUB_NEIGHBOURS, HUB_REFERENCE_CAP, hub_scores
from qa.ingest import INGEST_VERSION
from qa.lexical import ANALYZER_VERSION, LexicalIndex
from qa.types import Block, Chunk, Document, Footnote, Heading

SCHEMA_VERSION = 3
_POINTER = "CURRENT"
_LOCK = ".lock"
_EMBED_BATCH = 64
ProgressCallback = Callable[[int, int], None]


@dataclass(frozen=True)
class BuildReport:
    generation: str
    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: tuple[str, ...]
    chunks_total: int
    chunks_embedded: int
    seconds: float


@dataclass(frozen=True)
class Index:
    """A loaded generation: everything a retriever needs, immutable once loaded."""

    path: Path
    manifest: dict[str, Any]
    documents: dict[str, Document]
    chunks: tuple[Chunk, ...]
    dense: Any  # faiss.Index
    lexical: LexicalIndex
    sentence_vectors: Vectors  # every chunk's sentences, chunk after chunk
    sentence_ptr: Any  # chunk i's sentences are rows sentence_ptr[i]:sentence_ptr[i + 1]
    hubness: Any  # per chunk row: mean cosine to its nearest corpus sentences (qa.hubness)

    @property
    def generation(self) -> str:
        return self.path.name


def _faiss() -> Any:
    import faiss

    return faiss


def current_generation(index_dir: Path) -> Path | None:
    pointer = index_dir / _POINTER
    if not pointer.is_file():
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    return index_dir / name if name else None


def read_manifest(generation: Path) -> dict[str, Any]:
    try:
        manifest: dict[str, Any] = json.loads((generation / "manifest.json").read_text("utf-8"))
    except FileNotFoundError:
        raise IndexCorruptError(f"{generation} has no manifest.json") from None
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"manifest in {generation} is unreadable: {exc}") from None
    return manifest


def check_compatible(manifest: dict[str, Any], *, model_id: str, dimension: int) -> None:
    """Raise ``IndexMismatchError`` naming both sides when the index cannot serve this model."""
    checks = (
        ("schema version", manifest.get("schema_version"), SCHEMA_VERSION),
        ("embedding model", manifest.get("embed_model"), model_id),
        ("embedding dimension", manifest.get("dimension"), dimension),
    )
    for what, built, wanted in checks:
        if built != wanted:
            raise IndexMismatchError(
                f"index was built with {what} {built!r} but this service uses {wanted!r}; "
                "rebuild it with `qa ingest --rebuild` or set QA_EMBED_MODEL to match"
            )


def load_index(index_dir: Path, *, model_id: str, dimension: int) -> Index:
    generation = current_generation(index_dir)
    if generation is None:
        raise IndexNotFoundError(f"no index in {index_dir}; build one with `qa ingest`")
    manifest = read_manifest(generation)
    check_compatible(manifest, model_id=model_id, dimension=dimension)
    _verify_checksums(generation, manifest)
    documents = {d.doc_id: d for d in _read_documents(generation / "documents.jsonl")}
    chunks = tuple(_read_chunks(generation / "chunks.jsonl"))
    dense = _faiss().read_index(str(generation / "dense.faiss"))
    lexical = LexicalIndex.load(generation / "lexical")
    sentences = np.load(generation / "sentences.npy", allow_pickle=False)
    pointer = np.load(generation / "sentence_ptr.npy", allow_pickle=False)
    if (
        dense.ntotal != len(chunks)
        or dense.d != dimension
        or lexical.size != len(chunks)
        or len(pointer) != len(chunks) + 1
        or int(pointer[-1]) != len(sentences)
    ):
        raise IndexCorruptError(
            f"{generation} is inconsistent: {len(chunks)} chunks, {dense.ntotal} vectors "
            f"of dimension {dense.d}, {lexical.size} lexical rows, {len(sentences)} sentences"
        )
    hubs = _load_hubness(generation, manifest, chunks, sentences, pointer)
    return Index(generation, manifest, documents, chunks, dense, lexical, sentences, pointer, hubs)


def _hubness_settings() -> dict[str, int]:
    return {"neighbours": HUB_NEIGHBOURS, "reference_cap": HUB_REFERENCE_CAP}


def _load_hubness(
    generation: Path,
    manifest: dict[str, Any],
    chunks: Sequence[Chunk],
    sentences: Vectors,
    pointer: Any,
) -> Any:
    """The stored values, or (a generation built before they existed, or with other settings)
    values computed now from the stored vectors: the same numbers, only later."""
    stored = generation / "hubness.npy"
    if manifest.get("hubness") == _hubness_settings() and stored.is_file():
        values = np.load(stored, allow_pickle=False)
        if values.shape != (len(chunks),):
            raise IndexCorruptError(
                f"{generation} is inconsistent: {len(chunks)} chunks, {len(values)} hubness values"
            )
        return values
    vectors = np.load(generation / "vectors.npy", allow_pickle=False)
    return hub_scores(chunks, sentences, pointer, vectors, sentence_keys(chunks, len(sentences)))


def sentence_keys(chunks: Sequence[Chunk], stored: int) -> list[tuple[str, int, int]] | None:
    """(doc_id, start, end) of each stored sentence row, in the order ``_embed_chunks`` wrote
    them: a sentence two overlapping chunks share has one key. None if the sentence splitter
    no longer yields the ``stored`` rows (an index built by an older version)."""
    keys = [
        (chunk.doc_id, chunk.char_start + start, chunk.char_start + end)
        for chunk in chunks
        for start, end in sentence_spans(chunk.text)
    ]
    return keys if len(keys) == stored else None


def indexed_doc_ids(index_dir: Path) -> tuple[str, ...]:
    """The doc_ids the current generation's manifest lists (none when it is unreadable)."""
    generation = current_generation(index_dir)
    try:
        return tuple(read_manifest(generation)["documents"]) if generation else ()
    except (IndexCorruptError, KeyError, TypeError):
        return ()


def indexed_documents(index_dir: Path) -> dict[str, Document]:
    """The documents the current generation holds (empty when there is none), whatever model
    built it: a later build keeps them unless it is told to remove them."""
    generation = current_generation(index_dir)
    if generation is None:
        return {}
    try:
        return {d.doc_id: d for d in _read_documents(generation / "documents.jsonl")}
    except (IndexCorruptError, KeyError, TypeError, ValueError) as exc:
        raise IndexCorruptError(
            f"cannot read the documents of {generation} ({exc}); to rebuild the index from the "
            "given paths alone, run `qa ingest --prune PATH...`"
        ) from None


def build_index(
    documents: Sequence[Document],
    *,
    embedder: Embedder,
    chunker: ChunkerSettings,
    index_dir: Path,
    rebuild: bool = False,
    progress: ProgressCallback | None = None,
) -> BuildReport:
    """Write a complete new generation, then switch to it; one build at a time per directory."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(index_dir):
        for stale in index_dir.glob(".staging-*"):  # left by a build that was killed
            shutil.rmtree(stale, ignore_errors=True)
        return _build(documents, embedder, chunker, index_dir, rebuild, progress)


@contextmanager
def build_lock(index_dir: Path) -> Iterator[None]:
    """An exclusive ``flock`` on ``index_dir/.lock``; the kernel drops it if the builder dies."""
    with open(index_dir / _LOCK, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise IndexLockedError(
                f"another build is running on {index_dir} ({holder}); wait for it to finish"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}\n")
        handle.flush()
        yield


def _build(
    documents: Sequence[Document],
    embedder: Embedder,
    chunker: ChunkerSettings,
    index_dir: Path,
    rebuild: bool,
    progress: ProgressCallback | None,
) -> BuildReport:
    started = time.perf_counter()
    previous = None if rebuild else _reusable(index_dir, embedder, chunker)
    old_hashes: dict[str, str] = previous[0] if previous else {}
    reused: dict[str, list[Embedded]] = previous[1] if previous else {}

    new_ids = {d.doc_id for d in documents}
    unchanged = {d.doc_id for d in documents if old_hashes.get(d.doc_id) == d.content_hash}
    pending = [
        chunk
        for document in documents
        if document.doc_id not in unchanged
        for chunk in chunk_document(document, chunker)
    ]
    by_doc: dict[str, list[Embedded]] = {i: reused.get(i, []) for i in unchanged}
    for item in _embed_chunks(pending, embedder, progress):
        by_doc.setdefault(item.chunk.doc_id, []).append(item)
    embedded = [item for d in documents for item in by_doc.get(d.doc_id, [])]
    generation = _write_generation(index_dir, documents, embedded, embedder, chunker)
    _switch(index_dir, generation)
    return BuildReport(
        generation=generation.name,
        added=tuple(sorted(new_ids - set(old_hashes))),
        changed=tuple(sorted(i for i in new_ids & set(old_hashes) if i not in unchanged)),
        removed=tuple(sorted(set(old_hashes) - new_ids)),
        unchanged=tuple(sorted(unchanged)),
        chunks_total=len(embedded),
        chunks_embedded=len(pending),
        seconds=time.perf_counter() - started,
    )


@dataclass(frozen=True)
class Embedded:
    """A chunk with its vector and the vectors of its sentences (for sentence re-scoring)."""

    chunk: Chunk
    vector: Vectors
    sentences: Vectors


def _embed_chunks(
    chunks: list[Chunk], embedder: Embedder, progress: ProgressCallback | None
) -> list[Embedded]:
    spans = [sentence_spans(c.text) for c in chunks]
    sentence_texts = [c.text[a:b] for c, s in zip(chunks, spans, strict=True) for a, b in s]
    texts = [c.text for c in chunks] + sentence_texts
    vectors = _embed(texts, embedder, progress)
    embedded, cursor = [], len(chunks)
    for row, (chunk, sentences) in enumerate(zip(chunks, spans, strict=True)):
        rows = vectors[cursor : cursor + len(sentences)]
        embedded.append(Embedded(chunk, vectors[row], rows))
        cursor += len(sentences)
    return embedded


def _reusable(
    index_dir: Path, embedder: Embedder, chunker: ChunkerSettings
) -> tuple[dict[str, str], dict[str, list[Embedded]]] | None:
    """Hashes, chunks and vectors of the current generation, if built the same way."""
    generation = current_generation(index_dir)
    if generation is None:
        return None
    try:
        manifest = read_manifest(generation)
        check_compatible(manifest, model_id=embedder.model_id, dimension=embedder.dimension)
        if manifest.get("chunker") != chunker.as_dict() or not _same_pipeline(manifest):
            return None
        _verify_checksums(generation, manifest)
        chunks = _read_chunks(generation / "chunks.jsonl")
        vectors = np.load(generation / "vectors.npy", allow_pickle=False)
        sentences = np.load(generation / "sentences.npy", allow_pickle=False)
        pointer = np.load(generation / "sentence_ptr.npy", allow_pickle=False)
    except (IndexCorruptError, IndexMismatchError, OSError, ValueError, TypeError):
        return None  # anything unusable is simply rebuilt
    if len(vectors) != len(chunks) or len(pointer) != len(chunks) + 1:
        return None
    by_doc: dict[str, list[Embedded]] = {}
    for row, (chunk, vector) in enumerate(zip(chunks, vectors, strict=True)):
        own = sentences[pointer[row] : pointer[row + 1]]
        by_doc.setdefault(chunk.doc_id, []).append(Embedded(chunk, vector, own))
    hashes = {doc_id: meta["content_hash"] for doc_id, meta in manifest["documents"].items()}
    return hashes, by_doc


def _same_pipeline(manifest: dict[str, Any]) -> bool:
    return bool(
        manifest.get("ingest_version") == INGEST_VERSION
        and manifest.get("analyzer_version") == ANALYZER_VERSION
    )


def _embed(texts: list[str], embedder: Embedder, progress: ProgressCallback | None) -> Vectors:
    parts: list[Vectors] = []
    for start in range(0, len(texts), _EMBED_BATCH):
        parts.append(embedder.encode_passages(texts[start : start + _EMBED_BATCH]))
        if progress:
            progress(min(start + _EMBED_BATCH, len(texts)), len(texts))
    return np.vstack(parts) if parts else np.zeros((0, embedder.dimension), np.float32)


def _write_generation(
    index_dir: Path,
    documents: Sequence[Document],
    embedded: list[Embedded],
    embedder: Embedder,
    chunker: ChunkerSettings,
) -> Path:
    chunks = [item.chunk for item in embedded]
    empty = np.zeros((0, embedder.dimension), np.float32)
    vectors = np.vstack([i.vector for i in embedded]).astype(np.float32) if embedded else empty
    sentences = np.vstack([empty, *(i.sentences for i in embedded)]).astype(np.float32)
    pointer = np.cumsum([0, *(len(i.sentences) for i in embedded)], dtype=np.int64)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    generation = index_dir / f"gen-{stamp}-{secrets.token_hex(3)}"
    staging = index_dir / f".staging-{generation.name}"
    staging.mkdir()
    try:
        _write_jsonl(staging / "documents.jsonl", (_document_row(d) for d in documents))
        _write_jsonl(staging / "chunks.jsonl", (asdict(c) for c in chunks))
        np.save(staging / "vectors.npy", vectors, allow_pickle=False)
        np.save(staging / "sentences.npy", sentences, allow_pickle=False)
        np.save(staging / "sentence_ptr.npy", pointer, allow_pickle=False)
        keys = sentence_keys(chunks, len(sentences))
        hubs = hub_scores(chunks, sentences, pointer, vectors, keys)
        np.save(staging / "hubness.npy", hubs, allow_pickle=False)
        faiss = _faiss()
        dense = faiss.IndexFlatIP(embedder.dimension)
        if len(vectors):
            dense.add(vectors)
        faiss.write_index(dense, str(staging / "dense.faiss"))
        LexicalIndex.build([c.text for c in chunks]).save(staging / "lexical")
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "ingest_version": INGEST_VERSION,
            "analyzer_version": ANALYZER_VERSION,
            "embed_model": embedder.model_id,
            "dimension": embedder.dimension,
            "chunker": chunker.as_dict(),
            "hubness": _hubness_settings(),
            "documents": {
                d.doc_id: {"content_hash": d.content_hash, "source_path": d.source_path}
                for d in documents
            },
            "counts": {"documents": len(documents), "chunks": len(chunks)},
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "files": _checksums(staging),
        }
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        _fsync_tree(staging)
        os.replace(staging, generation)
        _fsync_dir(index_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return generation


def _switch(index_dir: Path, generation: Path) -> None:
    """Point CURRENT at ``generation`` atomically; keep the previous one for readers in flight."""
    previous = current_generation(index_dir)
    tmp = index_dir / f".{_POINTER}.{secrets.token_hex(4)}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(generation.name + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, index_dir / _POINTER)
    _fsync_dir(index_dir)
    keep = {generation.name, previous.name if previous else ""}
    for stale in index_dir.glob("gen-*"):
        if stale.name not in keep:
            shutil.rmtree(stale, ignore_errors=True)


def _checksums(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def _verify_checksums(generation: Path, manifest: dict[str, Any]) -> None:
    expected = manifest.get("files")
    if not isinstance(expected, dict):
        raise IndexCorruptError(f"manifest in {generation} lists no file checksums")
    for name, digest in expected.items():
        path = generation / name
        if not path.is_file():
            raise IndexCorruptError(f"{generation.name}: {name} is missing")
        if hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            raise IndexCorruptError(f"{generation.name}: {name} does not match its checksum")


def _fsync_tree(directory: Path) -> None:
    for path in directory.rglob("*"):
        if path.is_file():
            with open(path, "rb") as handle:
                os.fsync(handle.fileno())
    for sub in [directory, *(p for p in directory.rglob("*") if p.is_dir())]:
        _fsync_dir(sub)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _document_row(document: Document) -> dict[str, Any]:
    row = asdict(document)
    _drop_derived(row)
    return row


def _read_documents(path: Path) -> list[Document]:
    documents = []
    for row in _read_jsonl(path):
        _drop_derived(row)
        documents.append(
            Document(
                **{
                    **row,
                    "authors": tuple(row["authors"]),
                    "headings": tuple(Heading(**h) for h in row["headings"]),
                    "blocks": tuple(Block(**b) for b in row["blocks"]),
                    "footnotes": tuple(
                        Footnote(
                            **{**f, "urls": tuple(f["urls"]), "refers_to": tuple(f["refers_to"])}
                        )
                        for f in row["footnotes"]
                    ),
                    "markers": tuple((int(o), int(n)) for o, n in row["markers"]),
                    "line_runs": tuple((int(o), int(n)) for o, n in row["line_runs"]),
                    "page_runs": tuple((int(o), int(n)) for o, n in row["page_runs"]),
                    "warnings": tuple(row.get("warnings", ())),
                }
            )
        )
    return documents


def _drop_derived(row: dict[str, Any]) -> None:
    """Lookup tables a Document derives from its runs are not stored."""
    row.pop("_run_starts", None)
    row.pop("_page_starts", None)


def _read_chunks(path: Path) -> list[Chunk]:
    return [Chunk(**{**row, "footnotes": tuple(row["footnotes"])}) for row in _read_jsonl(path)]


def _write_jsonl(path: Path, rows: Any) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as handle:
            return [json.loads(line) for line in handle if line.strip()]
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path} is unreadable: {exc}") from None
