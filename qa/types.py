"""The values that flow through the pipeline: frozen, so a stage cannot edit another's output."""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from qa.scripts import Script, main_script

if TYPE_CHECKING:
    from qa.language import Language

SearchMode = Literal["hybrid", "dense", "lexical"]
SEARCH_MODES: tuple[SearchMode, ...] = ("hybrid", "dense", "lexical")

# Block kinds. Only INDEXED_KINDS become chunks; the rest stay in the document, labelled.
BlockKind = Literal[
    "body",
    "footnotes",
    "author",
    "table",
    "front",
    "toc",
    "boilerplate",
    "more-reports",
    "related",
]
INDEXED_KINDS: frozenset[str] = frozenset({"body", "footnotes", "author", "table"})


@dataclass(frozen=True)
class Heading:
    """A section heading: its nesting level (1 = outermost), its text and where it starts."""

    level: int
    title: str
    char_start: int


@dataclass(frozen=True)
class Block:
    """A labelled span of the canonical text; chunks never cross a block boundary."""

    kind: str
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Footnote:
    """A footnote definition; ``refers_to`` lists the notes a cross-reference (同註 14) names."""

    n: int
    text: str
    urls: tuple[str, ...]
    refers_to: tuple[int, ...]
    char_start: int
    char_end: int


@dataclass(frozen=True)
class Place:
    """Where a span sits in a source without pages: a slide, a sheet, a table and its row.

    Every field is optional: a DOCX paragraph has none, a DOCX table row has ``table`` and
    ``row``, a spreadsheet row ``sheet`` and ``row`` (the sheet's own 1-based row number, as the
    spreadsheet shows it), a slide's text ``slide``. A citation copies them, so a reader can
    find the cited cells in the file itself and not only in the canonical text.
    """

    slide: int | None = None
    sheet: str | None = None
    table: str | None = None
    row: int | None = None


@dataclass(frozen=True)
class TextBox:
    """Where the characters ``text[char_start:char_end]`` are drawn: a line that OCR read on
    ``page``, its box from the page's top-left corner (x0, top, x1, bottom), in PDF points for a
    PDF page and in pixels for a scanned image."""

    char_start: int
    char_end: int
    page: int
    x0: float
    top: float
    x1: float
    bottom: float


