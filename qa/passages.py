"""Turning ranked chunks into the passages a reader sees: nothing shown twice, optional context.

Neighbouring chunks share a sentence of overlap. When a chunk ranks high because it ends with
the sentence that restates the question, the answer is in its neighbour, which ranks lower; so
a lower-ranked chunk that overlaps a passage already shown joins it, and the passage becomes the
span of both (up to ``JOIN_LIMIT`` chunks; a further overlapping chunk is dropped). The passage
keeps the rank and scores of its best chunk and an exact anchor over the joined span. Dropping
the neighbour instead lost the answer of about 1 question in 30 on Wikipedia benchmarks.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from qa.chunk import cited_notes, sentence_spans
from qa.errors import DocumentNotFoundError, InvalidQueryError
from qa.types import Chunk, Citation, Context, Document, anchor_for

JOIN_LIMIT = 2  # chunks a passage may join
# Only the first JOIN_WINDOW chunks of the ranking may join a passage: whatever ``top_k`` is,
# the same passages come out with the same spans (a chunk ranked lower is dropped).
JOIN_WINDOW = 20


class Joined:
    """A passage being assembled from ranked chunks: its best chunk's row and score, and the
    span of every chunk it joins (``takes``, ``join``)."""

    def __init__(self, row: int, score: float, chunk: Chunk) -> None:
        self.row, self.score = row, score
        self.doc_id, self.kind = chunk.doc_id, chunk.kind
        self.start, self.end = chunk.char_start, chunk.char_end
        self.rows = [row]

    def overlaps(self, chunk: Chunk) -> bool:
        return (
            chunk.doc_id == self.doc_id
            and chunk.char_start < self.end
            and self.start < chunk.char_end
        )

    def takes(self, chunk: Chunk) -> bool:
        """Does ``chunk`` overlap this passage, and may the passage still grow?"""
        return len(self.rows) < JOIN_LIMIT and chunk.kind == self.kind and self.overlaps(chunk)

    def join(self, row: int, chunk: Chunk) -> None:
        self.start, self.end = min(self.start, chunk.char_start), max(self.end, chunk.char_end)
        self.rows = sorted([*self.rows, row])


def context_around(document: Document, start: int, end: int, sentences: int) -> Context:
    """Up to ``sentences`` whole sentences before ``start`` and after ``end``, in one block."""
    block = next((b for b in document.blocks if b.char_start <= start and end <= b.char_end), None)
    low, high = (block.char_start, block.char_end) if block else (0, len(document.text))
    spans = sentence_spans(document.text, low, high)
    before = [s for s in spans if s[1] <= start][-sentences:] if sentences else []
    after = [s for s in spans if s[0] >= end][:sentences] if sentences else []
    before_start = before[0][0] if before else start
    after_end = after[-1][1] if after else end
    return Context(
        before=document.text[before_start:start],
        after=document.text[end:after_end],
        before_start=before_start,
        after_end=after_end,
    )


def citation_for(document: Document, start: int, end: int, kind: str = "body") -> Citation:
    """The citation of ``document.text[start:end]``: anchor, section, lines, pages, and the
    footnotes its markers cite (each followed by the notes it refers to), and the slide, sheet,
    table and rows it sits in where the format has them."""
    place, rows = document.place_of(start), document.rows_between(start, end)
    return Citation(
        doc_id=document.doc_id,
        title=document.title,
        section=document.section_at(start),
        char_start=start,
        char_end=end,
        line_start=document.line_of(start),
        line_end=document.line_of(end - 1),
        anchor=anchor_for(document.doc_id, start, end),
        kind=kind,
        page=document.page_of(start),
        page_end=document.page_of(end - 1),
        authors=document.authors,
        date=document.date,
        footnotes=document.footnotes_for(cited_notes(document, kind, start, end)),
        slide=place.slide,
        sheet=place.sheet,
        table=place.table,
        row=rows[0] if rows else None,
        row_end=rows[1] if rows else None,
        boxes=document.boxes_between(start, end),
    )


_ANCHOR = re.compile(r"^(?P<doc_id>.+)#c(?P<start>\d{1,12})-(?P<end>\d{1,12})$")


@dataclass(frozen=True)
class Passage:
    """The text an anchor names, with its citation and optional surrounding sentences."""

    anchor: str
    text: str
    citation: Citation
    context: Context | None


def resolve_anchor(documents: Mapping[str, Document], anchor: str, *, context: int = 0) -> Passage:
    """``doc_id#c<start>-<end>`` -> that exact span of the document's canonical text."""
    match = _ANCHOR.match(anchor.strip())
    if match is None:
        raise InvalidQueryError(
            f"anchor must look like 'doc_id#c<start>-<end>' (as citations give it), got {anchor!r}"
        )
    doc_id, start, end = match["doc_id"], int(match["start"]), int(match["end"])
    document = documents.get(doc_id)
    if document is None:
        raise DocumentNotFoundError(doc_id)
    if not 0 <= start < end <= len(document.text):
        raise InvalidQueryError(
            f"span {start}-{end} is outside {doc_id!r}, whose text has {len(document.text)} "
            "characters"
        )
    block = next((b for b in document.blocks if b.char_start <= start < b.char_end), None)
    citation = citation_for(document, start, end, block.kind if block else "body")
    around = context_around(document, start, end, context) if context else None
    return Passage(citation.anchor, document.text[start:end], citation, around)
