"""The index on disk and loaded: generations, manifest, checksums, and ``load_index``.

Layout under the index directory::

    CURRENT              name of the generation being served (replaced atomically)
    gen-<time>-<rand>/   manifest.json, documents.jsonl, chunks.jsonl, dense.faiss,
                         sentences.npy, sentence_ranges.npy, hubness.npy, lexical/

``qa.build`` writes a complete new generation and only then switches ``CURRENT`` to it, so a
reader sees the old index or the new one, never a mixture. Each chunk vector is stored once, in
``dense.faiss`` (``qa.dense``); each sentence vector once, as a float16 row of
``sentences.npy`` (chunk ``i``'s sentences are rows ``sentence_ranges[i]``; overlapping chunks
share rows). The large files are memory-mapped, so server processes share their pages.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, overload

import numpy as np
import numpy.typing as npt

from qa.dense import DenseInfo, load_dense, vectors_of
from qa.dense import search as dense_search
from qa.errors import IndexCorruptError, IndexLockedError, IndexMismatchError, IndexNotFoundError
from qa.hubness import HUB_NEIGHBOURS, HUB_REFERENCE_CAP, hub_scores
from qa.ingest import INGEST_VERSION
from qa.lexical import ANALYZER_VERSION, LexicalIndex
from qa.store import sentence_ids
from qa.types import Block, Chunk, Document, Footnote, Heading, Place, TextBox

SCHEMA_VERSION = 4
# Sentence vectors only rescore a passage's own sentences: float16 keeps 3 significant digits
# of each cosine at half the bytes.
SENTENCE_DTYPE = np.float16
_POINTER = "CURRENT"
_LOCK = ".lock"


class ChunkTable(Sequence[Chunk]):
    """The chunks of a generation kept as columns of numbers, each ``Chunk`` made when asked
    for, its text sliced from its document (``document.text[char_start:char_end]`` is the
    chunk's text by construction, and ``load`` checks it): a chunk's text is not held twice,
    and a million chunks cost tens of megabytes, not gigabytes of objects.

    Also what filters need: each document's run of rows, the distinct section paths and each
    row's section as a number into them."""

    _COLUMNS = ("ordinal", "char_start", "char_end", "line_start", "line_end", "n_tokens")

    def __init__(
        self, items: Iterable[dict[str, Any]], documents: dict[str, Document], source: str
    ) -> None:
        """``items`` are chunk rows as ``chunks.jsonl`` holds them, in row order; ``source``
        names where they came from, in errors."""
        path = source
        self._documents = documents
        doc_ids: list[str] = []
        doc_numbers: dict[str, int] = {}
        sections: dict[str, int] = {}
        kinds: dict[str, int] = {}
        columns: dict[str, list[int]] = {name: [] for name in self._COLUMNS}
        doc_of, section_of, kind_of, pages = [], [], [], []
        footnotes: list[int] = []
        footnote_ptr = [0]
        self.doc_rows: dict[str, tuple[int, int]] = {}
        for row, item in enumerate(items):
            try:
                doc_id = item["doc_id"]
                document = documents[doc_id]
                if document.text[item["char_start"] : item["char_end"]] != item["text"]:
                    raise IndexCorruptError(f"{path}: chunk {row} is not its document's text")
                first, count = self.doc_rows.get(doc_id, (row, 0))
                if first + count != row:
                    raise IndexCorruptError(f"{path}: the chunks of {doc_id} are not together")
                self.doc_rows[doc_id] = (first, count + 1)
                if doc_id not in doc_numbers:
                    doc_numbers[doc_id] = len(doc_ids)
                    doc_ids.append(doc_id)
                doc_of.append(doc_numbers[doc_id])
                section_of.append(sections.setdefault(item["section"], len(sections)))
                kind_of.append(kinds.setdefault(item.get("kind", "body"), len(kinds)))
                for name in self._COLUMNS:
                    columns[name].append(int(item[name]))
                start, end = item.get("page_start"), item.get("page_end")
                pages.append((-1 if start is None else start, -1 if end is None else end))
                footnotes.extend(int(n) for n in item.get("footnotes", ()))
                footnote_ptr.append(len(footnotes))
            except (KeyError, TypeError, ValueError) as exc:
                raise IndexCorruptError(f"{path}: chunk {row} is unreadable ({exc})") from None
        self._doc_ids = tuple(doc_ids)
        self._kinds = tuple(kinds)
        self.sections = tuple(sections)
        self.section_ids = np.asarray(section_of, dtype=np.int32)
        self._doc_of = np.asarray(doc_of, dtype=np.int32)
        self._kind_of = np.asarray(kind_of, dtype=np.int8)
        self._columns = {name: np.asarray(v, dtype=np.int64) for name, v in columns.items()}
        self._pages = np.asarray(pages, dtype=np.int64).reshape(-1, 2)
        self._footnotes = np.asarray(footnotes, dtype=np.int32)
        self._footnote_ptr = np.asarray(footnote_ptr, dtype=np.int64)

    @classmethod
    def read(cls, path: Path, documents: dict[str, Document]) -> ChunkTable:
        return cls(iter_jsonl(path), documents, str(path))

    def __len__(self) -> int:
        return len(self._doc_of)

    @overload
    def __getitem__(self, row: int) -> Chunk: ...
    @overload
    def __getitem__(self, row: slice) -> Sequence[Chunk]: ...

    def __getitem__(self, row: int | slice) -> Chunk | Sequence[Chunk]:
        if isinstance(row, slice):
            return [self[i] for i in range(*row.indices(len(self)))]
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(row)
        values = {name: int(column[row]) for name, column in self._columns.items()}
        doc_id = self._doc_ids[self._doc_of[row]]
        page_start, page_end = (int(v) for v in self._pages[row])
        notes = self._footnotes[self._footnote_ptr[row] : self._footnote_ptr[row + 1]]
        return Chunk(
            doc_id=doc_id,
            section=self.sections[self.section_ids[row]],
            text=self._documents[doc_id].text[values["char_start"] : values["char_end"]],
            kind=self._kinds[self._kind_of[row]],
            page_start=None if page_start < 0 else page_start,
            page_end=None if page_end < 0 else page_end,
            footnotes=tuple(notes.tolist()),
            **values,
        )

    def __iter__(self) -> Iterator[Chunk]:
        return (self[row] for row in range(len(self)))


@dataclass(frozen=True)
class Index:
    """A loaded generation: everything a retriever needs, immutable once loaded."""

    path: Path
    manifest: dict[str, Any]
    documents: dict[str, Document]
    chunks: ChunkTable
    dense: Any  # faiss.Index, memory-mapped
    dense_info: DenseInfo
    lexical: LexicalIndex
    sentence_vectors: Any  # float16 rows, memory-mapped
    sentence_ranges: Any  # chunk i's sentences are rows sentence_ranges[i, 0]:sentence_ranges[i, 1]
    hubness: Any  # per chunk row: mean cosine to its nearest corpus sentences (qa.hubness)

    @property
    def generation(self) -> str:
        return self.path.name

    @property
    def backend(self) -> str:
        return "local"

    @property
    def collection(self) -> str | None:
        return None

    def dense_top(
        self, vector: Any, k: int, allowed: npt.NDArray[np.int64] | None
    ) -> list[tuple[int, float]]:
        return dense_search(self.dense, self.dense_info, vector, k, allowed)

    def sentence_rows(
        self, rows: npt.NDArray[np.int64]
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """All of ``rows``' sentence vectors in one gather of the memory-mapped float16 rows."""
        ids, counts = sentence_ids(self.sentence_ranges, rows)
        return self.sentence_vectors[ids].astype(np.float32), counts

    def check(self) -> None:
        """Files memory-mapped at load need nothing to answer."""


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
    return open_generation(generation, model_id=model_id, dimension=dimension)


def open_generation(generation: Path, *, model_id: str, dimension: int) -> Index:
    manifest = read_manifest(generation)
    check_compatible(manifest, model_id=model_id, dimension=dimension)
    verify_checksums(generation, manifest)
    documents = {d.doc_id: d for d in read_documents(generation / "documents.jsonl")}
    chunks = ChunkTable.read(generation / "chunks.jsonl", documents)
    try:
        info = DenseInfo.from_dict(manifest["dense"])
        dense = load_dense(generation / "dense.faiss", info)
        sentences = np.load(generation / "sentences.npy", mmap_mode="r", allow_pickle=False)
        ranges = np.load(generation / "sentence_ranges.npy", allow_pickle=False)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise IndexCorruptError(f"{generation.name} is unreadable: {exc}") from None
    lexical = LexicalIndex.load(generation / "lexical")
    if (
        dense.ntotal != len(chunks)
        or dense.d != dimension
        or lexical.size != len(chunks)
        or ranges.shape != (len(chunks), 2)
        or (len(chunks) and int(ranges[:, 1].max()) > len(sentences))
    ):
        raise IndexCorruptError(
            f"{generation} is inconsistent: {len(chunks)} chunks, {dense.ntotal} vectors "
            f"of dimension {dense.d}, {lexical.size} lexical rows, {len(sentences)} sentences"
        )
    hubs = _load_hubness(generation, manifest, chunks, sentences, ranges, dense)
    return Index(
        path=generation,
        manifest=manifest,
        documents=documents,
        chunks=chunks,
        dense=dense,
        dense_info=info,
        lexical=lexical,
        sentence_vectors=sentences,
        sentence_ranges=ranges,
        hubness=hubs,
    )


def hubness_settings() -> dict[str, int]:
    return {"neighbours": HUB_NEIGHBOURS, "reference_cap": HUB_REFERENCE_CAP}


def _load_hubness(
    generation: Path,
    manifest: dict[str, Any],
    chunks: Sequence[Chunk],
    sentences: Any,
    ranges: Any,
    dense: Any,
) -> Any:
    """The stored values, or (built with other settings) values computed now from the stored
    vectors: the same numbers, only later."""
    stored = generation / "hubness.npy"
    if manifest.get("hubness") == hubness_settings() and stored.is_file():
        values = np.load(stored, allow_pickle=False)
        if values.shape != (len(chunks),):
            raise IndexCorruptError(
                f"{generation} is inconsistent: {len(chunks)} chunks, {len(values)} hubness values"
            )
        return values
    vectors = vectors_of(dense, np.arange(len(chunks), dtype=np.int64))
    spans = [(c.doc_id, c.char_start, c.char_end) for c in chunks]
    return hub_scores(spans, sentences, ranges, vectors)


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
        return {d.doc_id: d for d in read_documents(generation / "documents.jsonl")}
    except (IndexCorruptError, KeyError, TypeError, ValueError) as exc:
        raise IndexCorruptError(
            f"cannot read the documents of {generation} ({exc}); to rebuild the index from the "
            "given paths alone, run `qa ingest --prune PATH...`"
        ) from None


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


def same_pipeline(manifest: dict[str, Any]) -> bool:
    """Was the generation parsed and analysed by this version's ingest and analyzer?"""
    return bool(
        manifest.get("ingest_version") == INGEST_VERSION
        and manifest.get("analyzer_version") == ANALYZER_VERSION
    )


def write_manifest(staging: Path, manifest: dict[str, Any]) -> None:
    """``manifest.json`` with every other file's checksum, everything synced to disk."""
    manifest = {**manifest, "files": _checksums(staging)}
    (staging / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    _fsync_tree(staging)


def switch_generation(index_dir: Path, generation: Path) -> None:
    """Point CURRENT at ``generation`` atomically; keep the previous one for readers in flight."""
    _fsync_dir(index_dir)
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


def read_chunk_lines(path: Path, offset: int, count: int) -> list[Chunk]:
    """``count`` chunks from the line starting at byte ``offset`` of a chunks.jsonl."""
    chunks = []
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            for _ in range(count):
                row = json.loads(handle.readline())
                chunks.append(Chunk(**{**row, "footnotes": tuple(row["footnotes"])}))
    except (OSError, ValueError, TypeError) as exc:
        raise IndexCorruptError(f"{path} is unreadable at byte {offset}: {exc}") from None
    return chunks


def _checksums(directory: Path) -> dict[str, str]:
    return {
        p.relative_to(directory).as_posix(): _sha256(p)
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != "manifest.json"
    }


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_checksums(generation: Path, manifest: dict[str, Any]) -> None:
    expected = manifest.get("files")
    if not isinstance(expected, dict):
        raise IndexCorruptError(f"manifest in {generation} lists no file checksums")
    for name, digest in expected.items():
        path = generation / name
        if not path.is_file():
            raise IndexCorruptError(f"{generation.name}: {name} is missing")
        if _sha256(path) != digest:
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


def read_documents(path: Path) -> list[Document]:
    return documents_from_rows(iter_jsonl(path))


def documents_from_rows(rows: Iterable[dict[str, Any]]) -> list[Document]:
    """Documents from their ``documents.jsonl`` rows (``document_row`` writes them)."""
    documents = []
    for row in rows:
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
                    "places": tuple((int(o), Place(**p)) for o, p in row.get("places", ())),
                    "boxes": tuple(TextBox(**b) for b in row.get("boxes", ())),
                    "warnings": tuple(row.get("warnings", ())),
                }
            )
        )
    return documents


def _drop_derived(row: dict[str, Any]) -> None:
    """Lookup tables a Document derives from its runs are not stored."""
    row.pop("_run_starts", None)
    row.pop("_page_starts", None)


def document_row(document: Document) -> dict[str, Any]:
    """A document as documents.jsonl stores it (without the tables it derives)."""
    row = asdict(document)
    _drop_derived(row)
    return row


def iter_jsonl(path: Path) -> Iterator[dict[str, Any]]:
    """The rows of a JSON-lines file of a generation, one at a time."""
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                if line.strip():
                    yield json.loads(line)
    except (OSError, ValueError) as exc:
        raise IndexCorruptError(f"{path} is unreadable: {exc}") from None


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return list(iter_jsonl(path))
