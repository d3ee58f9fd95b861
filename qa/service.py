"""The pipeline wired together from ``Settings``: what the CLI and the API both call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qa.chunk import ChunkerSettings
from qa.config import Settings
from qa.embed import Embedder, load_embedder
from qa.index import BuildReport, ProgressCallback, build_index, load_index
from qa.ingest import IngestReport, ingest_paths
from qa.retrieve import FusionSettings, Retriever


def limit_threads(threads: int) -> None:
    """Cap BLAS and FAISS threads: oversubscribing 2 cores makes USE ~50x slower."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=threads)
    try:
        import faiss

        faiss.omp_set_num_threads(threads)
    except ImportError:  # pragma: no cover - faiss is a hard dependency
        pass


def chunker_settings(settings: Settings) -> ChunkerSettings:
    return ChunkerSettings(
        max_tokens=settings.chunk_max_tokens, overlap_sentences=settings.chunk_overlap_sentences
    )


def open_embedder(settings: Settings) -> Embedder:
    limit_threads(settings.threads)
    return load_embedder(settings.embed_model, threads=settings.threads)


@dataclass(frozen=True)
class IngestOutcome:
    ingest: IngestReport
    build: BuildReport


def ingest(
    settings: Settings,
    paths: Sequence[Path] = (),
    *,
    embedder: Embedder | None = None,
    strict: bool = False,
    rebuild: bool = False,
    progress: ProgressCallback | None = None,
) -> IngestOutcome:
    """Read ``paths`` (default: the corpus directory) and make the index reflect exactly them."""
    paths = list(paths) or [settings.corpus_dir]
    report = ingest_paths(paths, settings.corpus_dir, strict=strict)
    build = build_index(
        report.documents,
        embedder=embedder or open_embedder(settings),
        chunker=chunker_settings(settings),
        index_dir=settings.index_dir,
        rebuild=rebuild,
        progress=progress,
    )
    return IngestOutcome(report, build)


def open_retriever(
    settings: Settings, embedder: Embedder | None = None, fusion: FusionSettings | None = None
) -> Retriever:
    embedder = embedder or open_embedder(settings)
    index = load_index(settings.index_dir, model_id=embedder.model_id, dimension=embedder.dimension)
    return Retriever(index, embedder, fusion)
