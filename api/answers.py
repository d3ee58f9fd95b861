"""Answers and the spans their citations resolve to: ``POST /v1/answer``, ``GET /v1/passages``."""

from __future__ import annotations

import time
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import RedirectResponse

from api.routes import ERRORS, RetrieverDep, search_with
from api.schemas import AnswerRequest, AnswerResponse, PassagePublic
from qa.answer import compose_answer
from qa.config import Settings
from qa.llm import llm_settings
from qa.passages import resolve_anchor
from qa.retrieve import MAX_CONTEXT_SENTENCES
from qa.serialize import answer_json, passage_json
from qa.types import Answer

router = APIRouter()
# A generative answer also fails when the model server does (502) or does not answer (504).
ANSWER_ERRORS: dict[int | str, dict[str, object]] = {**ERRORS, 502: ERRORS[503], 504: ERRORS[503]}


def passage_url(request: Request, anchor: str) -> str:
    """Where a citation resolves in this service (absolute, as the client reached it)."""
    return f"{request.url_for('passage')}?anchor={quote(anchor, safe='')}"


def answer_with_urls(request: Request, answer: Answer) -> dict[str, Any]:
    """``answer_json`` with each reference's ``url`` on this service."""
    body = answer_json(answer)
    for reference in body["references"]:
        reference["url"] = passage_url(request, reference["citation"]["anchor"])
    return body


def answer_body(request: Request, answer: Answer) -> AnswerResponse:
    return AnswerResponse.model_validate(answer_with_urls(request, answer))


@router.post("/v1/answer", response_model=AnswerResponse, responses=ANSWER_ERRORS, tags=["answers"])
def answer(body: AnswerRequest, request: Request, current: RetrieverDep) -> AnswerResponse:
    """The answer to a question, each sentence followed by a marker [n] whose reference is
    that sentence's exact citation; a refusal (no references) when the corpus does not
    answer, with the closest passages in ``hits``. With a model server configured
    (``QA_LLM_BASE_URL``) the answer is generative and checked: ``unsupported`` lists its
    sentences that their cited passages do not support."""
    settings: Settings = request.app.state.service.settings
    started = time.perf_counter()
    result = search_with(current, body.question, body)
    composed = compose_answer(current, result, llm_settings(settings), started=started)
    return answer_body(request, composed)


@router.get(
    "/v1/passages",
    name="passage",
    response_model=PassagePublic,
    responses=ERRORS,
    tags=["documents"],
)
def passage(
    request: Request,
    current: RetrieverDep,
    anchor: Annotated[
        str,
        Query(
            min_length=4,
            max_length=1000,
            description="A citation anchor: doc_id#c<start>-<end>.",
            examples=["indsr-2025-ch6-japan-supply-chain-security#c0-40"],
        ),
    ],
    context: Annotated[
        int, Query(ge=0, le=MAX_CONTEXT_SENTENCES, description="Sentences around the span.")
    ] = 0,
) -> PassagePublic | RedirectResponse:
    """The exact span an anchor names, with its citation. A browser (asking for HTML first)
    is sent to the research page's document view with the span highlighted."""
    found = resolve_anchor(current.index.documents, anchor, context=context)
    if _wants_html(request):
        c = found.citation
        query = urlencode(
            {"view": "document", "open": c.doc_id, "span": f"{c.char_start}-{c.char_end}"}
        )
        return RedirectResponse(f"/?{query}", status_code=303)
    return PassagePublic.model_validate(passage_json(found))


def _wants_html(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return accept.split(",")[0].strip().startswith("text/html")
