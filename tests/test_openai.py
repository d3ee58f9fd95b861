"""The OpenAI-compatible surface, spoken to by the official ``openai`` client over real HTTP."""

from __future__ import annotations

import re
from typing import Any

import httpx
import openai
import pytest
from conftest import LiveServer
from fastapi.testclient import TestClient

from api import create_app
from qa.config import Settings
from qa.retrieve import Retriever

pytestmark = pytest.mark.slow

QUESTIONS = {
    "zh-Hant": ("日本進口的重稀土對中國的依賴程度大概有多高？", "接近 100%"),
    "en": ("How much did Nippon Steel pay for U.S. Steel?", "141 億美元"),
    "ja": ("日本製鉄によるUSスチール買収の総額はいくらでしたか？", "141 億美元"),
}
# Questions the search flags unanswerable: off topic; asking a tonnage the corpus never states.
UNANSWERABLE = {
    "紅燒牛肉麵的湯頭通常要燉幾個小時才會入味？": "文件中找不到這個問題的答案。",
    "德国目前的稀土战略储备有多少吨？": "文件中找不到这个问题的答案。文件没有提到相关的吨数。",
}
MARKER = re.compile(r"\[(\d+)\]")


@pytest.fixture(scope="module")
def client(live_server: LiveServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{live_server.url}/v1", api_key="any", max_retries=0)


def _annotations(message: Any) -> list[Any]:
    return list(message.annotations or [])


def _check_citations(live_server: LiveServer, content: str, annotations: list[Any]) -> None:
    """Every marker has an annotation over it, whose URL resolves to the cited sentence."""
    markers = list(MARKER.finditer(content))
    assert markers, content
    assert len(annotations) == len(markers)
    with httpx.Client(timeout=30) as http:
        for marker, annotation in zip(markers, annotations, strict=True):
            assert annotation.type == "url_citation"
            cited = annotation.url_citation
            assert content[cited.start_index : cited.end_index] == marker.group(0)
            assert cited.url.startswith(live_server.url + "/v1/passages?anchor=")
            assert cited.title
            span = http.get(cited.url, headers={"Accept": "application/json"}).json()
            # The text the marker follows is the cited sentence, and the URL gives exactly it.
            before = content[: cited.start_index]
            assert before.endswith(span["text"]), (before[-80:], span["text"])


def test_models_lists_the_service(client: openai.OpenAI) -> None:
    models = client.models.list()
    assert [m.id for m in models.data] == ["citeqa"]
    assert client.models.retrieve("citeqa").id == "citeqa"


@pytest.mark.parametrize("language", sorted(QUESTIONS))
def test_chat_answer_with_resolving_url_citations(
    client: openai.OpenAI, live_server: LiveServer, language: str
) -> None:
    question, evidence = QUESTIONS[language]
    completion = client.chat.completions.create(
        model="citeqa",
        messages=[
            {"role": "system", "content": "You are helpful."},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Hi."},
            {"role": "user", "content": question},
        ],
    )
    message = completion.choices[0].message
    assert completion.choices[0].finish_reason == "stop" and message.role == "assistant"
    content = message.content or ""
    _check_citations(live_server, content, _annotations(message))
    extra = completion.model_extra["citeqa"]  # type: ignore[index]
    assert extra["answerable"] and extra["question"] == question
    assert extra["language"] == language
    cited = [r["citation"] for r in extra["references"]]
    assert all(c["anchor"] and "footnotes" in c and "section" in c for c in cited)
    assert any(evidence.replace(" ", "") in "".join(r["text"].split()) for r in extra["references"])


@pytest.mark.parametrize("language", ["zh-Hant", "en"])
def test_streamed_answer_equals_the_whole_one(
    client: openai.OpenAI, live_server: LiveServer, language: str
) -> None:
    question, _ = QUESTIONS[language]
    whole = client.chat.completions.create(
        model="citeqa", messages=[{"role": "user", "content": question}]
    )
    stream = client.chat.completions.create(
        model="citeqa", messages=[{"role": "user", "content": question}], stream=True
    )
    pieces, annotations, finish, chunks = [], [], None, 0
    for chunk in stream:
        chunks += 1
        assert chunk.object == "chat.completion.chunk"
        delta = chunk.choices[0].delta
        pieces.append(delta.content or "")
        annotations += (delta.model_extra or {}).get("annotations") or []
        finish = chunk.choices[0].finish_reason or finish
    content = "".join(pieces)
    assert finish == "stop" and chunks >= 3  # role, at least one sentence, the closing chunk
    assert content == whole.choices[0].message.content
    typed = [openai.types.chat.chat_completion_message.Annotation(**a) for a in annotations]
    _check_citations(live_server, content, typed)


@pytest.mark.parametrize("question", sorted(UNANSWERABLE))
def test_unanswerable_question_is_refused_without_citations(
    client: openai.OpenAI, question: str
) -> None:
    completion = client.chat.completions.create(
        model="citeqa", messages=[{"role": "user", "content": question}]
    )
    message = completion.choices[0].message
    content = message.content or ""
    refusal, _, closest = content.partition("\n\n")
    assert refusal == UNANSWERABLE[question]
    assert closest.startswith(("最接近的段落（並非答案）：", "最接近的段落（并非答案）："))
    assert len(closest.splitlines()) == 4  # the label and three passages, each with its anchor
    assert not MARKER.search(content) and not _annotations(message)
    extra = completion.model_extra["citeqa"]  # type: ignore[index]
    assert extra["answerable"] is False and extra["references"] == [] and extra["hits"]
    assert all(h["citation"]["anchor"] in closest for h in extra["hits"][:3])


def test_errors_have_openai_shape_and_status(client: openai.OpenAI) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "x"}])
    assert missing.value.code == "model_not_found" and "citeqa" in missing.value.message
    with pytest.raises(openai.BadRequestError) as empty:
        client.chat.completions.create(model="citeqa", messages=[{"role": "user", "content": " "}])
    assert "user message" in empty.value.message
    with pytest.raises(openai.BadRequestError) as long:
        client.chat.completions.create(
            model="citeqa", messages=[{"role": "user", "content": "稀土" * 1500}]
        )
    assert "limit is 2000" in long.value.message
    with pytest.raises(openai.BadRequestError) as filtered:
        client.chat.completions.create(
            model="citeqa",
            messages=[{"role": "user", "content": "稀土"}],
            extra_body={"doc_ids": ["no-such-document"]},
        )
    assert "unknown doc_ids" in filtered.value.message


