"""QA_THREADS reaches every thread that computes: FAISS/OpenMP and BLAS, measured where they run.

OpenMP keeps its limit per thread, so a limit set once in the main thread leaves a fresh thread
(anyio's worker threads, where sync endpoints run) at one OpenMP thread per core. These tests
read the limits inside the thread that runs FAISS, at the moment it runs.

They run in a process of their own (``test_thread_limits_hold_in_a_fresh_process``), as a
server does: earlier tests in the session load other BLAS builds (torch's, a second OpenBLAS)
and leave limits behind, which is not what a server process starts from.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import faiss
import pytest
from fastapi.testclient import TestClient
from threadpoolctl import threadpool_info

from api import create_app
from qa import threads as compute_threads
from qa.config import Settings, available_cores
from qa.embed.hashing import HashingEmbedder
from qa.errors import ConfigError
from qa.index import load_index
from qa.retrieve import Retriever
from qa.service import ingest

LIMIT = 1  # below the default of one thread per core, so an unapplied limit shows
_ISOLATED = "QA_TEST_THREADS_ISOLATED"
in_own_process = pytest.mark.skipif(
    os.environ.get(_ISOLATED) != "1", reason="runs in a fresh process (see the module docstring)"
)


@pytest.mark.skipif(os.environ.get(_ISOLATED) == "1", reason="this is the fresh process")
def test_thread_limits_hold_in_a_fresh_process() -> None:
    """Every test below, in a fresh interpreter: all of them must pass there."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", __file__],
        env={**os.environ, _ISOLATED: "1"},
        cwd=Path(__file__).parent,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    # the five tests below ran; the one skipped is this test, inside the fresh process
    assert "5 passed, 1 skipped" in done.stdout, done.stdout[-2000:]


@dataclasses.dataclass(frozen=True)
class Limits:
    openmp: int  # faiss.omp_get_max_threads()
    libraries: tuple[tuple[str, int], ...]  # threadpoolctl: (internal_api, num_threads) each

    @classmethod
    def here(cls) -> Limits:
        found = tuple((i["internal_api"], i["num_threads"]) for i in threadpool_info())
        return cls(faiss.omp_get_max_threads(), found)

    def all_equal(self, threads: int) -> bool:
        return self.openmp == threads and all(n == threads for _, n in self.libraries)


class DenseProbe:
    """A FAISS index that records the limits of the thread each search runs in."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seen: list[tuple[str, Limits]] = []

    def search(self, *args: Any, **kwargs: Any) -> Any:
        self.seen.append((threading.current_thread().name, Limits.here()))
        return self.inner.search(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@pytest.fixture
def restore_limit() -> Iterator[None]:
    """Other tests in the session configured their own limit: put it back afterwards."""
    before = compute_threads.configured()
    yield
    if before is not None:
        compute_threads.configure(before)


@pytest.fixture
def probed(small_corpus: Path, tmp_path: Path) -> tuple[Settings, Retriever, DenseProbe]:
    settings = Settings(
        corpus_dir=small_corpus,
        index_dir=tmp_path / "index",
        embed_model="hash:64",
        threads=LIMIT,
        reload_interval=0,
    )
    embedder = HashingEmbedder(64)
    ingest(settings, embedder=embedder, strict=True)
    index = load_index(settings.index_dir, model_id=embedder.model_id, dimension=64)
    probe = DenseProbe(index.dense)
    return settings, Retriever(dataclasses.replace(index, dense=probe), embedder), probe


def _fresh_thread_limits() -> Limits:
    box: list[Limits] = []
    thread = threading.Thread(target=lambda: box.append(Limits.here()))
    thread.start()
    thread.join()
    return box[0]


@in_own_process
def test_a_fresh_thread_starts_at_the_library_default(restore_limit: None) -> None:
    """The premise: a limit set in this thread does not reach a new one by itself."""
    if available_cores() < 2:
        pytest.skip("one core: the library default already equals the limit")
    compute_threads.configure(LIMIT)
    assert Limits.here().all_equal(LIMIT)
    assert not _fresh_thread_limits().all_equal(LIMIT)


@in_own_process
def test_search_in_a_fresh_thread_runs_faiss_and_blas_at_the_limit(
    probed: tuple[Settings, Retriever, DenseProbe], restore_limit: None
) -> None:
    _, retriever, probe = probed
    compute_threads.configure(LIMIT)
    thread = threading.Thread(target=retriever.search, args=("稀土",), name="fresh-search")
    thread.start()
    thread.join()
    ((name, limits),) = probe.seen
    assert name == "fresh-search"
    assert limits.openmp == LIMIT
    assert limits.libraries and limits.all_equal(LIMIT), limits


@in_own_process
def test_requests_through_the_app_run_faiss_at_qa_threads(
    probed: tuple[Settings, Retriever, DenseProbe], restore_limit: None
) -> None:
    """Sync endpoints run in anyio's worker threads, not the thread that configured."""
    settings, retriever, probe = probed
    with TestClient(create_app(settings, retriever=retriever)) as client:
        for question in ("稀土", "steel", "レアアース"):
            response = client.post("/v1/search", json={"question": question, "mode": "dense"})
            assert response.status_code == 200
    assert len(probe.seen) == 3
    main = threading.main_thread().name
    assert all(name != main for name, _ in probe.seen)
    assert all(limits.all_equal(LIMIT) for _, limits in probe.seen), probe.seen


@in_own_process
def test_apply_follows_a_new_configuration(restore_limit: None) -> None:
    compute_threads.configure(1)
    compute_threads.configure(2)
    compute_threads.apply()
    assert faiss.omp_get_max_threads() == 2
    compute_threads.configure(1)
    assert faiss.omp_get_max_threads() == 1


@in_own_process
def test_the_limit_must_be_positive() -> None:
    with pytest.raises(ConfigError, match="at least 1"):
        compute_threads.configure(0)
