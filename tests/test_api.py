"""HTTP contract of the API: search, citations that resolve, problem details, a real server."""

from __future__ import annotations

import bisect
import itertools
import json
import os
import re
import subprocess
import sys
import time
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import CHAPTER, CORPUS, GOLD, NEWS, contract_backends, free_port, stop_process
from fastapi.testclient import TestClient

from api import create_app
from qa.config import Settings
from qa.embed.hashing import HashingEmbedder
from qa.retrieve import Retriever
from qa.service import ingest
from qa.types import INDEXED_KINDS, Document

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
    "kind",
    "page",
    "page_end",
    "authors",
    "date",
    "footnotes",
    "slide",
    "sheet",
    "table",
    "row",
    "row_end",
    "boxes",
}
FOOTNOTE_KEYS = {"n", "text", "urls", "refers_to", "char_start", "char_end"}
SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")
GOLD_ROWS: list[dict[str, Any]] = [
    json.loads(line) for line in GOLD.read_text("utf-8").splitlines() if line.strip()
]
PROBLEM_KEYS = {"type", "title", "status", "detail"}

# Every test here runs against the local store and the same index published to Milvus.
backend, client, corpus_retriever = contract_backends()


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
    path = CORPUS.parent / source_path
    assert path.resolve().is_relative_to(CORPUS.resolve()), source_path
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


def _assert_hit_resolves(hit: dict[str, Any], document: dict[str, Any], runs: Document) -> None:
    """The hit is the document's text at its offsets, and each piece of it is its source line.

    ``runs`` is the same document loaded through the library, for its ``line_runs``.
    """
    citation = hit["citation"]
    start, end = citation["char_start"], citation["char_end"]
    assert 0 <= start < end <= len(document["text"])
    assert document["text"][start:end] == hit["text"]
    assert citation["anchor"] == f"{citation['doc_id']}#c{start}-{end}"
    assert citation["title"] == document["title"]
    assert citation["authors"] == document["authors"]
    assert citation["date"] == document["date"]
    assert citation["page"] is None and citation["page_end"] is None  # text sources have no pages
    assert runs.doc_id == document["doc_id"] and runs.text == document["text"]

    # The passage lies in one indexed block of its kind.
    assert citation["kind"] in INDEXED_KINDS
    assert [
        b["kind"] for b in document["blocks"] if b["char_start"] <= start and end <= b["char_end"]
    ] == [citation["kind"]]

    # Line numbers point into the original file: each paragraph piece of the passage is one
    # source line, verbatim (stripped); only the first and last may be cut by the span.
    lines = _source_text(document["source_path"]).split("\n")
    text = document["text"]
    run_starts = [s for s, _ in runs.line_runs]
    first = bisect.bisect_right(run_starts, start) - 1  # the run holding char_start
    last = bisect.bisect_left(run_starts, end)  # the runs from ``first`` to here touch the span
    position = start
    for index in range(first, last):
        run_start, number = runs.line_runs[index]
        following = run_starts[index + 1] if index + 1 < len(run_starts) else len(text)
        piece = text[run_start:following]
        piece = piece.removesuffix("\n\n") if piece.endswith("\n\n") else piece.removesuffix(" ")
        source = lines[number - 1].strip()
        if index == first:
            assert start < run_start + len(piece), "the span starts in a separator"
        clipped = hit["text"][max(run_start, start) - start : run_start + len(piece) - start]
        assert piece == source, (number, piece)
        starts_inside, ends_inside = start <= run_start, run_start + len(piece) <= end
        if starts_inside and ends_inside:
            assert clipped == source, (number, clipped)
        elif ends_inside:  # the span starts inside this line
            assert source.endswith(clipped), (number, clipped)
        elif starts_inside:  # the span ends inside this line
            assert source.startswith(clipped), (number, clipped)
        if index > first:  # between two pieces: a paragraph break or the glue of a joined line
            assert text[position:run_start] in ("\n\n", "", " ")
        assert clipped and clipped in source
        position = run_start + len(piece)
    assert position >= end  # the span ends inside a piece, never in a separator
    assert citation["line_start"] == runs.line_runs[first][1] == runs.line_of(start)
    assert citation["line_end"] == runs.line_runs[last - 1][1] == runs.line_of(end - 1)

    # The notes the passage cites, with their cross-references, as the document defines them.
    notes = {note["n"]: note for note in document["footnotes"]}
    if citation["kind"] == "footnotes":
        named = [
            r
            for note in document["footnotes"]
            if note["char_start"] < end and start < note["char_end"]
            for r in note["refers_to"]
        ]
    else:
        named = [
            int(m.translate(SUPERSCRIPT_DIGITS)) for m in re.findall("[⁰¹²³⁴⁵⁶⁷⁸⁹]+", hit["text"])
        ]
    assert all(n in notes for n in named), named
    expected: list[int] = []
    for n in named:
        for cited in (n, *notes[n]["refers_to"]):
            if cited not in expected:
                expected.append(cited)
    assert [note["n"] for note in citation["footnotes"]] == expected
    for note in citation["footnotes"]:
        assert set(note) == FOOTNOTE_KEYS
        assert note == notes[note["n"]]
        assert text[note["char_start"] : note["char_end"]].endswith(note["text"])


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
    assert set(body) == {
        "question",
        "mode",
        "answerable",
        "confidence",
        "unstated_quantities",
        "hits",
        "took_ms",
        "timings_ms",
    }
    assert isinstance(body["answerable"], bool) and 0.0 <= body["confidence"] <= 1.0
    assert body["unstated_quantities"] == []  # it asks for no tonnage, sum or percentage
    assert body["timings_ms"]["total"] >= body["timings_ms"]["fuse"] >= 0
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
        assert set(hit) == {"rank", "score", "text", "scores", "citation", "context"}
        assert hit["context"] is None
        assert set(hit["citation"]) == CITATION_KEYS
        assert hit["citation"]["doc_id"] in (CHAPTER, NEWS)
        assert hit["citation"]["kind"] in INDEXED_KINDS
        for note in hit["citation"]["footnotes"]:
            assert set(note) == FOOTNOTE_KEYS
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
    client: TestClient,
    corpus_retriever: Retriever,
    fetch_document: Any,
    row: dict[str, Any],
    mode: str,
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
        doc_id = hit["citation"]["doc_id"]
        _assert_hit_resolves(hit, fetch_document(doc_id), corpus_retriever.document(doc_id))


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