def test_extra_body_filters_narrow_the_search(client: openai.OpenAI) -> None:
    from conftest import NEWS

    completion = client.chat.completions.create(
        model="citeqa",
        messages=[{"role": "user", "content": "日本對中國稀土的依賴"}],
        extra_body={"doc_ids": [NEWS], "top_k": 3},
    )
    extra = completion.model_extra["citeqa"]  # type: ignore[index]
    assert len(extra["hits"]) == 3 and {h["citation"]["doc_id"] for h in extra["hits"]} == {NEWS}


def test_api_keys_apply_with_openai_error_shape(
    corpus_settings: Settings, corpus_retriever: Retriever
) -> None:
    settings = corpus_settings.with_(api_keys=("secret",), reload_interval=0)
    app = create_app(settings, embedder=corpus_retriever.embedder)
    with TestClient(app) as http:
        refused = http.get("/v1/models")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "invalid_api_key"
        granted = http.get("/v1/models", headers={"Authorization": "Bearer secret"})
        assert granted.status_code == 200 and granted.json()["data"][0]["id"] == "citeqa"
        asked = http.post(
            "/v1/chat/completions",
            headers={"Authorization": "Bearer secret"},
            json={"model": "citeqa", "messages": [{"role": "user", "content": "南鳥島"}]},
        )
        assert asked.status_code == 200 and asked.json()["choices"][0]["message"]["content"]
        wrong = http.post(
            "/v1/chat/completions",
            headers={"Authorization": "Bearer secret", "Content-Type": "text/plain"},
            content=b"hello",
        )
        assert wrong.status_code == 415 and "application/json" in wrong.json()["error"]["message"]
