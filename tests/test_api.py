"""HTTP contract of the API: search, citations that resolve, problem details, a real server."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CHAPTER, GOLD, NEWS, ROOT
from fastapi.testclient import TestClient

from api import create_app
from qa.config import Settings
from qa.embed.hashing import HashingEmbedder
from qa.retrieve import Retriever
from qa.service import ingest

MODES = ("hybrid", "dense", "lexical")
CITATION_KEYS = {
    "doc_id",
    "title",
    "section",
    "char_start",
    "char_end",
    "line_start",
    "line_end",
    "anchor",
}
GOLD_ROWS: list[dict[str, Any]] = [
    json.loads(line) for line in GOLD.read_text("utf-8").splitlines() if line.strip()
]
PROBLEM_KEYS = {"type", "title", "status", "detail"}


def _search(client: TestClient, question: str, **options: Any) -> dict[str, Any]:
    response = client.post("/v1/search", json={"question": question, **options})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert set(body) == PROBLEM_KEYS
    assert body["status"] == status
    assert isinstance(body["title"], str) and body["title"]
    assert isinstance(body["detail"], str) and body["detail"]
    return body


@cache
def _source_text(source_path: str) -> str:
    """The original corpus file as a reader sees it: newlines normalized, NFC."""
    path = ROOT / source_path
    assert path.resolve().is_relative_to((ROOT / "corpus").resolve()), source_path
    with open(path, encoding="utf-8-sig", newline=None) as handle:
        return unicodedata.normalize("NFC", handle.read())


@pytest.fixture(scope="module")
def fetch_document(client: TestClient) -> Any:
    """GET /v1/documents/{doc_id}, each document fetched once."""
    fetched: dict[str, dict[str, Any]] = {}

    def fetch(doc_id: str) -> dict[str, Any]:
        if doc_id not in fetched:
            response = client.get(f"/v1/documents/{doc_id}")
            assert response.status_code == 200, response.text
            fetched[doc_id] = response.json()
        return fetched[doc_id]

    return fetch


def _assert_hit_resolves(hit: dict[str, Any], document: dict[str, Any]) -> None:
    citation = hit["citation"]
    start, end = citation["char_start"], citation["char_end"]
    assert 0 <= start < end <= len(document["text"])
    assert document["text"][start:end] == hit["text"]
    assert citation["anchor"] == f"{citation['doc_id']}#c{start}-{end}"
    assert citation["title"] == document["title"]

    # Line numbers point into the original file, not only into the canonical text.
    source = _source_text(document["source_path"])
    assert source == document["text"]
    lines = source.split("\n")
    first, last = citation["line_start"], citation["line_end"]
    assert 1 <= first <= last <= len(lines)
    span = "\n".join(lines[first - 1 : last])
    assert hit["text"] in span
    line_offset = sum(len(line) + 1 for line in lines[: first - 1])
    # The passage starts on line_start and ends on line_end, exactly where the offsets say.
    assert span[start - line_offset : end - line_offset] == hit["text"]
    assert line_offset <= start < line_offset + len(lines[first - 1]) + 1
    assert end - line_offset > len(span) - len(lines[last - 1]) - 1


# --- search ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_search_response_shape(client: TestClient, corpus_retriever: Retriever, mode: str) -> None:
    response = client.post(
        "/v1/search", json={"question": "日本對中國稀土的依賴有多高？", "top_k": 7, "mode": mode}
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert response.headers["X-Index-Generation"] == corpus_retriever.index.generation
    body = response.json()
    assert set(body) == {"question", "mode", "hits", "took_ms"}
    assert body["question"] == "日本對中國稀土的依賴有多高？"
    assert body["mode"] == mode
    assert isinstance(body["took_ms"], float) and body["took_ms"] >= 0
    hits = body["hits"]
    assert [h["rank"] for h in hits] == list(range(1, 8))
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    own_signal = {"hybrid": "fused", "dense": "dense", "lexical": "lexical"}[mode]
    anchors = set()
    for hit in hits:
        assert set(hit) == {"rank", "score", "text", "scores", "citation"}
        assert set(hit["citation"]) == CITATION_KEYS
        assert hit["citation"]["doc_id"] in (CHAPTER, NEWS)
        assert hit["text"].strip() == hit["text"] and hit["text"]
        assert hit["scores"][own_signal] == pytest.approx(hit["score"])
        assert set(hit["scores"]) <= {"dense", "lexical", "fused"}
        anchors.add(hit["citation"]["anchor"])
    assert len(anchors) == len(hits), "the same passage was returned twice"


def test_search_defaults_to_hybrid_top_5(client: TestClient) -> None:
    body = _search(client, "稀土")
    assert body["mode"] == "hybrid"
    assert len(body["hits"]) == 5


def test_search_strips_question(client: TestClient) -> None:
    padded = _search(client, "  南鳥島 稀土泥\n", mode="lexical")
    plain = _search(client, "南鳥島 稀土泥", mode="lexical")
    assert padded["question"] == "南鳥島 稀土泥"
    assert [h["citation"] for h in padded["hits"]] == [h["citation"] for h in plain["hits"]]


def test_search_is_deterministic(client: TestClient) -> None:
    first = _search(client, "造船能力的差距", top_k=10)
    second = _search(client, "造船能力的差距", top_k=10)
    assert [h["citation"] for h in first["hits"]] == [h["citation"] for h in second["hits"]]
    assert [h["score"] for h in first["hits"]] == [h["score"] for h in second["hits"]]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("row", GOLD_ROWS, ids=[r["id"] for r in GOLD_ROWS])
def test_every_gold_hit_resolves_to_its_source(
    client: TestClient, fetch_document: Any, row: dict[str, Any], mode: str
) -> None:
    body = _search(client, row["question"], top_k=10, mode=mode)
    hits = body["hits"]
    if mode != "lexical":  # lexical only returns passages that share a term with the question
        assert len(hits) == 10
    assert len(hits) <= 10
    assert [h["rank"] for h in hits] == list(range(1, len(hits) + 1))
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    for hit in hits:
        _assert_hit_resolves(hit, fetch_document(hit["citation"]["doc_id"]))


def test_lexical_finds_exact_term(client: TestClient) -> None:
    hits = _search(client, "南鳥島", mode="lexical")["hits"]
    assert "南鳥島" in hits[0]["text"]
    assert all("lexical" in h["scores"] and "dense" not in h["scores"] for h in hits)


def test_lexical_folds_simplified_to_traditional(client: TestClient) -> None:
    hits = _search(client, "日本制铁收购美国钢铁", mode="lexical", top_k=3)["hits"]
    assert hits
    assert "日鐵" in hits[0]["text"] or "美國鋼鐵" in hits[0]["text"]
    assert all(h["citation"]["doc_id"] == CHAPTER for h in hits)


def test_dense_is_cross_lingual(client: TestClient) -> None:
    hits = _search(client, "deep-sea rare earth mud near Minamitorishima", mode="dense")["hits"]
    assert any("南鳥島" in h["text"] for h in hits)
    assert all("dense" in h["scores"] and "lexical" not in h["scores"] for h in hits)


def test_hybrid_finds_heavy_rare_earth_dependence(client: TestClient) -> None:
    hits = _search(client, "日本對中國重稀土的依賴", mode="hybrid")["hits"]
    assert any("對中國的依賴度接近 100%" in h["text"] for h in hits)


def test_hybrid_finds_gold_evidence_for_most_questions(client: TestClient) -> None:
    answerable = [r for r in GOLD_ROWS if r["answerable"]]
    found = 0
    for row in answerable:
        hits = _search(client, row["question"], top_k=10, mode="hybrid")["hits"]
        if any(e in h["text"] for e in row["evidence"] for h in hits):
            found += 1
    assert found >= 0.8 * len(answerable), f"{found}/{len(answerable)} with evidence in top 10"


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"question": ""}, ["question", "at least 1 character"]),
        ({"question": "  \n\t\u3000 "}, ["question", "non-whitespace"]),
        ({"question": "稀" * 2001}, ["question", "2000"]),
        ({"question": "稀土", "top_k": 0}, ["top_k", "greater than or equal to 1"]),
        ({"question": "稀土", "top_k": 51}, ["top_k", "less than or equal to 50"]),
        ({"question": "稀土", "top_k": -3}, ["top_k"]),
        ({"question": "稀土", "mode": "fuzzy"}, ["mode", "lexical"]),
        ({"top_k": 3}, ["question", "required"]),
        ({"question": "稀土", "top_k": "five"}, ["top_k", "integer"]),
        ({"question": "稀土", "top_k": 2.5}, ["top_k", "integer"]),
        ({"question": "稀土", "top_k": True}, ["top_k", "integer"]),
        ({"question": 42}, ["question", "string"]),
        ({"question": "稀土", "language": "zh"}, ["language", "not permitted"]),
        ([], ["body"]),
    ],
    ids=[
        "empty",
        "whitespace",
        "too-long",
        "top_k-0",
        "top_k-51",
        "top_k-negative",
        "unknown-mode",
        "missing-question",
        "top_k-string",
        "top_k-fraction",
        "top_k-bool",
        "question-number",
        "extra-field",
        "not-an-object",
    ],
)
def test_invalid_search_is_422_problem(client: TestClient, body: Any, expected: list[str]) -> None:
    body_json = _assert_problem(client.post("/v1/search", json=body), 422)
    for word in expected:
        assert word in body_json["detail"], body_json["detail"]


def test_body_that_is_not_json_is_422(client: TestClient) -> None:
    response = client.post(
        "/v1/search", content=b"{not json", headers={"content-type": "application/json"}
    )
    body = _assert_problem(response, 422)
    assert "not valid JSON" in body["detail"]


def test_lone_surrogate_question_is_422_not_500(client: TestClient) -> None:
    response = client.post(
        "/v1/search",
        content=b'{"question": "\\ud800\\u7a00\\u571f", "mode": "dense"}',
        headers={"content-type": "application/json"},
    )
    _assert_problem(response, 422)


@pytest.mark.parametrize(("question", "top_k"), [("稀" * 2000, 5), ("稀土", 1), ("稀土", 50)])
def test_limits_are_inclusive(client: TestClient, question: str, top_k: int) -> None:
    body = _search(client, question, top_k=top_k)
    assert len(body["hits"]) == top_k
    assert body["question"] == question


# --- documents, index, operations ---------------------------------------------------------------


def test_list_documents(client: TestClient) -> None:
    response = client.get("/v1/documents")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    by_id = {d["doc_id"]: d for d in body["data"]}
    assert set(by_id) == {CHAPTER, NEWS}
    for doc_id, summary in by_id.items():
        assert {"doc_id", "title", "source_path", "chars"} <= set(summary)
        assert summary["source_path"] == f"corpus/{doc_id}.txt"
        assert summary["chars"] == len(_source_text(summary["source_path"]))
        assert summary["title"]
    assert by_id[CHAPTER]["title"] == "第六章 川普 2.0 時代的日本製造業供應鏈安全重構"


def test_get_document(client: TestClient) -> None:
    response = client.get(f"/v1/documents/{NEWS}")
    assert response.status_code == 200
    document = response.json()
    assert document["doc_id"] == NEWS
    assert document["text"] == _source_text(document["source_path"])
    assert document["chars"] == len(document["text"])
    for section in document["sections"]:
        assert document["text"][section["char_start"] :].startswith(section["title"])


def test_unknown_document_is_404_problem(client: TestClient) -> None:
    body = _assert_problem(client.get("/v1/documents/no-such-document"), 404)
    assert "no-such-document" in body["detail"]


def test_index_info(client: TestClient, corpus_retriever: Retriever) -> None:
    response = client.get("/v1/index")
    assert response.status_code == 200
    info = response.json()
    assert info["model"] == "use-multilingual-v3"
    assert info["dimension"] == 512
    assert info["documents"] == 2
    assert info["chunks"] == len(corpus_retriever.index.chunks) > 0
    assert info["built_at"]
    assert info["generation"] == response.headers["X-Index-Generation"]


def test_healthz_and_docs(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert "post" in spec["paths"]["/v1/search"]
    assert "/v1/documents/{doc_id}" in spec["paths"]


def test_unknown_route_and_method_are_problems(client: TestClient) -> None:
    _assert_problem(client.get("/v2/nothing"), 404)
    _assert_problem(client.get("/v1/search"), 405)


# --- degraded service ---------------------------------------------------------------------------


def test_app_without_index_stays_up(tmp_path: Path, hash_embedder: HashingEmbedder) -> None:
    settings = Settings(index_dir=tmp_path, corpus_dir=tmp_path, embed_model="hash:64")
    with TestClient(create_app(settings, embedder=hash_embedder)) as client:
        assert client.get("/healthz").status_code == 200
        body = _assert_problem(client.post("/v1/search", json={"question": "稀土"}), 503)
        assert "no index" in body["detail"]
        assert "qa ingest" in body["detail"]
        _assert_problem(client.get("/v1/documents"), 503)
        _assert_problem(client.get("/v1/index"), 503)


def test_app_with_index_of_another_model_is_503(
    tmp_path: Path, small_corpus: Path, hash_embedder: HashingEmbedder
) -> None:
    settings = Settings(corpus_dir=small_corpus, index_dir=tmp_path / "index")
    ingest(settings, embedder=hash_embedder, strict=True)
    with TestClient(create_app(settings, embedder=HashingEmbedder(32))) as client:
        assert client.get("/healthz").status_code == 200
        body = _assert_problem(client.post("/v1/search", json={"question": "稀土"}), 503)
        assert "hash:64" in body["detail"] and "hash:32" in body["detail"]
    with TestClient(create_app(settings, embedder=hash_embedder)) as client:
        hits = _search(client, "南鳥島", mode="lexical")["hits"]
        assert hits[0]["citation"]["doc_id"] == "zh"


# --- a real server ----------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _qa_command() -> list[str]:
    script = Path(sys.executable).with_name("qa")
    return [str(script)] if script.exists() else [sys.executable, "-m", "qa.cli"]


@pytest.mark.slow
def test_real_server_over_http(
    corpus_settings: Settings, corpus_retriever: Retriever, tmp_path: Path
) -> None:
    port = _free_port()
    env = {
        **os.environ,
        "QA_INDEX_DIR": str(corpus_settings.index_dir),
        "QA_CORPUS_DIR": str(ROOT / "corpus"),
        "QA_THREADS": "1",
    }
    log = tmp_path / "server.log"
    base = f"http://127.0.0.1:{port}"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [*_qa_command(), "serve", "--no-ingest", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            cwd=tmp_path,  # no ./index or ./corpus to fall back on
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, f"server exited:\n{log.read_text(errors='replace')}"
                assert time.monotonic() < deadline, f"not ready:\n{log.read_text(errors='replace')}"
                try:
                    if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)

            with httpx.Client(base_url=base, timeout=30) as http:
                response = http.post("/v1/search", json={"question": "南鳥島的稀土泥", "top_k": 3})
                assert response.status_code == 200, response.text
                assert response.headers["x-index-generation"] == corpus_retriever.index.generation
                hits = response.json()["hits"]
                assert len(hits) == 3
                citation = hits[0]["citation"]
                document = http.get(f"/v1/documents/{citation['doc_id']}").json()
                _assert_hit_resolves(hits[0], document)
                assert any("南鳥島" in h["text"] for h in hits)
                bad = http.post("/v1/search", json={"question": " "})
                _assert_problem(bad, 422)
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