@pytest.mark.parametrize(
    "content_type",
    [
        "text/plain",
        "text/plain; charset=utf-8",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "text/json",
        None,
    ],
)
def test_body_not_sent_as_json_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/v1/search", content=b'{"question": "x"}', headers=headers)
    body = _assert_problem(response, 415)
    assert "Content-Type: application/json" in body["detail"]
    assert (repr(content_type) if content_type else "no Content-Type") in body["detail"]
    assert "dictionary" not in body["detail"]
    assert response.headers["accept-post"] == "application/json"
    documented = client.get("/openapi.json").json()["paths"]["/v1/search"]["post"]["responses"]
    assert "415" in documented


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/x+json"]
)
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post(
        "/v1/search", content=b'{"question": "x"}', headers={"content-type": content_type}
    )
    assert response.status_code == 200, response.text


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


SUMMARY_KEYS = {
    "doc_id",
    "title",
    "authors",
    "date",
    "format",
    "source_path",
    "content_hash",
    "chars",
    "warnings",
}


def test_list_documents(client: TestClient, corpus_retriever: Retriever) -> None:
    response = client.get("/v1/documents")
    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    by_id = {d["doc_id"]: d for d in body["data"]}
    assert set(by_id) == {CHAPTER, NEWS}
    for doc_id, summary in by_id.items():
        assert set(summary) == SUMMARY_KEYS
        assert summary["source_path"] == f"corpus/{doc_id}.txt"
        assert summary["chars"] == len(corpus_retriever.document(doc_id).text)
        assert summary["format"] == "text"
        assert summary["title"]
        assert summary["warnings"] == []
    assert by_id[CHAPTER]["title"] == "第六章 川普 2.0 時代的日本製造業供應鏈安全重構"
    assert (by_id[CHAPTER]["authors"], by_id[CHAPTER]["date"]) == (["張務華"], None)
    assert by_id[NEWS]["title"] == "日本聯手G7建「民主稀土鏈」"
    assert (by_id[NEWS]["authors"], by_id[NEWS]["date"]) == (["鄭仲嵐"], "2026-01-14")


