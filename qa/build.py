"""Build an index generation by streaming documents through chunk, embed and write.

Memory stays bounded by a batch, not the corpus: each document is chunked, its texts embedded
(in worker processes when there is a lot to embed) and appended to files in a staging folder,
and only the finished files are read back, block by block, for the dense index, hubness and
BM25. A chunk's vector is written once (into ``dense.faiss``); its sentences, each embedded once
even when two overlapping chunks share it, are stored as float16 rows.

A build that is killed resumes: the staging folder is named after what the build will hold
(documents, content hashes, model, chunker), and ``journal.json`` records the files' lengths
after each whole document. The next build of the same plan truncates the files to those lengths
and continues with the next document; any other plan removes the stale folder first.
Unchanged documents reuse the current generation's chunks and vectors: nothing is re-embedded.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import time
from collections import deque
from collections.abc import Callable, Generator, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import closing
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from qa.chunk import ChunkerSettings, chunk_document, sentence_spans
from qa.dense import DenseInfo, build_dense, vectors_of, write_dense
from qa.embed import Embedder, Vectors, load_embedder
from qa.errors import IndexCorruptError, IndexMismatchError
from qa.hubness import hub_scores
from qa.index import (
    SCHEMA_VERSION,
    SENTENCE_DTYPE,
    build_lock,
    check_compatible,
    current_generation,
    document_row,
    hubness_settings,
    iter_jsonl,
    read_chunk_lines,
    read_manifest,
    same_pipeline,
    switch_generation,
    verify_checksums,
    write_manifest,
)
from qa.ingest import INGEST_VERSION
from qa.lexical import ANALYZER_VERSION, LexicalBuilder
from qa.types import Chunk, Document

# ``progress(phase, done, total)``: phases "embedding" (characters of text), "dense index",
# "hubness", "lexical" (chunks).
ProgressCallback = Callable[[str, int, int], None]

# ``embed(documents, chunker, embedder, workers)``: every unit of ``documents`` (their
# ``document_units``), in order, with its vectors. ``embed_here`` runs in this process and its
# worker processes; ``qa.distributed`` runs the same steps on a Ray cluster. The generator is
# closed when the build ends or fails.
EmbedUnits = Callable[
    [Sequence[Document], ChunkerSettings, "Embedder", int], Generator["Unit", None, None]
]

_UNIT_CHUNKS = 48  # chunks per embedding job
_POOL_MIN_CHARS = 400_000  # less text than this is embedded in this process (no worker start-up)
_JOURNAL = "journal.json"


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
    resumed_documents: int = 0  # documents a killed build had already written
    dense: dict[str, Any] = field(default_factory=dict)


def build_index(
    documents: Sequence[Document],
    *,
    embedder: Embedder,
    chunker: ChunkerSettings,
    index_dir: Path,
    rebuild: bool = False,
    progress: ProgressCallback | None = None,
    workers: int = 1,
    embed: EmbedUnits | None = None,
) -> BuildReport:
    """Write a complete new generation, then switch to it; one build at a time per directory.

    ``workers`` > 1 embeds in that many processes of one thread each (when there is enough
    text to repay their start-up): on two cores, two single-threaded encoders outrun one
    encoder with two threads. ``embed`` (default ``embed_here``) chunks and embeds the
    documents that need it; whatever does it, this process writes, journals and publishes."""
    index_dir.mkdir(parents=True, exist_ok=True)
    with build_lock(index_dir):
        return _build(
            documents, embedder, chunker, index_dir, rebuild, progress, workers, embed or embed_here
        )


def _build(
    documents: Sequence[Document],
    embedder: Embedder,
    chunker: ChunkerSettings,
    index_dir: Path,
    rebuild: bool,
    progress: ProgressCallback | None,
    workers: int,
    embed: EmbedUnits,
) -> BuildReport:
    started = time.perf_counter()
    previous = None if rebuild else _Previous.open(index_dir, embedder, chunker)
    old_hashes = previous.hashes if previous else {}
    unchanged = {d.doc_id for d in documents if old_hashes.get(d.doc_id) == d.content_hash}
    plan = _plan_key(documents, unchanged, embedder, chunker)
    staging = index_dir / f".staging-{plan}"
    for stale in index_dir.glob(".staging-*"):  # left by a killed build of another plan
        if stale != staging:
            shutil.rmtree(stale, ignore_errors=True)
    writer = _Writer(staging, embedder.dimension)
    resumed = writer.done_documents
    todo = [d for d in documents[resumed:] if d.doc_id not in unchanged]
    embedded_chunks = 0
    total_chars = sum(len(d.text) for d in todo)
    done_chars = 0
    with closing(embed(todo, chunker, embedder, workers)) as embedded, writer:
        for unit in _units(documents[resumed:], unchanged, previous, embedded, writer.sentences):
            writer.write(unit, unit.chunk_vectors, unit.sentence_vectors)
            if unit.texts:
                embedded_chunks += len(unit.chunks)
                done_chars += unit.chars
                if progress and total_chars:
                    progress("embedding", done_chars, total_chars)
    generation, dense = writer.finish(documents, embedder, chunker, progress)
    switch_generation(index_dir, generation)
    new_ids = {d.doc_id for d in documents}
    return BuildReport(
        generation=generation.name,
        added=tuple(sorted(new_ids - set(old_hashes))),
        changed=tuple(sorted(i for i in new_ids & set(old_hashes) if i not in unchanged)),
        removed=tuple(sorted(set(old_hashes) - new_ids)),
        unchanged=tuple(sorted(unchanged)),
        chunks_total=writer.chunks,
        chunks_embedded=embedded_chunks,
        seconds=time.perf_counter() - started,
        resumed_documents=resumed,
        dense=dense.as_dict(),
    )


@dataclass
class Unit:
    """Consecutive chunks of one document and what to embed for them: the chunk texts, then
    the sentences not already written (a sentence shared with the previous chunk has a row).
    ``document_units`` counts ``ranges`` from the document's first sentence row; the build
    moves them to the generation's rows."""

    document: Document
    chunks: list[Chunk]
    ranges: list[tuple[int, int]]  # each chunk's sentence rows
    texts: list[str]  # empty when reused: the vectors are given
    last: bool  # the document's last unit: the journal may record it after this one
    chars: int = 0  # share of the document's text, for progress
    chunk_vectors: Any = None
    sentence_vectors: Any = None

    def embedded(self, vectors: Vectors) -> Unit:
        """This unit with the vectors of its ``texts`` (chunks first, then sentences)."""
        self.chunk_vectors, self.sentence_vectors = np.split(vectors, [len(self.chunks)])
        return self


