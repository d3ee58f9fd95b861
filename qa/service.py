"""The pipeline wired together from ``Settings``: what the CLI and the API both call."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qa import threads as compute_threads
from qa.build import BuildReport, EmbedUnits, ProgressCallback, build_index
from qa.chunk import ChunkerSettings
from qa.config import Settings
from qa.embed import Embedder, load_embedder
from qa.errors import ConfigError
from qa.index import (
    current_generation,
    indexed_doc_ids,
    indexed_documents,
    load_index,
    read_manifest,
)
from qa.ingest import IngestReport, ReadFiles, ingest_paths
from qa.retrieve import RetrievalSettings, Retriever
from qa.store import Store
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
    published: bool = False  # the generation was published to Milvus by this run

    @property
    def ingest(self) -> IngestReport:
        return self.plan.read


def plan_ingest(
    settings: Settings,
    paths: Sequence[Path] = (),
    *,
    prune: bool = False,
    strict: bool = False,
    read: ReadFiles | None = None,
    progress: ProgressCallback | None = None,
) -> IngestPlan:
    """Read ``paths`` (default: the corpus directory) and decide what the next index holds.

    Adding files never removes others: an indexed document that is not among the files read
    (another folder, a file that failed to parse this time, a file since deleted) is kept as
    it was indexed. Only ``prune`` makes the index mirror exactly the files read.
    """
    roots = list(paths) or [settings.corpus_dir]
    report = ingest_paths(roots, settings.corpus_dir, strict=strict, read=read, progress=progress)
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
    read: ReadFiles | None = None,
    embed: EmbedUnits | None = None,
) -> IngestOutcome:
    """Add or update the documents under ``paths`` (default: the corpus directory); with
    ``prune``, also remove every indexed document not among them. ``announce`` sees the plan
    (what will be removed) before anything is embedded or written. ``read`` and ``embed`` say
    where files are parsed, chunked and embedded (``qa.distributed``: on a Ray cluster)."""
    plan = plan_ingest(settings, paths, prune=prune, strict=strict, read=read, progress=progress)
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
        embed=embed,
    )
    published = False
    if settings.backend == "milvus":
        published = publish_generation(settings, progress=progress)
    return IngestOutcome(plan, build, published)


def milvus_target(settings: Settings) -> Any:
    """Where ``QA_BACKEND=milvus`` publishes and serves (``qa.milvus.MilvusTarget``)."""
    from qa.milvus import MilvusTarget

    if not settings.milvus_uri:
        raise ConfigError("QA_BACKEND=milvus needs QA_MILVUS_URI")
    return MilvusTarget(
        uri=settings.milvus_uri,
        name=settings.milvus_collection,
        token=settings.milvus_token,
        timeout=settings.milvus_timeout,
    )


def publish_generation(settings: Settings, *, progress: ProgressCallback | None = None) -> bool:
    """Publish the generation built under ``index_dir`` to Milvus unless it is already the one
    served there (a build that changed nothing still publishes to an empty Milvus)."""
    from qa.milvus import publish

    generation = current_generation(settings.index_dir)
    if generation is None:
        raise ConfigError(f"nothing to publish: no index built in {settings.index_dir}")
    manifest = read_manifest(generation)
    return publish(
        generation,
        milvus_target(settings),
        model_id=str(manifest["embed_model"]),
        dimension=int(manifest["dimension"]),
        progress=progress,
    )


def served_generation(settings: Settings) -> str | None:
    """The name of the generation a server of these settings should serve now."""
    if settings.backend == "milvus":
        from qa.milvus import served_generation as milvus_generation

        return milvus_generation(milvus_target(settings))
    generation = current_generation(settings.index_dir)
    return generation.name if generation is not None else None


def open_store(settings: Settings, embedder: Embedder) -> Store:
    """The served generation of the configured backend."""
    if settings.backend == "milvus":
        from qa.milvus import open_milvus

        return open_milvus(
            milvus_target(settings), model_id=embedder.model_id, dimension=embedder.dimension
        )
    return load_index(settings.index_dir, model_id=embedder.model_id, dimension=embedder.dimension)


def open_retriever(
    settings: Settings,
    embedder: Embedder | None = None,
    retrieval: RetrievalSettings | None = None,
) -> Retriever:
    embedder = embedder or open_embedder(settings)
    return Retriever(open_store(settings, embedder), embedder, retrieval)
