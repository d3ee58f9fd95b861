"""The Milvus store: same answers as the local store, atomic publishing through the alias, and
503s (never a 500 or a hang) when Milvus cannot be reached. The contract tests of
``tests/test_api.py`` and ``tests/test_search_features.py`` also run against it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import GOLD, free_port, stop_process
from fastapi.testclient import TestClient

import qa.milvus
from api import create_app
from qa.config import Settings
from qa.embed.hashing import HashingEmbedder
from qa.errors import BackendUnavailableError, ConfigError, IndexCorruptError
from qa.milvus import MilvusTarget, _row_filter, served_generation
from qa.retrieve import Retriever
from qa.service import ingest, milvus_target, open_retriever, publish_generation

pytest.importorskip("pymilvus")
ROOT = Path(__file__).resolve().parents[1]
ENV = {k: v for k, v in os.environ.items() if not k.startswith("QA_")}


def test_same_rankings_flags_and_scores_as_the_local_store(
    corpus_retriever: Retriever, milvus_retriever: Retriever
) -> None:
    """Every fifth gold question (all languages), in each mode: the same rows in the same order,
    the same answerable verdict, scores equal to float precision."""
    rows = [json.loads(line) for line in GOLD.read_text("utf-8").splitlines()][::5]
    assert len(rows) >= 50
    for row in rows:
        for mode in ("dense", "lexical", "hybrid"):
            local = corpus_retriever.search(row["question"], top_k=10, mode=mode)
            milvus = milvus_retriever.search(row["question"], top_k=10, mode=mode)
            assert [h.row for h in milvus.hits] == [h.row for h in local.hits], (row["id"], mode)
            assert milvus.answerable == local.answerable, (row["id"], mode)
            assert milvus.confidence == pytest.approx(local.confidence, abs=1e-4)
            for a, b in zip(local.hits, milvus.hits, strict=True):
                assert b.score == pytest.approx(a.score, abs=1e-4), (row["id"], mode)
                assert b.citation == a.citation and b.text == a.text


def test_answers_are_the_local_ones_with_one_fetch_of_sentence_vectors(
    corpus_retriever: Retriever, milvus_retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The answer stage reads the sentence vectors of all its passages in one Milvus call."""
    from qa.answer import answer_question

    fetched: list[int] = []
    real = qa.milvus.MilvusIndex._sentences

    def counted(self: qa.milvus.MilvusIndex, wanted: Any) -> Any:
        fetched.append(len(wanted))
        return real(self, wanted)

    monkeypatch.setattr(qa.milvus.MilvusIndex, "_sentences", counted)
    for question in (
        "日本進口的重稀土對中國的依賴程度大概有多高？",
        "How much did Nippon Steel pay for U.S. Steel?",
        "日本製鉄はUSスチール買収にいくら払った？",
    ):
        local = answer_question(corpus_retriever, question)
        fetched.clear()
        milvus = answer_question(milvus_retriever, question)
        assert (milvus.text, milvus.method) == (local.text, local.method)
        assert [r.citation for r in milvus.references] == [r.citation for r in local.references]
        assert len(fetched) == 2, fetched  # dense rescoring, then the answer stage


