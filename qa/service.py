"""The pipeline wired together from ``Settings``: what the CLI and the API both call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from qa import threads as compute_threads
from qa.build import BuildReport, ProgressCallback, build_index
from qa.chunk import ChunkerSettings
from qa.config import Settings
from qa.embed import Embedder, load_embedder
from qa.index import (
    indexed_doc_ids,
    indexed_documents,
    load_index,
)
from qa.ingest import IngestReport, ingest_paths
from qa.retrieve import RetrievalSettings, Retriever
from qa.types import Document


def limit_threads(threads: int) -> None:
    """Cap BLAS, FAISS/OpenMP and torch threads for the process, in every thread that computes
    (``qa.threads``): oversubscribing 2 cores makes USE ~50x slower."""
    compute_threads.configure(threads)


def chunker_settings(settings: Settings) -> ChunkerSettings:
    return ChunkerSettings(
        max_tokens=settings.chunk_max_tokens, overlap_sentences=settings.chunk_overlap_sentences
    )


def open_embedder(settings: Settings, *, threads: int | None = None) -> Embedder:
    """The configured model, computing with ``threads`` (default: ``settings.threads``, the
    query-time limit; ``ingest`` passes ``settings.ingest_threads``)."""
    threads = threads or settings.threads
    limit_threads(threads)
    return load_embedder(settings.embed_model, threads=threads)


@dataclass(frozen=True)
class IngestPlan:
    """What a build will hold: the documents read now, plus (unless pruning) every indexed
    document they do not replace. ``removing`` is announced before the build starts."""

    read: IngestReport
    documents: tuple[Document, ...]
    kept: tuple[str, ...]  # indexed documents not among the paths read, carried over
    removing: tuple[str, ...]  # indexed documents the build drops (only with ``prune``)


@dataclass(frozen=True)
class IngestOutcome:
    plan: IngestPlan
    build: BuildReport

    @property
    def ingest(self) -> IngestReport:
        return self.plan.read


def plan_ingest(
    settings: Settings, paths: Sequence[Path] = (), *, prune: bool = False, strict: bool = False
) -> IngestPlan:
    """Read ``paths`` (default: the corpus directory) and decide what the next index holds.

    Adding files never removes others: an indexed document that is not among the files read
    (another folder, a file that failed to parse this time, a file since deleted) is kept as
    it was indexed. Only ``prune`` makes the index mirror exactly the files read.
    """
    report = ingest_paths(list(paths) or [settings.corpus_dir], settings.corpus_dir, strict=strict)
    fresh = {d.doc_id: d for d in report.documents}
    if prune:  # the old documents are not needed, only their names (from the manifest)
        removing = sorted(set(indexed_doc_ids(settings.index_dir)) - set(fresh))
        return IngestPlan(report, report.documents, (), tuple(removing))
    indexed = indexed_documents(settings.index_dir)
    others = tuple(sorted(doc_id for doc_id in indexed if doc_id not in fresh))
    # Indexed documents keep their order (so do their chunk rows); new ones follow.
    documents = [fresh.get(doc_id, document) for doc_id, document in indexed.items()]
    documents += [d for d in report.documents if d.doc_id not in indexed]
    return IngestPlan(report, tuple(documents), others, ())


def ingest(
    settings: Settings,
    paths: Sequence[Path] = (),
    *,
    embedder: Embedder | None = None,
    strict: bool = False,
    rebuild: bool = False,
    prune: bool = False,
    progress: ProgressCallback | None = None,
    announce: Callable[[IngestPlan], None] | None = None,
) -> IngestOutcome:
    """Add or update the documents under ``paths`` (default: the corpus directory); with
    ``prune``, also remove every indexed document not among them. ``announce`` sees the plan
    (what will be removed) before anything is embedded or written."""
    plan = plan_ingest(settings, paths, prune=prune, strict=strict)
    if announce is not None:
        announce(plan)
    build = build_index(
        plan.documents,
        embedder=embedder or open_embedder(settings, threads=settings.ingest_threads),
        chunker=chunker_settings(settings),
        index_dir=settings.index_dir,
        rebuild=rebuild,
        progress=progress,
        workers=settings.ingest_threads,
    )
    return IngestOutcome(plan, build)


def open_retriever(
    settings: Settings,
    embedder: Embedder | None = None,
    retrieval: RetrievalSettings | None = None,
) -> Retriever:
    embedder = embedder or open_embedder(settings)
    index = load_index(settings.index_dir, model_id=embedder.model_id, dimension=embedder.dimension)
    return Retriever(index, embedder, retrieval)
