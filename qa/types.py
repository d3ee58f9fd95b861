"""The values that flow through the pipeline: frozen, so a stage cannot edit another's output."""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Literal

SearchMode = Literal["hybrid", "dense", "lexical"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "lexical")


@dataclass(frozen=True)
class Heading:
    """A section heading: its nesting level (1 = outermost), its text and where it starts."""

    level: int
    title: str
    char_start: int


@dataclass(frozen=True)
class Document:
    """One source file, reduced to a canonical text that every citation offset points into."""

    doc_id: str
    title: str
    source_path: str
    text: str
    content_hash: str
    headings: tuple[Heading, ...] = ()
    _newlines: tuple[int, ...] = field(default=(), repr=False, compare=False)

    @classmethod
    def create(
        cls,
        *,
        doc_id: str,
        title: str,
        source_path: str,
        text: str,
        content_hash: str,
        headings: tuple[Heading, ...] = (),
    ) -> Document:
        newlines = tuple(i for i, ch in enumerate(text) if ch == "\n")
        return cls(doc_id, title, source_path, text, content_hash, headings, newlines)

    def line_of(self, offset: int) -> int:
        """1-based line of the source file that holds the character at ``offset``."""
        return bisect.bisect_right(self._newlines, offset - 1) + 1 if offset > 0 else 1

    def section_at(self, offset: int) -> str:
        """Heading path (``outer > inner``) in force at ``offset``; empty before any heading."""
        path: list[Heading] = []
        for heading in self.headings:
            if heading.char_start > offset:
                break
            path = [h for h in path if h.level < heading.level]
            path.append(heading)
        return " > ".join(h.title for h in path)


@dataclass(frozen=True)
class Chunk:
    """A passage of one document: ``document.text[char_start:char_end] == text`` always holds."""

    doc_id: str
    ordinal: int
    char_start: int
    char_end: int
    line_start: int
    line_end: int
    section: str
    n_tokens: int
    text: str

    @property
    def anchor(self) -> str:
        return f"{self.doc_id}#c{self.char_start}-{self.char_end}"


@dataclass(frozen=True)
class Citation:
    doc_id: str
    title: str
    section: str
    char_start: int
    char_end: int
    line_start: int
    line_end: int
    anchor: str


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    text: str
    citation: Citation
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SearchResult:
    question: str
    mode: SearchMode
    hits: tuple[Hit, ...]
    took_ms: float
