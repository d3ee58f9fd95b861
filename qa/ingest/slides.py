"""PowerPoint (.pptx) reader: python-pptx; one section per slide, speaker notes kept apart.

Each slide opens a level-1 section titled by its title placeholder (a slide without one is
"Slide N"); its other shapes follow in reading order (top to bottom, then left to right,
groups opened), one paragraph per text paragraph, and a table on a slide is read by rows like
any other (``office.table_paragraphs``). The speaker notes follow under a level-2 heading
"Speaker notes", so a citation of them says so in its section ("Results > Speaker notes") and
is never mistaken for what the audience saw. Every span of a slide carries its number
(``Place.slide``) on its citation; ``line`` counts the paragraphs kept.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from qa.errors import DocumentParseError
from qa.ingest.office import (
    clean,
    meta_authors,
    meta_date,
    meta_title,
    open_zip,
    table_paragraphs,
)
from qa.ingest.structure import Paragraph, build_document
from qa.types import Document, Place

NOTES_HEADING = "Speaker notes"


def read_pptx_document(raw: bytes, *, doc_id: str, source_path: str, content_hash: str) -> Document:
    open_zip(raw, source_path, "PowerPoint (.pptx)")
    deck = _open(raw, source_path)
    paragraphs: list[Paragraph] = []
    try:  # python-pptx parses some parts (notes, layouts) only when they are first used
        for number, slide in enumerate(deck.slides, start=1):
            paragraphs.extend(_slide_paragraphs(slide, number, line=len(paragraphs) + 1))
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise DocumentParseError(
            source_path, f"not a readable PowerPoint (.pptx) file ({reason})"
        ) from None
    if not any(p.level is None for p in paragraphs):
        raise DocumentParseError(source_path, "no text on any slide")
    document = build_document(
        paragraphs,
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="pptx",
        title_from_body=False,
    )
    props = deck.core_properties
    return replace(
        document,
        title=meta_title(props.title) or document.title,
        authors=meta_authors(props.author),
        date=meta_date(props.created),
    )


def _open(raw: bytes, source: str) -> Any:
    import pptx

    try:
        return pptx.Presentation(io.BytesIO(raw))
    except Exception as exc:  # python-pptx raises many kinds on a damaged package
        reason = str(exc) or type(exc).__name__
        raise DocumentParseError(
            source, f"not a readable PowerPoint (.pptx) file ({reason})"
        ) from None


def _slide_paragraphs(slide: Any, number: int, *, line: int) -> list[Paragraph]:
    place = Place(slide=number)
    title_shape = slide.shapes.title
    title = clean(title_shape.text_frame.text) if title_shape is not None else ""
    found = [Paragraph(title or f"Slide {number}", line, level=1, place=place)]
    tables = 0
    for shape in _in_reading_order(slide.shapes):
        if title_shape is not None and shape.shape_id == title_shape.shape_id:
            continue
        if getattr(shape, "has_table", False) and shape.has_table:
            tables += 1
            rows = [
                (index, [cell.text for cell in row.cells])
                for index, row in enumerate(shape.table.rows, start=1)
            ]
            name = f"Slide {number}, table {tables}"
            found.extend(
                table_paragraphs(
                    rows, line=line + len(found), place=Place(slide=number, table=name)
                )
            )
        elif getattr(shape, "has_text_frame", False) and shape.has_text_frame:
            for paragraph in shape.text_frame.paragraphs:
                if text := clean(paragraph.text):
                    found.append(Paragraph(text, line + len(found), place=place))
    notes = _notes(slide)
    if notes:
        found.append(Paragraph(NOTES_HEADING, line + len(found), level=2, place=place))
        for text in notes:
            found.append(Paragraph(text, line + len(found), place=place))
    return found


def _notes(slide: Any) -> list[str]:
    if not slide.has_notes_slide:
        return []
    frame = slide.notes_slide.notes_text_frame
    if frame is None:
        return []
    return [text for paragraph in frame.paragraphs if (text := clean(paragraph.text))]


def _in_reading_order(shapes: Any) -> Iterator[Any]:
    """Shapes top to bottom, then left to right; a group's shapes in its place."""

    def position(shape: Any) -> tuple[int, int]:
        return (shape.top or 0, shape.left or 0)

    for shape in sorted(shapes, key=position):
        if getattr(shape, "shape_type", None) == _group_type():
            yield from _in_reading_order(shape.shapes)
        else:
            yield shape


def _group_type() -> Any:
    from pptx.enum.shapes import MSO_SHAPE_TYPE

    return MSO_SHAPE_TYPE.GROUP
