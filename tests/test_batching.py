"""Dynamic batching of questions (qa.embed.batching): callers that arrive together share one
encoder call and each gets the vector it would have got alone; a lone caller is not held."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from qa.config import Settings
from qa.embed import Embedder, Vectors
from qa.embed.batching import QueryBatcher
from qa.embed.hashing import HashingEmbedder
from qa.service import ingest, open_retriever

QUESTIONS = [
    "日本對中國稀土的依賴程度有多高？",
    "日本对中国稀土的依赖程度有多高？",
    "How dependent is Japan on rare earths from China?",
    "日本は中国産レアアースへの依存度がどのくらい高いですか。",
    "<script>alert(1)</script>",
    "😀 稀土",
    "Who acquired U.S. Steel?",
    "台積電在熊本的工廠何時量產？",
]


def _wait_for(condition: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.001)


def test_callers_arriving_together_share_one_batch_and_get_their_own_vectors(
    use_embedder: Embedder,
) -> None:
    alone = np.vstack([use_embedder.encode_queries([q]) for q in QUESTIONS])
    lock = threading.Lock()
    batcher = QueryBatcher(use_embedder, lock=lock)
    with ThreadPoolExecutor(max_workers=len(QUESTIONS)) as pool:
        with lock:  # the compute lock is busy (a FAISS search, say) while they all arrive
            futures = [pool.submit(batcher.encode_queries, [q]) for q in QUESTIONS]
            _wait_for(lambda: batcher.waiting == len(QUESTIONS))
        together = np.vstack([f.result(timeout=30) for f in futures])
    assert batcher.batches == 1 and batcher.texts == len(QUESTIONS)
    np.testing.assert_allclose(together, alone, atol=1e-6)
    assert (together * alone).sum(axis=1).min() > 0.99999


def test_unsynchronised_callers_get_their_own_vectors(use_embedder: Embedder) -> None:
    alone = {q: use_embedder.encode_queries([q])[0] for q in QUESTIONS}
    batcher = QueryBatcher(use_embedder)
    asked = [QUESTIONS[k % len(QUESTIONS)] for k in range(64)]
    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda q: batcher.encode_queries([q])[0], asked))
    for question, vector in zip(asked, got, strict=True):
        np.testing.assert_allclose(vector, alone[question], atol=1e-6)
    assert batcher.texts == 64 and 1 <= batcher.batches <= 64


def test_a_lone_caller_is_encoded_at_once_with_its_own_texts(use_embedder: Embedder) -> None:
    batcher = QueryBatcher(use_embedder)
    two = batcher.encode_queries(QUESTIONS[:2])
    np.testing.assert_allclose(two, use_embedder.encode_queries(QUESTIONS[:2]), atol=1e-6)
    assert batcher.encode_queries([]).shape == (0, 512)
    assert batcher.batches == 2 and batcher.waiting == 0


class _Failing:
    model_id = "failing"
    dimension = 4

    def encode_queries(self, texts: list[str]) -> Vectors:
        raise ValueError(f"cannot encode {len(texts)}")

    def encode_passages(self, texts: list[str]) -> Vectors:
        raise ValueError("never called")


def test_a_failed_batch_fails_every_caller_in_it_and_the_next_batch_runs() -> None:
    lock = threading.Lock()
    batcher = QueryBatcher(_Failing(), lock=lock)
    with ThreadPoolExecutor(max_workers=3) as pool:
        with lock:
            futures = [pool.submit(batcher.encode_queries, [str(k)]) for k in range(3)]
            _wait_for(lambda: batcher.waiting == 3)
        for future in futures:
            with pytest.raises(ValueError, match="cannot encode 3"):
                future.result(timeout=10)
    with pytest.raises(ValueError, match="cannot encode 1"):
        batcher.encode_queries(["again"])
    assert batcher.waiting == 0 and batcher.batches == 2


def test_concurrent_searches_rank_as_they_do_alone(small_corpus: Path, tmp_path: Path) -> None:
    """The retriever's questions go through its batcher: answers under concurrency are the
    answers one at a time, and every dense question was encoded exactly once."""
    settings = Settings(
        corpus_dir=small_corpus, index_dir=tmp_path / "index", embed_model="hash:64"
    )
    embedder = HashingEmbedder(64)
    ingest(settings, embedder=embedder, strict=True)
    retriever = open_retriever(settings, embedder)
    asked = [
        ("日本對中國的稀土依賴高嗎？", "hybrid"),
        ("Who bought U.S. Steel?", "dense"),
        ("レアアースの調達先", "hybrid"),
        ("南鳥島", "lexical"),
    ] * 6

    def ranked(question_mode: tuple[str, str]) -> list[tuple[str, float]]:
        question, mode = question_mode
        hits = retriever.search(question, top_k=3, mode=mode).hits  # type: ignore[arg-type]
        return [(hit.text, round(hit.score, 6)) for hit in hits]

    alone = [ranked(item) for item in asked]
    before = retriever._questions.texts
    with ThreadPoolExecutor(max_workers=6) as pool:
        together = list(pool.map(ranked, asked))
    assert together == alone
    assert all(alone)  # each question found something
    assert retriever._questions.texts - before == sum(mode != "lexical" for _, mode in asked)
