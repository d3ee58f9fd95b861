"""Routes: thin, no try/except; domain errors are mapped once in ``api.errors``."""

from __future__ import annotations

import os
from dataclasses import asdict
from typing import Annotated, Protocol

from fastapi import APIRouter, Depends, Request, Response

from api.schemas import (
    BlockPublic,
    DensePublic,
    DocumentPublic,
    DocumentsPublic,
    DocumentSummary,
    FootnotePublic,
    IndexPublic,
    Problem,
    ReadyPublic,
    ReloadPublic,
    SearchRequest,
    SearchResponse,
    SectionPublic,
)
from api.state import ServiceState
from qa.retrieve import Retriever
from qa.serialize import search_result_json
from qa.types import Document, SearchMode, SearchResult

router = APIRouter()
ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (404, 422, 503)
}
# A route that takes a JSON body also answers 415 to a body sent as another media type.
BODY_ERRORS: dict[int | str, dict[str, object]] = {**ERRORS, 415: ERRORS[422]}


def retriever(request: Request, response: Response) -> Retriever:
    state: ServiceState = request.app.state.service
    current = state.require()
    response.headers["X-Index-Generation"] = current.index.generation
    response.headers["X-Worker-Pid"] = str(os.getpid())  # which `qa serve --workers N` process
    return current


RetrieverDep = Annotated[Retriever, Depends(retriever)]


@router.get("/healthz", tags=["operations"])
def healthz() -> dict[str, str]:
    """Liveness: the process answers, whatever the state of the index."""
    return {"status": "ok"}


@router.get("/readyz", response_model=ReadyPublic, responses=ERRORS, tags=["operations"])
def readyz(request: Request) -> ReadyPublic:
    """Readiness: 200 while an index is served and its store answers (with the last reload
    problem, if any), else 503 with the reason."""
    state: ServiceState = request.app.state.service
    current = state.require()
    current.index.check()
    problem = str(state.problem) if state.problem else None
    return ReadyPublic(status="ready", generation=current.index.generation, last_problem=problem)


@router.post("/v1/admin/reload", response_model=ReloadPublic, responses=ERRORS, tags=["operations"])
def reload(request: Request) -> ReloadPublic:
    """Load the generation ``CURRENT`` names now instead of at the next poll."""
    state: ServiceState = request.app.state.service
    swapped = state.reload()
    current = state.require()
    if state.problem is not None and not swapped:
        raise state.problem
    return ReloadPublic(generation=current.index.generation, swapped=swapped)


@router.get("/v1/index", response_model=IndexPublic, responses=ERRORS, tags=["index"])
def index_info(current: RetrieverDep) -> IndexPublic:
    manifest = current.index.manifest
    return IndexPublic(
        generation=current.index.generation,
        backend=current.index.backend,
        collection=current.index.collection,
        model=manifest["embed_model"],
        dimension=manifest["dimension"],
        documents=manifest["counts"]["documents"],
        chunks=manifest["counts"]["chunks"],
        built_at=manifest["built_at"],
        chunker=manifest["chunker"],
        dense=DensePublic(**current.index.dense_info.as_dict()),
    )


class SearchOptions(Protocol):
    """The search options a request body carries (``/v1/search``, ``/v1/answer``, chat)."""

    @property
    def top_k(self) -> int: ...
    @property
    def mode(self) -> SearchMode: ...
    @property
    def doc_ids(self) -> list[str] | None: ...
    @property
    def section_prefix(self) -> str | None: ...
    @property
    def context(self) -> int: ...


def search_with(retriever: Retriever, question: str, options: SearchOptions) -> SearchResult:
    return retriever.search(
        question,
        top_k=options.top_k,
        mode=options.mode,
        doc_ids=options.doc_ids,
        section_prefix=options.section_prefix,
        context=options.context,
    )


@router.post("/v1/search", response_model=SearchResponse, responses=BODY_ERRORS, tags=["search"])
def search(body: SearchRequest, current: RetrieverDep) -> SearchResponse:
    result = search_with(current, body.question, body)
    return SearchResponse.model_validate(search_result_json(result))


@router.get("/v1/documents", response_model=DocumentsPublic, responses=ERRORS, tags=["documents"])
def list_documents(current: RetrieverDep) -> DocumentsPublic:
    data = [_summary(d) for d in current.index.documents.values()]
    return DocumentsPublic(data=data, count=len(data))


@router.get(
    "/v1/documents/{doc_id:path}",
    response_model=DocumentPublic,
    responses=ERRORS,
    tags=["documents"],
)
def get_document(doc_id: str, current: RetrieverDep) -> DocumentPublic:
    document = current.document(doc_id)
    return DocumentPublic(
        **_summary(document).model_dump(),
        sections=[SectionPublic(**asdict(h)) for h in document.headings],
        blocks=[BlockPublic(**asdict(b)) for b in document.blocks],
        footnotes=[FootnotePublic(**asdict(f)) for f in document.footnotes],
        text=document.text,
    )


def _summary(document: Document) -> DocumentSummary:
    return DocumentSummary(
        doc_id=document.doc_id,
        title=document.title,
        authors=list(document.authors),
        date=document.date,
        format=document.format,
        source_path=document.source_path,
        content_hash=document.content_hash,
        chars=len(document.text),
        warnings=list(document.warnings),
    )
