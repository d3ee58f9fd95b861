"""Turning ranked chunks into the passages a reader sees: nothing shown twice, optional context.

Neighbouring chunks share a sentence of overlap, so two good hits can repeat each other. A
lower-ranked chunk that overlaps a passage already shown is dropped rather than trimmed: its
scores describe its whole text, and what is left after trimming is mostly the part that did not
match. Every hit stays one whole chunk with an exact anchor.
"""

from __future__ import annotations

from dataclasses import dataclass

from qa.chunk import sentence_spans
from qa.types import Context, Document


@dataclass(frozen=True)
class Span:
    doc_id: str
    start: int
    end: int


def overlaps(span: Span, shown: list[Span]) -> bool:
    return any(
        other.doc_id == span.doc_id and other.start < span.end and span.start < other.end
        for other in shown
    )


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