def document_units(document: Document, chunker: ChunkerSettings) -> list[Unit]:
    """The document's chunks in embedding-sized units, sentence rows counted from 0."""
    chunks = list(chunk_document(document, chunker))
    written: list[tuple[int, int]] = []  # sentence spans (absolute) in row order
    ranges, new_texts = [], []
    for chunk in chunks:
        keys = [(chunk.char_start + a, chunk.char_start + b) for a, b in sentence_spans(chunk.text)]
        shared = _shared_prefix(written, keys)
        start = len(written) - shared
        fresh = keys[shared:]
        written.extend(fresh)
        new_texts.append([document.text[a:b] for a, b in fresh])
        ranges.append((start, len(written)))
    if not chunks:
        return [Unit(document, [], [], [], True)]
    units = []
    for at in range(0, len(chunks), _UNIT_CHUNKS):
        part = slice(at, at + _UNIT_CHUNKS)
        own = chunks[part]
        texts = [c.text for c in own] + [t for ts in new_texts[part] for t in ts]
        chars = round(len(document.text) * len(own) / len(chunks))
        last = at + _UNIT_CHUNKS >= len(chunks)
        units.append(Unit(document, own, ranges[part], texts, last, chars))
    return units


def _units(
    documents: Sequence[Document],
    unchanged: set[str],
    previous: _Previous | None,
    embedded: Iterator[Unit],
    first_row: int,
) -> Iterator[Unit]:
    """Each document's units in order, with global sentence rows: reused from ``previous``,
    or the next ones of ``embedded`` (which holds the other documents, in the same order)."""
    next_row = first_row
    for document in documents:
        if previous is not None and document.doc_id in unchanged:
            unit = previous.unit(document, next_row)
            next_row = unit.ranges[-1][1] if unit.ranges else next_row
            yield unit
            continue
        rows = next_row
        while True:
            got = next(embedded, None)
            if got is None or got.document.doc_id != document.doc_id:
                found = "nothing" if got is None else got.document.doc_id
                raise IndexCorruptError(f"embedding returned {found} for {document.doc_id}")
            unit = got
            unit.ranges = [(a + rows, b + rows) for a, b in unit.ranges]
            next_row = unit.ranges[-1][1] if unit.ranges else next_row
            yield unit
            if unit.last:
                break