def test_a_hybrid_question_costs_four_milvus_requests(
    milvus_retriever: Retriever, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dense search, sparse search, the candidates' sentence vectors, and the top passages'
    terms for ``answerable``: each one request, however many passages are involved."""
    requests: list[str] = []
    real = qa.milvus._call

    def counted(target: Any, action: Any) -> Any:
        requests.append(getattr(action, "__qualname__", repr(action)))
        return real(target, action)

    monkeypatch.setattr(qa.milvus, "_call", counted)
    for question in ("日本進口的重稀土對中國的依賴程度大概有多高？", "Nippon Steel acquisition"):
        requests.clear()
        result = milvus_retriever.search(question, top_k=5, mode="hybrid")
        assert len(result.hits) == 5
        assert len(requests) == 4, requests


def test_filters_are_sent_as_row_ranges() -> None:
    import numpy as np

    assert _row_filter(None) == ""
    assert (
        _row_filter(np.array([3, 4, 5, 9])) == "(row >= 3 and row <= 5) or (row >= 9 and row <= 9)"
    )
    scattered = np.arange(0, 400, 2)
    assert _row_filter(scattered).startswith("row in [0,2,4,")


def _hash_settings(corpus: Path, tmp_path: Path, uri: str, **changes: object) -> Settings:
    return Settings(
        corpus_dir=corpus,
        index_dir=tmp_path / "index",
        embed_model="hash:64",
        threads=1,
        reload_interval=0,
        backend="milvus",
        milvus_uri=uri,
        milvus_timeout=3.0,
    ).with_(**changes)


def _collections(settings: Settings) -> set[str]:
    client = qa.milvus._client(milvus_target(settings))
    return {name for name in client.list_collections() if name.startswith("qa_gen_")}


def test_publish_switches_the_alias_and_keeps_one_previous_generation(
    small_corpus: Path, tmp_path: Path
) -> None:
    settings = _hash_settings(small_corpus, tmp_path, str(tmp_path / "m.db"))
    embedder = HashingEmbedder(64)
    first = ingest(settings, embedder=embedder)
    assert first.published and served_generation(milvus_target(settings)) == first.build.generation
    assert not publish_generation(settings)  # Milvus already serves the built generation

    with TestClient(create_app(settings, embedder=embedder)) as client:
        assert client.get("/readyz").json()["generation"] == first.build.generation
        before = client.post("/v1/search", json={"question": "稀土", "mode": "lexical"}).json()
        assert before["hits"]

        (small_corpus / "new.txt").write_text("鋼鐵業的造船計畫在長崎展開。\n", "utf-8")
        second = ingest(settings, embedder=embedder)
        assert second.published and second.build.generation != first.build.generation
        swapped = client.post("/v1/admin/reload").json()
        assert swapped == {"generation": second.build.generation, "swapped": True}
        found = client.post("/v1/search", json={"question": "長崎 造船", "mode": "lexical"})
        assert found.json()["hits"][0]["citation"]["doc_id"] == "new"

        (small_corpus / "newer.txt").write_text("製藥供應鏈。\n", "utf-8")
        third = ingest(settings, embedder=embedder)
    generations = {name.rsplit("_", 1)[0] for name in _collections(settings)}
    names = {g.replace("-", "_") for g in (second.build.generation, third.build.generation)}
    assert generations == {f"qa_{n}" for n in names}  # the first was dropped, the previous kept


def test_a_publish_that_fails_midway_is_never_served(
    small_corpus: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _hash_settings(small_corpus, tmp_path, str(tmp_path / "m.db"))
    embedder = HashingEmbedder(64)
    first = ingest(settings, embedder=embedder)
    (small_corpus / "new.txt").write_text("鋼鐵業的造船計畫在長崎展開。\n", "utf-8")

    real = qa.milvus._insert_chunks

    def die_after_sentences(*args: object, **kwargs: object) -> None:
        raise BackendUnavailableError(settings.milvus_uri, "connection lost (simulated)")

    monkeypatch.setattr(qa.milvus, "_insert_chunks", die_after_sentences)
    with pytest.raises(BackendUnavailableError, match="simulated"):
        ingest(settings, embedder=embedder)
    assert served_generation(milvus_target(settings)) == first.build.generation
    retriever = open_retriever(settings, embedder)
    assert retriever.index.generation == first.build.generation
    assert "new" not in retriever.index.documents
    assert retriever.search("稀土", mode="lexical").hits

    monkeypatch.setattr(qa.milvus, "_insert_chunks", real)
    assert publish_generation(settings)  # the leftovers are dropped and the publish completes
    served = open_retriever(settings, embedder)
    assert "new" in served.index.documents
    assert len(_collections(settings)) == 6  # this generation's three and the previous three


def test_a_chunks_collection_missing_a_row_is_refused(small_corpus: Path, tmp_path: Path) -> None:
    """Loading streams the chunk rows in order and checks they run 0..n-1 without a gap."""
    settings = _hash_settings(small_corpus, tmp_path, str(tmp_path / "m.db"))
    embedder = HashingEmbedder(64)
    built = ingest(settings, embedder=embedder)
    assert len(open_retriever(settings, embedder).index.chunks) == built.build.chunks_total > 2
    target = milvus_target(settings)
    collection = f"qa_{built.build.generation.replace('-', '_')}_chunks"
    qa.milvus._client(target).delete(collection, ids=[1])
    with pytest.raises(IndexCorruptError, match=f"{collection}: chunk rows are not 0"):
        open_retriever(settings, embedder)


def test_unreachable_milvus_is_503_with_the_reason(tmp_path: Path) -> None:
    uri = f"http://127.0.0.1:{free_port()}"
    settings = _hash_settings(tmp_path, tmp_path, uri)
    started = time.monotonic()
    with TestClient(create_app(settings, embedder=HashingEmbedder(64))) as client:
        assert client.get("/healthz").status_code == 200
        for response in (
            client.get("/readyz"),
            client.post("/v1/search", json={"question": "稀土"}),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["content-type"] == "application/problem+json"
            body = response.json()
            assert body["title"] == "Index store unavailable"
            assert uri in body["detail"] and "Traceback" not in response.text
    assert time.monotonic() - started < 30


@pytest.fixture
def milvus_server(tmp_path: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A standalone milvus-lite server process (what a Milvus deployment looks like here)."""
    port = free_port()
    command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(tmp_path / "d")]
    process = subprocess.Popen(
        [*command, "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            served_generation(MilvusTarget(uri, timeout=2))
            break
        except BackendUnavailableError:
            time.sleep(0.3)
    else:
        stop_process(process)
        pytest.fail("the milvus-lite server did not start")
    try:
        yield uri, process
    finally:
        stop_process(process)


def test_milvus_going_away_mid_serve_is_503_then_recovers_through_a_server(
    small_corpus: Path, tmp_path: Path, milvus_server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    uri, process = milvus_server
    settings = _hash_settings(small_corpus, tmp_path, uri)
    embedder = HashingEmbedder(64)
    assert ingest(settings, embedder=embedder).published
    with TestClient(create_app(settings, embedder=embedder)) as client:
        assert client.get("/readyz").status_code == 200
        ask = {"question": "稀土", "mode": "hybrid"}
        assert client.post("/v1/search", json=ask).status_code == 200
        stop_process(process)
        started = time.monotonic()
        ready, search = client.get("/readyz"), client.post("/v1/search", json=ask)
        assert time.monotonic() - started < 20  # bounded by QA_MILVUS_TIMEOUT, never a hang
        for response in (ready, search):
            assert response.status_code == 503, response.text
            assert uri in response.json()["detail"]


def test_cli_ingest_publishes_and_says_so(small_corpus: Path, tmp_path: Path) -> None:
    env = {
        **ENV,
        "QA_CORPUS_DIR": str(small_corpus),
        "QA_INDEX_DIR": str(tmp_path / "index"),
        "QA_EMBED_MODEL": "hash:64",
        "QA_BACKEND": "milvus",
        "QA_MILVUS_URI": str(tmp_path / "m.db"),
    }
    run = [sys.executable, "-m", "cli", "ingest", "--quiet"]
    first = subprocess.run(run, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert first.returncode == 0, first.stderr
    assert "published gen-" in first.stdout and "m.db as 'qa'" in first.stdout
    search = subprocess.run(
        [sys.executable, "-m", "cli", "search", "稀土", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert search.returncode == 0, search.stderr
    assert json.loads(search.stdout)["hits"]

    broken = {**env, "QA_MILVUS_URI": "milvus.sqlite"}
    bad = subprocess.run(run, env=broken, capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert bad.returncode == 2 and "QA_MILVUS_URI='milvus.sqlite'" in bad.stderr
    many = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--workers", "2", "--no-ingest"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert many.returncode == 2 and "one process owns" in many.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"QA_BACKEND": "milvus"}, "needs QA_MILVUS_URI"),
        ({"QA_BACKEND": "faiss"}, "not one of local, milvus"),
        ({"QA_MILVUS_URI": "http://"}, "has no host"),
        ({"QA_MILVUS_COLLECTION": "my-index"}, "not a Milvus name"),
    ],
)
def test_bad_backend_settings_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


def test_server_reachable_over_http_serves_the_same_as_the_file(
    small_corpus: Path, tmp_path: Path, milvus_server: tuple[str, subprocess.Popen[bytes]]
) -> None:
    """One index published to a Milvus server and to an embedded file gives the same hits."""
    uri, _ = milvus_server
    embedder = HashingEmbedder(64)
    over_http = _hash_settings(small_corpus, tmp_path, uri)
    ingest(over_http, embedder=embedder)
    in_file = over_http.with_(milvus_uri=str(tmp_path / "m.db"))
    assert publish_generation(in_file)
    for question in ("稀土", "Nippon Steel", "レアアース"):
        a = open_retriever(over_http, embedder).search(question, mode="hybrid")
        b = open_retriever(in_file, embedder).search(question, mode="hybrid")
        assert [h.row for h in a.hits] == [h.row for h in b.hits]


def test_ray_ingest_publishes_to_milvus_what_a_single_process_builds(
    small_corpus: Path, tmp_path: Path
) -> None:
    """`qa ingest --ray` (a child process with its own local Ray) with QA_BACKEND=milvus: the
    served Milvus generation answers as an index built in one process on the local store."""
    pytest.importorskip("ray")
    uri = str(tmp_path / "m.db")
    env = {
        **ENV,
        "QA_CORPUS_DIR": str(small_corpus),
        "QA_INDEX_DIR": str(tmp_path / "index"),
        "QA_EMBED_MODEL": "hash:64",
        "QA_INGEST_THREADS": "2",
        "QA_BACKEND": "milvus",
        "QA_MILVUS_URI": uri,
    }
    command = [sys.executable, "-m", "cli", "ingest", "--quiet", "--ray"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert "published gen-" in done.stdout
    embedder = HashingEmbedder(64)
    single = _hash_settings(small_corpus, tmp_path / "single", "", backend="local")
    ingest(single, embedder=embedder)
    milvus = _hash_settings(small_corpus, tmp_path, uri)
    served, local = open_retriever(milvus, embedder), open_retriever(single, embedder)
    for question in ("稀土", "Nippon Steel bought U.S. Steel", "レアアース 調達"):
        for mode in ("dense", "lexical", "hybrid"):
            a, b = local.search(question, mode=mode), served.search(question, mode=mode)
            assert [(h.citation, h.text) for h in b.hits] == [(h.citation, h.text) for h in a.hits]
            assert [h.score for h in b.hits] == pytest.approx([h.score for h in a.hits], abs=1e-4)


def test_text_survives_the_round_trip_through_milvus(small_corpus: Path, tmp_path: Path) -> None:
    """A line separator (U+2028, which str.splitlines splits on), markup and astral characters in
    a document come back from Milvus exactly, and its chunks still slice it."""
    odd = "稀土供應\u2028鏈的<script>alert(1)</script>風險 𠀋 與 Lynas 的合作。\n"
    (small_corpus / "odd.txt").write_text(odd, "utf-8")
    settings = _hash_settings(small_corpus, tmp_path, str(tmp_path / "m.db"))
    embedder = HashingEmbedder(64)
    ingest(settings, embedder=embedder)
    served = open_retriever(settings, embedder)
    local = open_retriever(settings.with_(backend="local"), embedder)
    assert served.index.documents["odd"] == local.index.documents["odd"]
    assert "\u2028" in served.index.documents["odd"].text
    hit = served.search("Lynas 稀土", mode="lexical", doc_ids=["odd"]).hits[0]
    assert "<script>" in hit.text and "\u2028" in hit.text