@dataclass(frozen=True)
class Document:
    """One source file, reduced to a canonical text that every citation offset points into.

    The canonical text is cleaned (footnote definitions moved to the end of their section,
    sentences cut by page breaks joined); ``line_runs`` and ``page_runs`` map its offsets back to
    lines (and PDF pages) of the source, as sorted ``(canonical offset, line or page)`` pairs.
    """

    doc_id: str
    title: str
    source_path: str
    text: str
    content_hash: str
    format: str = "text"
    authors: tuple[str, ...] = ()
    date: str | None = None
    headings: tuple[Heading, ...] = ()
    blocks: tuple[Block, ...] = ()
    footnotes: tuple[Footnote, ...] = ()
    markers: tuple[tuple[int, int], ...] = ()  # (offset, footnote number) in body text
    line_runs: tuple[tuple[int, int], ...] = ()
    page_runs: tuple[tuple[int, int], ...] = ()
    # Slide, sheet, table and row of the text from each offset on (``Place``), sorted like
    # ``page_runs``; empty for formats that have none of them.
    places: tuple[tuple[int, Place], ...] = ()
    # The box of every line OCR read (scanned PDF pages), sorted by ``char_start``.
    boxes: tuple[TextBox, ...] = ()
    # Why the text may not be what the file shows (a garbled PDF text layer): reported, not fatal.
    warnings: tuple[str, ...] = ()
    _run_starts: tuple[int, ...] = field(default=(), repr=False, compare=False)
    _page_starts: tuple[int, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.line_runs:  # verbatim text: every newline starts the next source line
            runs = [(0, 1)] + [(i + 1, n) for n, i in enumerate(_newlines(self.text), start=2)]
            object.__setattr__(self, "line_runs", tuple(runs))
        if not self.blocks:
            object.__setattr__(self, "blocks", (Block("body", 0, len(self.text)),))
        object.__setattr__(self, "_run_starts", tuple(start for start, _ in self.line_runs))
        object.__setattr__(self, "_page_starts", tuple(start for start, _ in self.page_runs))

    def line_of(self, offset: int) -> int:
        """1-based line of the source file that holds the character at ``offset``."""
        index = bisect.bisect_right(self._run_starts, offset) - 1
        start, line = self.line_runs[max(index, 0)]
        return line + self.text.count("\n", start, max(offset, start))

    def page_of(self, offset: int) -> int | None:
        """1-based PDF page of ``offset`` (None for sources without pages)."""
        if not self.page_runs:
            return None
        index = bisect.bisect_right(self._page_starts, offset) - 1
        return self.page_runs[max(index, 0)][1]

    def place_of(self, offset: int) -> Place:
        """Slide, sheet, table and row of ``offset`` (all None where the format has none)."""
        index = bisect.bisect_right(self.places, offset, key=lambda run: run[0]) - 1
        return self.places[index][1] if index >= 0 else _NOWHERE

    def rows_between(self, start: int, end: int) -> tuple[int, int] | None:
        """First and last table row in ``text[start:end]`` of the table at ``start`` (a
        passage can open with the table's caption); None where no row is."""
        first = max(bisect.bisect_right(self.places, start, key=lambda run: run[0]) - 1, 0)
        table = self.place_of(start)
        rows = [
            place.row
            for _, place in itertools.takewhile(
                lambda run: run[0] < end, itertools.islice(self.places, first, None)
            )
            if place.row is not None and (place.sheet, place.table) == (table.sheet, table.table)
        ]
        return (min(rows), max(rows)) if rows else None

    def boxes_between(self, start: int, end: int) -> tuple[TextBox, ...]:
        """Boxes of the OCR'd lines that hold a character of ``text[start:end]``."""
        first = bisect.bisect_right(self.boxes, start, key=lambda box: box.char_end)
        found: list[TextBox] = []
        for box in self.boxes[first:]:
            if box.char_start >= end:
                break
            found.append(box)
        return tuple(found)

    def section_at(self, offset: int) -> str:
        """Heading path (``outer > inner``) in force at ``offset``; empty before any heading."""
        path: list[Heading] = []
        for heading in self.headings:
            if heading.char_start > offset:
                break
            path = [h for h in path if h.level < heading.level]
            path.append(heading)
        return " > ".join(h.title for h in path)

    def footnote(self, n: int) -> Footnote | None:
        return next((f for f in self.footnotes if f.n == n), None)

    def footnotes_for(self, numbers: tuple[int, ...]) -> tuple[Footnote, ...]:
        """The notes named, each followed by the notes its cross-references name."""
        ordered: list[Footnote] = []
        for n in numbers:
            note = self.footnote(n)
            if note is None:
                continue
            for item in (note, *(self.footnote(r) for r in note.refers_to)):
                if item is not None and item not in ordered:
                    ordered.append(item)
        return tuple(ordered)


_NOWHERE = Place()


def _newlines(text: str) -> list[int]:
    return [i for i, ch in enumerate(text) if ch == "\n"]


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
    kind: str = "body"
    page_start: int | None = None
    page_end: int | None = None
    footnotes: tuple[int, ...] = ()

    @property
    def anchor(self) -> str:
        return anchor_for(self.doc_id, self.char_start, self.char_end)


def anchor_for(doc_id: str, start: int, end: int) -> str:
    """The citation anchor clients resolve: ``doc_id#c<start>-<end>`` into the canonical text."""
    return f"{doc_id}#c{start}-{end}"


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
    kind: str = "body"
    page: int | None = None
    page_end: int | None = None
    authors: tuple[str, ...] = ()
    date: str | None = None
    footnotes: tuple[Footnote, ...] = ()
    # Where the passage is in a slide deck, spreadsheet or table (``Place``); None elsewhere.
    slide: int | None = None
    sheet: str | None = None
    table: str | None = None
    row: int | None = None  # the first row cited ...
    row_end: int | None = None  # ... and the last (same table)
    boxes: tuple[TextBox, ...] = ()  # where an OCR'd passage is drawn on its pages


@dataclass(frozen=True)
class Context:
    """Sentences around a passage, kept apart from its text so its anchor stays exact:
    ``text[before_start:after_end] == before + hit.text + after``."""

    before: str
    after: str
    before_start: int
    after_end: int


@dataclass(frozen=True)
class Hit:
    rank: int
    score: float
    text: str
    citation: Citation
    scores: dict[str, float] = field(default_factory=dict)
    context: Context | None = None
    row: int | None = field(default=None, compare=False)  # chunk row in the served generation
    # Every chunk row the passage joins, in document order (``row`` is the best-ranked one):
    # overlapping chunks are shown as one passage (``qa.passages``).
    rows: tuple[int, ...] = field(default=(), compare=False)


@dataclass(frozen=True)
class Query:
    """The question as search analysed it, once (``qa.query.analyze_query``); every stage of the
    search and the answer reads it instead of the text.

    ``scripts`` are the writing systems it has a character of (``qa.scripts``); ``script`` the
    one that decides how it is read; ``language`` the answer's language (``qa.language``).
    ``terms`` are its own analyzed lexical terms (``qa.lexical.analyze``, in order, repeats
    kept); ``translations`` the dictionary terms added for another language (``qa.crosslingual``;
    empty when no lexical ranking ran); ``vector`` its dense embedding (None when no dense
    ranking ran).
    """

    text: str
    translations: tuple[str, ...] = ()
    vector: Any = field(default=None, compare=False, repr=False)
    terms: tuple[str, ...] = ()
    scripts: frozenset[Script] = frozenset()
    language: Language = "en"

    @property
    def script(self) -> Script:
        return main_script(self.scripts)


@dataclass(frozen=True)
class SearchResult:
    question: str
    mode: SearchMode
    hits: tuple[Hit, ...]
    took_ms: float
    answerable: bool = True
    confidence: float = 1.0  # calibrated belief that the corpus answers the question
    # Kinds of number the question asks for ("tonnage", "money", "percent") that no top passage
    # states: why ``answerable`` is false when it is set.
    unstated_quantities: tuple[str, ...] = ()
    timings_ms: dict[str, float] = field(default_factory=dict)
    query: Query | None = field(default=None, compare=False, repr=False)


AnswerMethod = Literal["extractive", "generative", "refusal"]


@dataclass(frozen=True)
class Reference:
    """Marker ``[n]``: ``text == document.text[citation.char_start:citation.char_end]``."""

    n: int
    text: str
    citation: Citation
    hit_rank: int  # the passage (``SearchResult.hits[hit_rank - 1]``) the sentence is from
    score: float


@dataclass(frozen=True)
class Answer:
    question: str
    text: str  # the answer with markers, or the refusal
    method: AnswerMethod
    language: Language
    references: tuple[Reference, ...]
    search: SearchResult
    took_ms: float
    # Generative answers only: sentences whose cited passage does not support them.
    unsupported: tuple[str, ...] = ()

    @property
    def answerable(self) -> bool:
        return self.method != "refusal"