def embed_here(
    documents: Sequence[Document], chunker: ChunkerSettings, embedder: Embedder, workers: int
) -> Generator[Unit, None, None]:
    """``EmbedUnits`` in this process: chunked here, embedded here or in worker processes,
    ``2 * workers`` jobs ahead of the one yielded."""
    with _Encoder(embedder, workers, sum(len(d.text) for d in documents)) as encoder:
        pending: deque[tuple[Unit, Any]] = deque()
        for document in documents:
            for unit in document_units(document, chunker):
                pending.append((unit, encoder.submit(unit.texts) if unit.texts else None))
                while len(pending) > encoder.in_flight:
                    yield _done(*pending.popleft(), encoder)
        while pending:
            yield _done(*pending.popleft(), encoder)


def _done(unit: Unit, job: Any, encoder: _Encoder) -> Unit:
    return unit if job is None else unit.embedded(encoder.result(job))


def _shared_prefix(written: list[tuple[int, int]], keys: list[tuple[int, int]]) -> int:
    """How many of ``keys`` open with the last sentences already written (chunk overlap)."""
    for shared in range(min(len(keys), len(written)), 0, -1):
        if written[len(written) - shared :] == keys[:shared]:
            return shared
    return 0


class _Writer:
    """Appends chunks, vectors and sentence rows to a staging folder; resumable per document."""

    def __init__(self, staging: Path, dimension: int) -> None:
        self.staging = staging
        self.dimension = dimension
        staging.mkdir(parents=True, exist_ok=True)
        journal = _read_journal(staging)
        lengths: dict[str, int] = journal.get("lengths", {})
        if any(
            not (staging / name).is_file() or (staging / name).stat().st_size < int(length)
            for name, length in lengths.items()
        ):
            journal, lengths = {}, {}  # a file lost what the journal promised: start over
        self.done_documents = int(journal.get("documents", 0))
        self.chunks = int(journal.get("chunks", 0))
        self.sentences = int(journal.get("sentences", 0))
        self._files = {}
        for name in ("chunks.jsonl", "vectors.f32", "sentences.f16", "ranges.i64"):
            path = staging / name
            with open(path, "ab") as handle:  # create, then cut back to the journalled length
                handle.truncate(int(lengths.get(name, 0)))
            self._files[name] = open(path, "ab")  # noqa: SIM115 - closed in finish/close
        self._pending_chunks = self.chunks
        self._pending_sentences = self.sentences

    def write(self, unit: Unit, chunk_vectors: Any, sentence_vectors: Any) -> None:
        files = self._files
        if not unit.chunks:  # a document with nothing to index still counts as done
            if unit.last:
                self._commit_document()
            return
        for chunk in unit.chunks:
            line = json.dumps(asdict(chunk), ensure_ascii=False) + "\n"
            files["chunks.jsonl"].write(line.encode("utf-8"))
        files["vectors.f32"].write(np.ascontiguousarray(chunk_vectors, np.float32).tobytes())
        files["sentences.f16"].write(
            np.ascontiguousarray(sentence_vectors, SENTENCE_DTYPE).tobytes()
        )
        files["ranges.i64"].write(np.asarray(unit.ranges, np.int64).reshape(-1, 2).tobytes())
        self._pending_chunks += len(unit.chunks)
        self._pending_sentences += len(sentence_vectors)
        if unit.last:
            self._commit_document()

    def _commit_document(self) -> None:
        for handle in self._files.values():
            handle.flush()
        self.done_documents += 1
        self.chunks, self.sentences = self._pending_chunks, self._pending_sentences
        journal = {
            "documents": self.done_documents,
            "chunks": self.chunks,
            "sentences": self.sentences,
            "lengths": {name: handle.tell() for name, handle in self._files.items()},
        }
        tmp = self.staging / f".{_JOURNAL}.tmp"
        tmp.write_text(json.dumps(journal), encoding="utf-8")
        os.replace(tmp, self.staging / _JOURNAL)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()

    def __enter__(self) -> _Writer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()  # what the journal records stays for the next build to resume from

    def finish(
        self,
        documents: Sequence[Document],
        embedder: Embedder,
        chunker: ChunkerSettings,
        progress: ProgressCallback | None,
    ) -> tuple[Path, DenseInfo]:
        """The staged files made into a complete generation folder (renamed into place)."""
        staging, n = self.staging, self.chunks
        if self.done_documents != len(documents):
            raise IndexCorruptError(
                f"staged {self.done_documents} of {len(documents)} documents in {staging}"
            )
        vectors = _raw(staging / "vectors.f32", np.float32, (n, self.dimension))
        sentences = _raw(
            staging / "sentences.f16", SENTENCE_DTYPE, (self.sentences, self.dimension)
        )
        ranges = np.array(_raw(staging / "ranges.i64", np.int64, (n, 2)))
        spans, entries = _scan_chunks(staging, documents)
        with open(staging / "documents.jsonl", "w", encoding="utf-8") as handle:
            for document in documents:
                handle.write(json.dumps(document_row(document), ensure_ascii=False) + "\n")
        hubs = hub_scores(spans, sentences, ranges, vectors, progress=progress)
        np.save(staging / "hubness.npy", hubs, allow_pickle=False)
        probes = sentences[:: max(1, len(sentences) // 2000)] if len(sentences) else None
        dense, info = build_dense(vectors, probes=probes, progress=progress)
        write_dense(dense, staging / "dense.faiss")
        del dense
        _npy_from_raw(staging / "sentences.npy", sentences)
        np.save(staging / "sentence_ranges.npy", ranges, allow_pickle=False)
        _lexical(staging, n, progress).save(staging / "lexical")
        for name in (_JOURNAL, "vectors.f32", "sentences.f16", "ranges.i64"):  # journal first
            (staging / name).unlink()
        del vectors, sentences
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "ingest_version": INGEST_VERSION,
            "analyzer_version": ANALYZER_VERSION,
            "embed_model": embedder.model_id,
            "dimension": embedder.dimension,
            "chunker": chunker.as_dict(),
            "hubness": hubness_settings(),
            "dense": info.as_dict(),
            "sentences": {"rows": self.sentences, "dtype": np.dtype(SENTENCE_DTYPE).name},
            "documents": entries,
            "counts": {"documents": len(documents), "chunks": n},
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
        generation = staging.parent / f"gen-{stamp}-{secrets.token_hex(3)}"
        write_manifest(staging, manifest)
        os.replace(staging, generation)
        return generation, info


def _lexical(staging: Path, count: int, progress: ProgressCallback | None) -> Any:
    builder = LexicalBuilder()
    batch: list[str] = []
    done = 0
    for row in iter_jsonl(staging / "chunks.jsonl"):
        batch.append(row["text"])
        if len(batch) == 2048:
            builder.add_texts(batch)
            done += len(batch)
            batch = []
            if progress:
                progress("lexical", done, count)
    if batch or not done:
        builder.add_texts(batch)
    return builder.finish()


def _scan_chunks(
    staging: Path, documents: Sequence[Document]
) -> tuple[list[tuple[str, int, int]], dict[str, Any]]:
    """Each chunk's span, and per document: its content hash, source, and where its chunks are
    (first row, count, byte offset of its first line in chunks.jsonl), so a later build can
    reuse them without reading the others."""
    entries: dict[str, Any] = {
        d.doc_id: {"content_hash": d.content_hash, "source_path": d.source_path, "rows": [0, 0]}
        for d in documents
    }
    spans: list[tuple[str, int, int]] = []
    offset = 0
    with open(staging / "chunks.jsonl", "rb") as handle:
        for line in handle:
            row = json.loads(line)
            entry = entries[row["doc_id"]]
            if entry["rows"][1] == 0:
                entry["rows"][0], entry["offset"] = len(spans), offset
            entry["rows"][1] += 1
            spans.append((row["doc_id"], row["char_start"], row["char_end"]))
            offset += len(line)
    return spans, entries


def _raw(path: Path, dtype: Any, shape: tuple[int, int]) -> Any:
    if shape[0] == 0:
        return np.zeros(shape, dtype=dtype)
    return np.memmap(path, dtype=dtype, mode="r", shape=shape)


def _npy_from_raw(path: Path, array: Any) -> None:
    out = np.lib.format.open_memmap(path, mode="w+", dtype=array.dtype, shape=array.shape)
    for start in range(0, len(array), 65_536):
        out[start : start + 65_536] = array[start : start + 65_536]
    out.flush()
    del out


def _read_journal(staging: Path) -> dict[str, Any]:
    try:
        journal: dict[str, Any] = json.loads((staging / _JOURNAL).read_text("utf-8"))
        return journal
    except (OSError, ValueError):
        return {}


def _plan_key(
    documents: Sequence[Document], unchanged: set[str], embedder: Embedder, chunker: ChunkerSettings
) -> str:
    digest = hashlib.sha256()
    head = [SCHEMA_VERSION, INGEST_VERSION, ANALYZER_VERSION, embedder.model_id, chunker.as_dict()]
    digest.update(json.dumps(head, sort_keys=True).encode())
    for document in documents:
        reused = "reused" if document.doc_id in unchanged else "new"
        digest.update(f"{document.doc_id}\0{document.content_hash}\0{reused}\n".encode())
    return digest.hexdigest()[:16]


class _Previous:
    """The current generation, when built the same way: its documents' chunks and vectors."""

    def __init__(self, generation: Path, manifest: dict[str, Any]) -> None:
        from qa.dense import load_dense

        self.generation = generation
        self.entries: dict[str, Any] = manifest["documents"]
        self.hashes = {doc_id: e["content_hash"] for doc_id, e in self.entries.items()}
        self.dense = load_dense(generation / "dense.faiss", DenseInfo.from_dict(manifest["dense"]))
        self.sentences = np.load(generation / "sentences.npy", mmap_mode="r")
        self.ranges = np.load(generation / "sentence_ranges.npy", mmap_mode="r")

    @classmethod
    def open(
        cls, index_dir: Path, embedder: Embedder, chunker: ChunkerSettings
    ) -> _Previous | None:
        generation = current_generation(index_dir)
        if generation is None:
            return None
        try:
            manifest = read_manifest(generation)
            check_compatible(manifest, model_id=embedder.model_id, dimension=embedder.dimension)
            if manifest.get("chunker") != chunker.as_dict() or not same_pipeline(manifest):
                return None
            verify_checksums(generation, manifest)
            return cls(generation, manifest)
        except (IndexCorruptError, IndexMismatchError, OSError, ValueError, TypeError, KeyError):
            return None  # anything unusable is simply rebuilt

    def unit(self, document: Document, next_row: int) -> Unit:
        entry = self.entries[document.doc_id]
        first, count = (int(v) for v in entry["rows"])
        chunks = read_chunk_lines(
            self.generation / "chunks.jsonl", int(entry.get("offset", 0)), count
        )
        rows = np.arange(first, first + count, dtype=np.int64)
        vectors = vectors_of(self.dense, rows) if count else np.zeros((0, self.dense.d), np.float32)
        ranges = np.asarray(self.ranges[first : first + count], dtype=np.int64)
        low = int(ranges[:, 0].min()) if count else 0
        high = int(ranges[:, 1].max()) if count else 0
        sentences = np.asarray(self.sentences[low:high])
        shifted = [(int(a) - low + next_row, int(b) - low + next_row) for a, b in ranges]
        return Unit(document, chunks, shifted, [], True, 0, vectors, sentences)


class _Encoder:
    """Embeds jobs in order, here or in worker processes of one thread each."""

    def __init__(self, embedder: Embedder, workers: int, chars: int) -> None:
        self.embedder = embedder
        self.pool: ProcessPoolExecutor | None = None
        self.in_flight = 0
        if workers > 1 and chars >= _POOL_MIN_CHARS and reloadable(embedder):
            self.pool = ProcessPoolExecutor(
                workers,
                mp_context=get_context("spawn"),
                initializer=worker_start,
                initargs=(embedder.model_id,),
            )
            self.in_flight = 2 * workers

    def submit(self, texts: list[str]) -> Any:
        if self.pool is None:
            return _encode_here(self.embedder, texts)
        return self.pool.submit(worker_encode, texts)

    def result(self, job: Any) -> Vectors:
        if isinstance(job, Future):
            vectors: Vectors = job.result()
            return vectors
        return job  # type: ignore[no-any-return]

    def __enter__(self) -> _Encoder:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)


def _encode_here(embedder: Embedder, texts: list[str]) -> Vectors:
    return embedder.encode_passages(texts)


def reloadable(embedder: Embedder) -> bool:
    """Can a worker process load this model by its id alone? Only our own backends can; a
    wrapper or test double is used where it is."""
    return type(embedder).__module__.startswith("qa.embed.")


_worker_embedder: Embedder | None = None


def worker_start(model_id: str) -> None:
    """Load the model once in a worker (a build's spawn process, a Ray actor), one thread."""
    global _worker_embedder
    from qa.threads import configure

    configure(1)
    _worker_embedder = load_embedder(model_id, threads=1)


def worker_encode(texts: list[str]) -> npt.NDArray[np.float32]:
    """Embed passages with the model ``worker_start`` loaded in this process."""
    assert _worker_embedder is not None
    return _worker_embedder.encode_passages(texts)
