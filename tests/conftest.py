"""Shared fixtures: the bundled corpus indexed once per session with the real multilingual model.

Tests never read the live ``corpus/`` folder as a whole: a user adds documents there. The two
bundled documents are copied by name into a temporary corpus (``CORPUS``) that every test uses.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from hypothesis.configuration import set_hypothesis_home_dir

from api import create_app
from qa.config import Settings
from qa.embed import Embedder
from qa.embed.hashing import HashingEmbedder
from qa.retrieve import Retriever
from qa.service import ingest, open_embedder, open_retriever, publish_generation

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_TITLE = "第六章 川普 2.0 時代的日本製造業供應鏈安全重構"
LEVEL2 = (
    "壹、前言",
    "貳、戰略資源與稀土供應鏈安全",
    "參、跨國併購與鋼鐵戰略自主",
    "肆、軍民融合與造船產業布局",
    "伍、醫藥安全與製藥供應鏈韌性",
    "陸、小結",
)
# Hypothesis keeps no example database and no cache in the working tree (.hypothesis/): a test
# run leaves nothing behind there.
hypothesis_settings.register_profile("citeqa", database=None)
hypothesis_settings.load_profile("citeqa")
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="qa-hypothesis-")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
set_hypothesis_home_dir(_HYPOTHESIS_HOME)

GOLD = ROOT / "eval" / "gold.jsonl"
CHAPTER = "indsr-2025-ch6-japan-supply-chain-security"
NEWS = "nownews-2026-01-14-japan-g7-democratic-rare-earth-chain"
BUNDLED = (CHAPTER, NEWS)  # the documents the gold set, the baseline and the tests are about


def _bundled_corpus() -> Path:
    """A private ``corpus/`` holding only the bundled documents, removed when the run ends."""
    parent = Path(tempfile.mkdtemp(prefix="qa-tests-"))
    atexit.register(shutil.rmtree, parent, ignore_errors=True)
    root = parent / "corpus"  # same folder name, so source paths read ``corpus/<file>``
    root.mkdir()
    for doc_id in BUNDLED:
        source = ROOT / "corpus" / f"{doc_id}.txt"
        if not source.is_file():
            raise RuntimeError(f"the bundled document {source} is missing; restore it with git")
        shutil.copy2(source, root / source.name)
    return root


CORPUS = _bundled_corpus()


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate a server started by a test; kill it if it does not stop in 15 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@pytest.fixture(scope="session")
def use_embedder() -> Embedder:
    """The real default model (USE multilingual v3), loaded once."""
    return open_embedder(Settings(threads=2))


@pytest.fixture(scope="session")
def corpus_settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    index_dir = tmp_path_factory.mktemp("index")
    return Settings(corpus_dir=CORPUS, index_dir=index_dir, gold_path=GOLD, threads=2)


@pytest.fixture(scope="session")
def local_retriever(corpus_settings: Settings, use_embedder: Embedder) -> Retriever:
    """The bundled corpus, indexed with the real model in a temporary directory."""
    ingest(corpus_settings, embedder=use_embedder, strict=True)
    return open_retriever(corpus_settings, use_embedder)


@pytest.fixture(scope="session")
def corpus_retriever(local_retriever: Retriever) -> Retriever:
    return local_retriever


@pytest.fixture(scope="session")
def client(corpus_settings: Settings, local_retriever: Retriever) -> Iterator[TestClient]:
    app = create_app(corpus_settings, embedder=local_retriever.embedder)
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def milvus_settings(
    corpus_settings: Settings, local_retriever: Retriever, tmp_path_factory: pytest.TempPathFactory
) -> Settings:
    """The bundled corpus's index published to an embedded milvus-lite in a temporary file."""
    uri = tmp_path_factory.mktemp("milvus") / "qa.db"
    settings = corpus_settings.with_(backend="milvus", milvus_uri=str(uri))
    assert publish_generation(settings)
    return settings


@pytest.fixture(scope="session")
def milvus_retriever(milvus_settings: Settings, use_embedder: Embedder) -> Retriever:
    return open_retriever(milvus_settings, use_embedder)


@pytest.fixture(scope="session")
def milvus_client(milvus_settings: Settings, milvus_retriever: Retriever) -> Iterator[TestClient]:
    app = create_app(milvus_settings, embedder=milvus_retriever.embedder)
    with TestClient(app) as test_client:
        yield test_client


