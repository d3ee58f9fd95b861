"""Request and response models: input limits live here, not in hand parsing."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator

from qa.errors import InvalidQueryError
from qa.retrieve import MAX_CONTEXT_SENTENCES, MAX_QUESTION_CHARS, MAX_TOP_K, validate_question
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
    doc_ids: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=500)]] | None,
        Field(max_length=100, description="Only search these documents."),
    ] = None
    section_prefix: Annotated[
        str | None,
        Field(
            max_length=500,
            description="Only passages whose section path (outer > inner), or one of its "
            "headings at any level, starts with this; 422 listing section names when none does.",
        ),
    ] = None
    context: Annotated[
        int,
        Field(
            ge=0,
            le=MAX_CONTEXT_SENTENCES,
            strict=True,
            description="Sentences of context before and after each hit, returned apart.",
        ),
    ] = 0

    @field_validator("question")
    @classmethod
    def _visible(cls, value: str) -> str:
        try:
            validate_question(value)
        except InvalidQueryError as exc:
            raise ValueError(str(exc)) from None
        return value


class FootnotePublic(BaseModel):
    n: int
    text: str
    urls: list[str]
    refers_to: list[int] = Field(description="Notes a cross-reference (同註 14) names.")
    char_start: int = Field(description="Where the definition sits in the document text.")
    char_end: int


class TextBoxPublic(BaseModel):
    char_start: int = Field(description="The line's characters in the document text ...")
    char_end: int
    page: int = Field(description="... are drawn on this PDF page ...")
    x0: float = Field(
        description="... in this box from the page's top-left corner: PDF points for a PDF, "
        "pixels for a scanned image."
    )
    top: float
    x1: float
    bottom: float


class CitationPublic(BaseModel):
    doc_id: str
    title: str
    section: str = Field(description="Heading path, outermost first, joined by ' > '.")
    char_start: int
    char_end: int
    line_start: int = Field(description="1-based line of the source file.")
    line_end: int
    anchor: str = Field(description="doc_id#c<char_start>-<char_end>")
    kind: str = Field(description="body, footnotes, author or table")
    page: int | None = Field(description="PDF page of the passage start (null otherwise).")
    page_end: int | None
    authors: list[str]
    date: str | None
    footnotes: list[FootnotePublic] = Field(
        description="Notes the passage's markers cite, each followed by the notes it refers to."
    )
    slide: int | None = Field(
        default=None, description="Slide number of a .pptx passage (null otherwise)."
    )
    sheet: str | None = Field(
        default=None, description="Worksheet name of a .xlsx passage (null otherwise)."
    )
    table: str | None = Field(
        default=None,
        description="The table a passage is from: its caption, or 'Table N' (null otherwise).",
    )
    row: int | None = Field(
        default=None,
        description="First table row cited: the spreadsheet's row number, or the table's "
        "1-based row with the header as row 1 (null outside tables).",
    )
    row_end: int | None = Field(default=None, description="Last table row cited.")
    boxes: list[TextBoxPublic] = Field(
        default_factory=list,
        description="Scanned PDF pages: where each OCR'd line of the passage is on its page.",
    )


class ContextPublic(BaseModel):
    before: str
    after: str
    before_start: int = Field(description="text[before_start:after_end] == before + text + after")
    after_end: int


class HitPublic(BaseModel):
    rank: int
    score: float = Field(description="The score the ranking used (fused in hybrid mode).")
    text: str
    scores: dict[str, float] = Field(
        description="Score per signal: dense (cosine similarity less a quarter of the "
        "passage's hubness), lexical (BM25), fused (reciprocal rank fusion)."
    )
    citation: CitationPublic
    context: ContextPublic | None


class SearchResponse(BaseModel):
    question: str
    mode: SearchMode
    answerable: bool = Field(description="False when the corpus is unlikely to answer.")
    confidence: float
    unstated_quantities: list[str] = Field(
        description="Kinds of number the question asks for (tonnage, money, percent) that no "
        "top passage states; when not empty, answerable is false."
    )
    hits: list[HitPublic]
    took_ms: float
    timings_ms: dict[str, float] = Field(
        description="embed (the question's vector), analyze (terms, script, translations), "
        "dense, lexical, fuse, assemble, total"
    )


class SectionPublic(BaseModel):
    level: int
    title: str
    char_start: int


class BlockPublic(BaseModel):
    kind: str = Field(
        description="body, footnotes, author, table, front, toc, boilerplate, more-reports or "
        "related"
    )
    char_start: int
    char_end: int


class DocumentSummary(BaseModel):
    doc_id: str
    title: str
    authors: list[str]
    date: str | None
    format: str
    source_path: str
    content_hash: str
    chars: int
    warnings: list[str] = Field(
        default_factory=list,
        description="why the text may not be what the file shows (e.g. a garbled PDF text layer)",
    )


class DocumentPublic(DocumentSummary):
    sections: list[SectionPublic]
    blocks: list[BlockPublic]
    footnotes: list[FootnotePublic]
    text: str


class DocumentsPublic(BaseModel):
    data: list[DocumentSummary]
    count: int


class DensePublic(BaseModel):
    kind: str = Field(description='"flat" (exact search) or "ivf" (approximate, above a size)')
    factory: str = Field(description="The FAISS index factory string of the same index.")
    vectors: int
    recall_at_10: float = Field(
        description="Share of the exact top 10 the index finds, measured when it was built "
        "(1.0 for exact search)."
    )
    recall_queries: int = Field(description="How many real vectors measured it (0 for flat).")
    search_params: dict[str, int]


class IndexPublic(BaseModel):
    generation: str
    backend: str = Field(description='Where the index is served from: "local" or "milvus".')
    collection: str | None = Field(
        default=None, description="The Milvus alias served (QA_MILVUS_COLLECTION); null when local."
    )
    model: str
    dimension: int
    documents: int
    chunks: int
    built_at: str
    chunker: dict[str, int | str]
    dense: DensePublic


class ReadyPublic(BaseModel):
    status: str
    generation: str
    last_problem: str | None = Field(
        description="Why the newest generation could not be loaded, while the last one is served."
    )


class ReloadPublic(BaseModel):
    generation: str
    swapped: bool


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str


class AnswerRequest(SearchRequest):
    """The same question and filters as a search; the answer is composed from its hits."""


class ReferencePublic(BaseModel):
    n: int = Field(description="The marker [n] in the answer.")
    text: str = Field(description="The cited sentence (or passage), exactly as in the document.")
    hit_rank: int = Field(description="Rank of the passage in hits that holds it.")
    url: str = Field(
        description="Resolves the citation in this service: JSON of the span (a browser that "
        "asks for HTML is sent to the research page's document view)."
    )
    citation: CitationPublic = Field(description="Citation of exactly this text.")


class AnswerResponse(BaseModel):
    question: str
    answerable: bool = Field(
        description="False: answer is a refusal, references is empty and hits are only the "
        "closest passages, not an answer."
    )
    confidence: float
    unstated_quantities: list[str]
    language: str = Field(description="Language of the answer's wording: zh-Hant, zh-Hans, en, ja")
    method: str = Field(description="extractive, generative or refusal")
    answer: str = Field(description="Sentences each followed by its marker [n], or the refusal.")
    references: list[ReferencePublic]
    unsupported: list[str] = Field(
        description="Generative answers: sentences their cited passage does not support."
    )
    hits: list[HitPublic]
    took_ms: float
    timings_ms: dict[str, float]


class PassagePublic(BaseModel):
    anchor: str
    doc_id: str
    char_start: int
    char_end: int
    text: str = Field(description="document.text[char_start:char_end]")
    citation: CitationPublic
    context: ContextPublic | None
