"""Index lifecycle under failure: kill -9 mid-build, corruption, mismatch, lock, hot reload."""

from __future__ import annotations

import json
import logging
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import CORPUS, free_port, stop_process
from fastapi.testclient import TestClient

from api import create_app
from qa.config import Settings
from qa.embed.hashing import HashingEmbedder
from qa.errors import IndexLockedError
from qa.index import build_lock, current_generation, load_index
from qa.service import ingest

ENV = {**os.environ, "QA_EMBED_MODEL": "hash:64", "QA_THREADS": "1"}


def _big_corpus(root: Path, copies: int) -> Path:
    """The bundled corpus copied ``copies`` times, so a rebuild lasts long enough to kill."""
    for i in range(copies):
        target = root / f"copy{i:02d}"
        target.mkdir(parents=True)
        for source in CORPUS.glob("*.txt"):
            shutil.copy(source, target / source.name)
    return root


def _qa(*args: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "cli", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, dict[str, str]]]:
    corpus = _big_corpus(tmp_path / "corpus", copies=12)
    index_dir = tmp_path / "index"
    env = {**ENV, "QA_CORPUS_DIR": str(corpus), "QA_INDEX_DIR": str(index_dir)}
    env["QA_RELOAD_INTERVAL"] = "0.3"
    subprocess.run(
        [sys.executable, "-m", "cli", "ingest", "--quiet"], env=env, check=True, timeout=300
    )
    port = free_port()
    process = _qa("serve", "--no-ingest", "--port", str(port), env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        else:
            raise AssertionError("server did not become ready")
        yield url, env
    finally:
        stop_process(process)


def test_kill_9_during_rebuild_never_breaks_queries(server: tuple[str, dict[str, str]]) -> None:
    url, env = server
    index_dir = Path(env["QA_INDEX_DIR"])
    failures: list[str] = []
    generations: set[str] = set()
    answered = 0
    stop = threading.Event()
    questions = ["日本重稀土依賴", "Nippon Steel", "南鳥島", "造船 MASGA", "製藥"]

    def ask() -> None:
        nonlocal answered
        with httpx.Client(base_url=url, timeout=10) as http:
            while not stop.is_set():
                question = random.choice(questions)
                try:
                    response = http.post("/v1/search", json={"question": question, "top_k": 3})
                except httpx.HTTPError as exc:
                    failures.append(f"{question}: {exc!r}")
                    continue
                if response.status_code != 200 or len(response.json()["hits"]) != 3:
                    failures.append(f"{question}: {response.status_code} {response.text[:200]}")
                    continue
                generations.add(response.headers["X-Index-Generation"])
                answered += 1

    clients = [threading.Thread(target=ask) for _ in range(3)]
    for thread in clients:
        thread.start()
    rng = random.Random(7)
    killed = 0
    try:
        for delay in [rng.uniform(0.05, 2.5) for _ in range(5)]:
            build = _qa("ingest", "--rebuild", "--quiet", env=env)
            time.sleep(delay)
            if build.poll() is None:
                build.send_signal(signal.SIGKILL)
                killed += 1
            build.wait(timeout=300)
            # Whatever moment it died at, the served generation is complete and verifiable.
            load_index(index_dir, model_id="hash:64", dimension=64)
        finished = subprocess.run(
            [sys.executable, "-m", "cli", "ingest", "--rebuild", "--quiet"],
            env=env,
            capture_output=True,
            timeout=300,
        )
        assert finished.returncode == 0, finished.stderr
        newest = current_generation(index_dir)
        assert newest is not None
        deadline = time.monotonic() + 10
        while newest.name not in generations and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        stop.set()
        for thread in clients:
            thread.join(timeout=30)
    assert killed >= 3, "the builds finished before they could be killed; use a larger corpus"
    assert not failures, failures[:5]
    assert answered > 20
    assert newest.name in generations, "the server never picked up the finished generation"
    assert not list(index_dir.glob(".staging-*"))


@pytest.fixture
def built(small_corpus: Path, tmp_path: Path) -> Settings:
    settings = Settings(
        corpus_dir=small_corpus,
        index_dir=tmp_path / "index",
        embed_model="hash:64",
        threads=1,
        reload_interval=0,
    )
    ingest(settings, embedder=HashingEmbedder(64))
    return settings


def _generation(settings: Settings) -> Path:
    generation = current_generation(settings.index_dir)
    assert generation is not None
    return generation


def _flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _edit_manifest(field: str, value: object) -> object:
    def edit(generation: Path) -> None:
        path = generation / "manifest.json"
        manifest = json.loads(path.read_text("utf-8"))
        manifest[field] = value
        path.write_text(json.dumps(manifest), "utf-8")

    return edit


DAMAGE = {
    "truncated-faiss": (lambda g: (g / "dense.faiss").write_bytes(b"IxF"), "dense.faiss"),
    "flipped-chunks": (lambda g: _flip_byte(g / "chunks.jsonl"), "chunks.jsonl"),
    "missing-sentences": (lambda g: (g / "sentences.npy").unlink(), "sentences.npy is missing"),
    "missing-manifest": (lambda g: (g / "manifest.json").unlink(), "no manifest.json"),
    "other-model": (_edit_manifest("embed_model", "use-multilingual-v3"), "embedding model"),
    "other-dimension": (_edit_manifest("dimension", 512), "embedding dimension 512"),
    "other-schema": (_edit_manifest("schema_version", 1), "schema version 1"),
}


@pytest.mark.parametrize("case", sorted(DAMAGE))
def test_damaged_index_keeps_process_up_and_says_why(built: Settings, case: str) -> None:
    damage, reason = DAMAGE[case]
    damage(_generation(built))  # type: ignore[operator]
    with TestClient(create_app(built, embedder=HashingEmbedder(64))) as client:
        assert client.get("/healthz").status_code == 200
        ready = client.get("/readyz")
        search = client.post("/v1/search", json={"question": "稀土"})
        for response in (ready, search):
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert reason in response.json()["detail"], response.json()
            assert "Traceback" not in response.text


def test_missing_index_is_reported_not_fatal(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path / "none", embed_model="hash:64", reload_interval=0)
    with TestClient(create_app(settings, embedder=HashingEmbedder(64))) as client:
        assert client.get("/healthz").status_code == 200
        assert "qa ingest" in client.get("/readyz").json()["detail"]


def test_concurrent_build_is_refused(built: Settings) -> None:
    with build_lock(built.index_dir):
        with pytest.raises(IndexLockedError, match=f"pid {os.getpid()}"):
            ingest(built, embedder=HashingEmbedder(64))
        other = subprocess.run(
            [sys.executable, "-m", "cli", "ingest", "--quiet"],
            env={
                **ENV,
                "QA_CORPUS_DIR": str(built.corpus_dir),
                "QA_INDEX_DIR": str(built.index_dir),
            },
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert other.returncode == 2 and "another build is running" in other.stderr
    ingest(built, embedder=HashingEmbedder(64))  # the lock is gone with its holder


def test_hot_reload_by_polling_and_on_demand(built: Settings) -> None:
    settings = built.with_(reload_interval=0.2)
    with TestClient(create_app(settings, embedder=HashingEmbedder(64))) as client:
        first = client.post("/v1/search", json={"question": "稀土"}).headers["X-Index-Generation"]
        (settings.corpus_dir / "more.txt").write_text("造船業與破冰船的新合作。\n", "utf-8")
        ingest(settings, embedder=HashingEmbedder(64))
        second = _generation(settings).name
        deadline = time.monotonic() + 5
        seen = first
        while seen != second and time.monotonic() < deadline:
            time.sleep(0.1)
            seen = client.get("/v1/index").headers["X-Index-Generation"]
        assert seen == second != first
        hits = client.post("/v1/search", json={"question": "破冰船", "mode": "lexical"}).json()
        assert hits["hits"] and "破冰船" in hits["hits"][0]["text"]

    settings = built.with_(reload_interval=0)
    with TestClient(create_app(settings, embedder=HashingEmbedder(64))) as client:
        before = client.get("/readyz").json()["generation"]
        ingest(settings, embedder=HashingEmbedder(64), rebuild=True)
        assert client.get("/readyz").json()["generation"] == before  # no polling
        reloaded = client.post("/v1/admin/reload").json()
        assert reloaded == {"generation": _generation(settings).name, "swapped": True}
        assert client.get("/readyz").json()["generation"] == reloaded["generation"]


def test_corrupt_new_generation_leaves_old_one_serving(
    built: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    settings = built.with_(reload_interval=0)
    caplog.set_level(logging.INFO, logger="qa.api")
    with TestClient(create_app(settings, embedder=HashingEmbedder(64))) as client:
        before = client.get("/readyz").json()["generation"]
        assert f"serving index generation {before} (3 documents" in caplog.text
        ingest(settings, embedder=HashingEmbedder(64), rebuild=True)
        refused = _generation(settings).name
        _flip_byte(_generation(settings) / "chunks.jsonl")
        response = client.post("/v1/admin/reload")
        assert f"refused index generation {refused}" in caplog.text
        assert f"still serving {before}" in caplog.text
        assert response.status_code == 503 and "checksum" in response.json()["detail"]
        ready = client.get("/readyz").json()
        assert ready["generation"] == before and "checksum" in ready["last_problem"]
        assert client.post("/v1/search", json={"question": "稀土"}).status_code == 200