BACKENDS = ("local", "milvus")


def contract_backends() -> tuple[Any, Any, Any]:
    """Fixtures a contract test module takes as its own (``backend, client, corpus_retriever =
    contract_backends()``): each of its tests then runs once per backend, the local generation
    folder and the same generation published to Milvus."""

    @pytest.fixture(name="backend", scope="module", params=BACKENDS)
    def backend(request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture(name="corpus_retriever", scope="module")
    def retriever(
        request: pytest.FixtureRequest, backend: str, local_retriever: Retriever
    ) -> Retriever:
        if backend == "local":
            return local_retriever
        return request.getfixturevalue("milvus_retriever")  # type: ignore[no-any-return]

    @pytest.fixture(name="client", scope="module")
    def client(request: pytest.FixtureRequest, backend: str, client: TestClient) -> TestClient:
        if backend == "local":
            return client
        return request.getfixturevalue("milvus_client")  # type: ignore[no-any-return]

    return backend, client, retriever


@pytest.fixture
def hash_embedder() -> HashingEmbedder:
    """Fast deterministic embedder for unit tests that are not about quality."""
    return HashingEmbedder(64)


@pytest.fixture
def small_corpus(tmp_path: Path) -> Path:
    """A writable corpus of three small files, one per script."""
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "zh.txt").write_text(
        "第一章 稀土\n\n壹、背景\n\n日本對中國的稀土依賴很高。南鳥島海底泥含有稀土。\n", "utf-8"
    )
    (root / "en.md").write_text(
        "# Steel\n\nNippon Steel bought U.S. Steel for 14.1 billion dollars.\n", "utf-8"
    )
    (root / "sub" / "ja.txt").write_text("レアアースの調達先を多様化する。\n", "utf-8")
    return root


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class LiveServer:
    url: str
    host: str
    port: int
    log: Path


class ServerProcess:
    """``qa serve --no-ingest`` over ``index_dir`` on a free port, started at once (``env``:
    extra ``QA_*`` settings; no API keys unless given; ``args``: more ``qa serve`` options);
    ``ready()`` waits for ``/readyz``. Starting before waiting lets two servers load their
    models side by side."""

    def __init__(
        self, index_dir: Path, workdir: Path, *, args: Sequence[str] = (), **env: str
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = workdir / f"server-{self.port}.log"
        environ = {k: v for k, v in os.environ.items() if k != "QA_API_KEYS"}
        environ |= {"QA_INDEX_DIR": str(index_dir), "QA_THREADS": "1", "QA_RELOAD_INTERVAL": "0"}
        environ |= env
        command = [sys.executable, "-m", "cli", "serve", "--no-ingest"]
        command += ["--host", "127.0.0.1", "--port", str(self.port), *args]
        with open(self.log, "wb") as output:  # cwd: no ./index or ./corpus to fall back on
            self.process = subprocess.Popen(
                command, env=environ, cwd=workdir, stdout=output, stderr=subprocess.STDOUT
            )
        self._ready = False

    def ready(self, timeout: float = 60.0) -> LiveServer:
        deadline = time.monotonic() + timeout
        while not self._ready:
            if self.process.poll() is not None:
                pytest.fail(f"server exited:\n{self.log.read_text(errors='replace')}")
            if time.monotonic() > deadline:
                log = self.log.read_text(errors="replace")
                pytest.fail(f"/readyz not 200 after {timeout:.0f} s:\n{log}")
            with contextlib.suppress(httpx.TransportError):
                self._ready = httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200
            if not self._ready:
                time.sleep(0.2)
        return LiveServer(self.url, "127.0.0.1", self.port, self.log)

    def stop(self) -> None:
        stop_process(self.process)


@contextmanager
def serve_index(index_dir: Path, workdir: Path, **env: str) -> Iterator[LiveServer]:
    """A ``ServerProcess``, ready when it yields; always terminated."""
    server = ServerProcess(index_dir, workdir, **env)
    try:
        yield server.ready()
    finally:
        server.stop()


@pytest.fixture(scope="session")
def live_server(
    corpus_settings: Settings, corpus_retriever: Retriever, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """The corpus index served by a real ``qa serve`` process, shared by the session."""
    with serve_index(corpus_settings.index_dir, tmp_path_factory.mktemp("live-server")) as server:
        yield server
