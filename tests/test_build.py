"""Streaming builds: resumed after an interruption, embedded in worker processes, IVF above a
size with its recall measured, each vector stored once."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

import qa.build
import qa.dense
from api import create_app
from qa.build import build_index
from qa.chunk import ChunkerSettings
from qa.config import Settings
from qa.dense import build_dense, search
from qa.embed.hashing import HashingEmbedder
from qa.index import Index, current_generation, load_index
from qa.ingest import ingest_paths
from qa.retrieve import Retriever
from qa.service import ingest
from qa.types import Block

ROOT = Path(__file__).resolve().parents[1]


def _corpus(folder: Path, documents: int = 8, paragraphs: int = 30) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    topics = ["稀土供應鏈", "造船產業", "半導體製造", "經濟安全", "港口物流", "能源轉型"]
    for d in range(documents):
        lines = [f"# 文件 {d}", ""]
        for p in range(paragraphs):
            topic = topics[int(rng.integers(len(topics)))]
            lines.append(f"第{p}段：日本在{topic}方面的政策第{d}號。另一句說明{topic}的風險。\n")
        (folder / f"doc{d:02d}.md").write_text("\n".join(lines), "utf-8")
    return folder


class Counting(HashingEmbedder):
    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__(64)
        self.calls = 0
        self.texts = 0
        self.fail_after = fail_after

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt  # what Ctrl-C does in the middle of embedding
        self.calls += 1
        self.texts += len(texts)
        return super().encode_passages(texts)


def _build(corpus: Path, index_dir: Path, embedder: HashingEmbedder, **kwargs: object) -> object:
    documents = ingest_paths([corpus], corpus).documents
    return build_index(
        documents,
        embedder=embedder,
        chunker=ChunkerSettings(max_tokens=64),
        index_dir=index_dir,
        **kwargs,  # type: ignore[arg-type]
    )


def _load(index_dir: Path) -> Index:
    return load_index(index_dir, model_id="hash:64", dimension=64)


def _assert_same_index(a: Index, b: Index) -> None:
    assert (a.path / "chunks.jsonl").read_bytes() == (b.path / "chunks.jsonl").read_bytes()
    np.testing.assert_array_equal(
        a.dense.reconstruct_n(0, a.dense.ntotal), b.dense.reconstruct_n(0, b.dense.ntotal)
    )
    np.testing.assert_array_equal(np.asarray(a.sentence_vectors), np.asarray(b.sentence_vectors))
    np.testing.assert_array_equal(a.sentence_ranges, b.sentence_ranges)
    np.testing.assert_array_equal(a.hubness, b.hubness)


def test_an_interrupted_build_resumes_where_it_stopped(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus")
    fresh = Counting()
    _build(corpus, tmp_path / "fresh", fresh)

    with pytest.raises(KeyboardInterrupt):
        _build(corpus, tmp_path / "index", Counting(fail_after=3))
    assert current_generation(tmp_path / "index") is None  # nothing half-built is served
    (staging,) = (tmp_path / "index").glob(".staging-*")
    journal = json.loads((staging / "journal.json").read_text("utf-8"))
    assert 0 < journal["documents"] < 8

    again = Counting()
    report = _build(corpus, tmp_path / "index", again)
    assert report.resumed_documents == journal["documents"]  # type: ignore[attr-defined]
    assert 0 < again.texts < fresh.texts  # only what was not done is embedded
    assert not list((tmp_path / "index").glob(".staging-*"))
    _assert_same_index(_load(tmp_path / "index"), _load(tmp_path / "fresh"))


def test_a_staging_folder_of_another_plan_is_not_resumed(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus")
    with pytest.raises(KeyboardInterrupt):
        _build(corpus, tmp_path / "index", Counting(fail_after=2))
    (corpus / "doc00.md").write_text("# 改寫\n\n完全不同的內容。\n", "utf-8")
    again = Counting()
    report = _build(corpus, tmp_path / "index", again)
    assert report.resumed_documents == 0  # type: ignore[attr-defined]
    _build(corpus, tmp_path / "fresh", Counting())
    _assert_same_index(_load(tmp_path / "index"), _load(tmp_path / "fresh"))


def test_a_killed_ingest_resumes_from_the_command_line(tmp_path: Path) -> None:
    """SIGKILL in the middle of embedding, then the same command: it says it resumed, and the
    index equals one built in one go."""
    corpus = _corpus(tmp_path / "corpus", documents=40, paragraphs=60)
    env = {
        **dict(__import__("os").environ),
        "QA_CORPUS_DIR": str(corpus),
        "QA_INDEX_DIR": str(tmp_path / "index"),
        "QA_EMBED_MODEL": "hash:64",
        "QA_CHUNK_MAX_TOKENS": "64",
        "QA_INGEST_THREADS": "1",
    }
    command = [sys.executable, "-m", "cli", "ingest", "--quiet"]
    build = subprocess.Popen(command, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    journal: dict[str, int] = {}
    while time.monotonic() < deadline and build.poll() is None:
        found = list((tmp_path / "index").glob(".staging-*/journal.json"))
        if found:
            try:
                journal = json.loads(found[0].read_text("utf-8"))
            except ValueError:
                continue
            if journal.get("documents", 0) >= 3:
                break
        time.sleep(0.02)
    if build.poll() is not None:
        pytest.skip("the build finished before it could be killed")
    build.send_signal(signal.SIGKILL)
    build.wait(timeout=30)
    assert current_generation(tmp_path / "index") is None
    finished = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert "resumed an interrupted build" in finished.stdout
    fresh = subprocess.run(
        command, env={**env, "QA_INDEX_DIR": str(tmp_path / "fresh")}, cwd=ROOT, timeout=300
    )
    assert fresh.returncode == 0
    _assert_same_index(_load(tmp_path / "index"), _load(tmp_path / "fresh"))


def test_worker_processes_embed_exactly_what_this_process_would(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = _corpus(tmp_path / "corpus", documents=4)
    _build(corpus, tmp_path / "here", HashingEmbedder(64), workers=1)
    monkeypatch.setattr(qa.build, "_POOL_MIN_CHARS", 0)
    spawned: list[int] = []
    original = qa.build._Encoder.__init__

    def counting_init(self: qa.build._Encoder, *args: object) -> None:
        original(self, *args)  # type: ignore[arg-type]
        spawned.append(self.pool is not None)

    monkeypatch.setattr(qa.build._Encoder, "__init__", counting_init)
    _build(corpus, tmp_path / "pool", HashingEmbedder(64), workers=2)
    assert spawned == [True]  # the pool was really used
    _assert_same_index(_load(tmp_path / "pool"), _load(tmp_path / "here"))


def test_above_the_threshold_the_index_is_ivf_with_its_recall_reported(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qa.dense, "EXACT_UP_TO", 3)
    settings = Settings(
        corpus_dir=small_corpus, index_dir=tmp_path / "index", embed_model="hash:64", threads=1
    )
    ingest(settings, embedder=HashingEmbedder(64))
    index = _load(settings.index_dir)
    info = index.manifest["dense"]
    assert info["kind"] == "ivf" and info["factory"].startswith("IVF")
    assert 0.0 < info["recall_at_10"] <= 1.0 and info["recall_queries"] > 0
    assert 1 <= index.dense_info.search_params["nprobe"] <= index.dense_info.search_params["nlist"]
    with TestClient(create_app(settings, embedder=HashingEmbedder(64))) as client:
        body = client.get("/v1/index").json()
        assert body["dense"] == info
        hits = client.post("/v1/search", json={"question": "稀土", "doc_ids": ["en"]}).json()
        assert hits["hits"] and {h["citation"]["doc_id"] for h in hits["hits"]} == {"en"}


def test_ivf_recall_on_real_embeddings_meets_the_target(corpus_retriever: Retriever) -> None:
    """20,000 vectors near the bundled corpus's real sentence vectors (each real vector plus a
    little noise): the chosen efSearch finds at least 95% of the exact top 10, measured with
    other real vectors, and a filter returns exactly the best allowed rows."""
    index = corpus_retriever.index
    real = np.asarray(index.sentence_vectors, dtype=np.float32)
    rng = np.random.default_rng(11)
    base = real[rng.integers(0, len(real), 20_000)]
    vectors = base + rng.normal(scale=0.02, size=base.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    questions = corpus_retriever.embedder.encode_queries(
        ["稀土出口管制", "Nippon Steel acquisition", "造船 破冰船", "製薬のサプライチェーン"]
    )
    probes = np.vstack([real[::3], questions])
    dense, info = build_dense(vectors, probes=probes, exact_up_to=1_000)
    assert info.kind == "ivf" and info.recall_at_10 >= qa.dense.RECALL_TARGET
    allowed = np.arange(0, 20_000, 7, dtype=np.int64)
    for query in questions:
        found = search(dense, info, query, 10, allowed)
        exact = allowed[np.argsort(-(vectors[allowed] @ query), kind="stable")[:10]]
        assert [row for row, _ in found] == exact.tolist()
        unfiltered = search(dense, info, query, 10)
        scores = [score for _, score in unfiltered]
        assert len(scores) == 10 and scores == sorted(scores, reverse=True)


def test_a_document_without_chunks_is_listed_and_the_rest_indexed(tmp_path: Path) -> None:
    corpus = _corpus(tmp_path / "corpus", documents=2, paragraphs=3)
    documents = list(ingest_paths([corpus], corpus).documents)
    only_boilerplate = (Block("boilerplate", 0, len(documents[0].text)),)  # never indexed
    documents.insert(1, replace(documents[0], doc_id="empty", blocks=only_boilerplate))
    settings = ChunkerSettings(max_tokens=64)
    args = {"chunker": settings, "index_dir": tmp_path / "index"}
    report = build_index(documents, embedder=HashingEmbedder(64), **args)  # type: ignore[arg-type]
    index = _load(tmp_path / "index")
    assert "empty" in index.documents and "empty" not in {c.doc_id for c in index.chunks}
    assert report.chunks_total == len(index.chunks) > 0
    again = build_index(documents, embedder=Counting(), **args)  # type: ignore[arg-type]
    assert again.chunks_embedded == 0 and again.chunks_total == report.chunks_total
