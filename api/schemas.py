"""Request and response models: input limits live here, not in hand parsing."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qa.retrieve import MAX_QUESTION_CHARS, MAX_TOP_K
from qa.types import SearchMode


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: Annotated[
        str,
        Field(
            min_length=1,
            max_length=MAX_QUESTION_CHARS,
            description="Natural-language question in any language.",
            examples=["日本對中國重稀土的依賴有多高？"],
        ),
    ]
    top_k: Annotated[
        int, Field(ge=1, le=MAX_TOP_K, strict=True, description="Number of passages.")
    ] = 5
    mode: SearchMode = "hybrid"

    @field_validator("question")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("question must contain some non-whitespace text")
        return value


class CitationPublic(BaseModel):
    doc_id: str
    title: str
    section: str
    char_start: int
    char_end: int
    line_start: int
    line_end: int
    anchor: str


class HitPublic(BaseModel):
    rank: int
    score: float
    text: str
    scores: dict[str, float]
    citation: CitationPublic


class SearchResponse(BaseModel):
    question: str
    mode: SearchMode
    hits: list[HitPublic]
    took_ms: float


class SectionPublic(BaseModel):
    level: int
    title: str
    char_start: int


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    source_path: str
    content_hash: str
    chars: int


class DocumentPublic(DocumentSummary):
    sections: list[SectionPublic]
    text: str


class DocumentsPublic(BaseModel):
    data: list[DocumentSummary]
    count: int


class IndexPublic(BaseModel):
    generation: str
    model: str
    dimension: int
    documents: int
    chunks: int
    built_at: str
    chunker: dict[str, int | str]


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
