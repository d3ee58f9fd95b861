"""The OpenAI Chat Completions surface: ``GET /v1/models``, ``POST /v1/chat/completions``.

Any OpenAI client works with ``base_url=http://host:8000/v1``. The question is the last user
message (earlier turns are not searched). The reply's content is the cited answer: each
marker ``[n]`` is also a ``message.annotations`` entry of type ``url_citation`` whose
``start_index``/``end_index`` bound the marker in the content (Python string indices: code
points) and whose ``url`` is ``GET /v1/passages?anchor=...`` on this service, resolving to the
cited span. The full citation objects ride in the extra top-level field ``citeqa``.

Streaming sends ``chat.completion.chunk`` events, one per answer sentence, the last with the
annotations and ``finish_reason: "stop"``, then ``data: [DONE]``. Search runs before the
response starts, so a bad question is a plain 400, not a broken stream. Errors on these routes
have OpenAI's shape, ``{"error": {"message", "type", "param", "code"}}`` (``api.errors``).
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from api.answers import answer_with_urls, passage_url
from api.errors import OpenAIRequestError, openai_error_body
from api.routes import RetrieverDep, search_with
from qa.answer import stream_answer
from qa.errors import InvalidQueryError, QAError, UpstreamTimeoutError
from qa.llm import LLMSettings, llm_settings
from qa.retrieve import MAX_CONTEXT_SENTENCES, MAX_TOP_K, Retriever
from qa.types import Answer, SearchMode

MODEL_ID = "citeqa"
_MARKER = re.compile(r"\[(\d{1,3})\]")
_CREATED = int(time.time())

router = APIRouter(tags=["openai"])


class TextPart(BaseModel):
    model_config = ConfigDict(extra="allow")

    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: str | list[TextPart] | None = None


class ChatCompletionRequest(BaseModel):
    """OpenAI's request; sampling options (temperature, max_tokens, ...) are accepted and do
    not apply to extractive answers. ``top_k``, ``mode``, ``doc_ids`` and ``section_prefix``
    narrow the search as in ``/v1/search`` (send them with the SDK's ``extra_body``)."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "model": MODEL_ID,
                    "messages": [{"role": "user", "content": "日本重稀土對中國的依賴有多高？"}],
                }
            ]
        },
    )

    # The schema names the one model served (so generated clients and fuzzers send it); any
    # other name is refused with OpenAI's 404 ``model_not_found``.
    model: Annotated[
        str, Field(min_length=1, max_length=200, json_schema_extra={"enum": [MODEL_ID]})
    ]
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=1000)]
    stream: bool = False
    top_k: Annotated[int, Field(ge=1, le=MAX_TOP_K)] = 5
    mode: SearchMode = "hybrid"
    doc_ids: Annotated[
        list[Annotated[str, Field(max_length=500)]] | None, Field(max_length=100)
    ] = None
    section_prefix: Annotated[str | None, Field(max_length=500)] = None
    context: Annotated[int, Field(ge=0, le=MAX_CONTEXT_SENTENCES)] = 0


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


@router.get("/v1/models", response_model=ModelList)
def list_models() -> ModelList:
    """The one model this service offers: cited answers from the indexed documents."""
    return ModelList(data=[ModelCard(id=MODEL_ID, created=_CREATED, owned_by="citeqa")])


@router.get("/v1/models/{model_id}", response_model=ModelCard)
def get_model(model_id: str) -> ModelCard:
    _check_model(model_id)
    return ModelCard(id=MODEL_ID, created=_CREATED, owned_by="citeqa")


@router.post("/v1/chat/completions", response_model=None)
def chat_completions(
    body: ChatCompletionRequest, request: Request, current: RetrieverDep
) -> dict[str, Any] | StreamingResponse:
    _check_model(body.model)
    question = last_user_text(body.messages)
    llm = llm_settings(request.app.state.service.settings)
    pieces = _answer_stream(current, body, question, llm)
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    if body.stream:
        first = next(pieces)  # search (and any error) before the response starts
        return StreamingResponse(
            _sse(request, completion_id, body.model, first, pieces),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    content, answer = _collect(pieces)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.model,
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": content,
                    "refusal": None,
                    "annotations": url_citations(request, content, answer),
                },
                "finish_reason": "stop",
                "logprobs": None,
            }
        ],
        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
        "citeqa": _extra(request, answer),
    }


def last_user_text(messages: list[ChatMessage]) -> str:
    """The text of the last user message (text parts joined); the question to answer."""
    for message in reversed(messages):
        if message.role != "user":
            continue
        if isinstance(message.content, str):
            text = message.content
        else:
            parts = message.content or []
            text = "\n".join(p.text for p in parts if p.type == "text" and p.text)
        if text.strip():
            return text
        break
    raise InvalidQueryError("messages must end with a user message that has some text")


def _check_model(model: str) -> None:
    if model != MODEL_ID:
        raise OpenAIRequestError(
            404,
            f"the model {model!r} does not exist; this service offers {MODEL_ID!r} "
            "(GET /v1/models)",
            code="model_not_found",
            param="model",
        )


def _answer_stream(
    retriever: Retriever, body: ChatCompletionRequest, question: str, llm: LLMSettings | None
) -> Iterator[str | Answer]:
    result = search_with(retriever, question, body)
    return stream_answer(retriever, result, llm)


def _collect(pieces: Iterator[str | Answer]) -> tuple[str, Answer]:
    content: list[str] = []
    for piece in pieces:
        if isinstance(piece, Answer):
            return "".join(content), piece
        content.append(piece)
    raise RuntimeError("an answer stream ended without its Answer")  # pragma: no cover


def url_citations(request: Request, content: str, answer: Answer) -> list[dict[str, Any]]:
    """One ``url_citation`` per marker ``[n]`` in ``content`` that names a reference."""
    by_n = {r.n: r for r in answer.references}
    found = []
    for match in _MARKER.finditer(content):
        reference = by_n.get(int(match.group(1)))
        if reference is None:
            continue
        c = reference.citation
        title = " > ".join(part for part in (c.title, c.section) if part)
        found.append(
            {
                "type": "url_citation",
                "url_citation": {
                    "start_index": match.start(),
                    "end_index": match.end(),
                    "url": passage_url(request, c.anchor),
                    "title": title,
                },
            }
        )
    return found


def _extra(request: Request, answer: Answer) -> dict[str, Any]:
    """The answer as ``POST /v1/answer`` gives it: references with their full citations."""
    return answer_with_urls(request, answer)


def _sse(
    request: Request,
    completion_id: str,
    model: str,
    first: str | Answer,
    rest: Iterator[str | Answer],
) -> Iterator[str]:
    created = int(time.time())

    def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        event = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
            **extra,
        }
        return f"data: {json.dumps(event, ensure_ascii=False)}\n\n"

    yield chunk({"role": "assistant", "content": ""})
    content: list[str] = []
    try:
        for piece in _chain(first, rest):
            if isinstance(piece, Answer):
                text = "".join(content)
                notes = url_citations(request, text, piece)
                yield chunk({"annotations": notes}, "stop", citeqa=_extra(request, piece))
                break
            content.append(piece)
            yield chunk({"content": piece})
    except QAError as exc:  # the model server failed mid-answer: the status is already sent
        status = 504 if isinstance(exc, UpstreamTimeoutError) else 502
        error = openai_error_body(status, str(exc), "upstream_error")
        yield f"data: {json.dumps(error, ensure_ascii=False)}\n\n"
    yield "data: [DONE]\n\n"


def _chain(first: str | Answer, rest: Iterator[str | Answer]) -> Iterator[str | Answer]:
    yield first
    yield from rest