@pytest.mark.parametrize("doc_id", [CHAPTER, NEWS])
def test_get_document(client: TestClient, corpus_retriever: Retriever, doc_id: str) -> None:
    response = client.get(f"/v1/documents/{doc_id}")
    assert response.status_code == 200
    document = response.json()
    loaded = corpus_retriever.document(doc_id)
    assert set(document) == SUMMARY_KEYS | {"sections", "blocks", "footnotes", "text"}
    assert document["doc_id"] == doc_id
    assert document["text"] == loaded.text
    assert document["chars"] == len(document["text"])
    text = document["text"]
    # every non-empty source line is in the text, where its line run says
    lines = _source_text(document["source_path"]).split("\n")
    assert sorted(line for _, line in loaded.line_runs) == [
        n for n, line in enumerate(lines, start=1) if line.strip()
    ]
    for start, line in loaded.line_runs:
        assert text.startswith(lines[line - 1].strip(), start)
    # each section starts at its heading's paragraph; the news dateline carries its title
    assert document["sections"]
    for section in document["sections"]:
        paragraph = text[section["char_start"] :].split("\n\n", 1)[0]
        if doc_id == NEWS and section["char_start"] == 0:
            assert paragraph == f"date {document['date']} 名家》鄭仲嵐／{section['title']}"
        else:
            assert paragraph == section["title"]
    # blocks tile the text, a paragraph break between two
    blocks = document["blocks"]
    assert blocks[0]["char_start"] == 0 and blocks[-1]["char_end"] == len(text)
    for before, after in itertools.pairwise(blocks):
        assert text[before["char_end"] : after["char_start"]] == "\n\n"
        assert before["kind"] != after["kind"]
    assert [f["n"] for f in document["footnotes"]] == (
        list(range(1, 48)) if doc_id == CHAPTER else []
    )
    for note in document["footnotes"]:
        assert set(note) == FOOTNOTE_KEYS
        assert text[note["char_start"] : note["char_end"]].endswith(note["text"])
        assert any(
            b["kind"] == "footnotes" and b["char_start"] <= note["char_start"] < b["char_end"]
            for b in blocks
        )


def test_unknown_document_is_404_problem(client: TestClient) -> None:
    body = _assert_problem(client.get("/v1/documents/no-such-document"), 404)
    assert "no-such-document" in body["detail"]


def test_index_info(client: TestClient, corpus_retriever: Retriever, backend: str) -> None:
    response = client.get("/v1/index")
    assert response.status_code == 200
    info = response.json()
    assert info["backend"] == backend
    assert info["collection"] == (None if backend == "local" else "qa")
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


def _qa_command() -> list[str]:
    script = Path(sys.executable).with_name("qa")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


@pytest.mark.slow
def test_real_server_over_http(
    corpus_settings: Settings, corpus_retriever: Retriever, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "QA_INDEX_DIR": str(corpus_settings.index_dir),
        "QA_CORPUS_DIR": str(CORPUS),
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
                _assert_hit_resolves(
                    hits[0], document, corpus_retriever.document(citation["doc_id"])
                )
                assert any("南鳥島" in h["text"] for h in hits)
                bad = http.post("/v1/search", json={"question": " "})
                _assert_problem(bad, 422)
        finally:
            stop_process(process)
