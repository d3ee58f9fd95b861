"""OpenDocument text (.odt) reader: ``content.xml`` read with lxml, no further library.

An .odt file is a zip of XML parts whose text structure is explicit, so no library is needed:

- ``text:h`` is a heading with its ``text:outline-level``; ``text:p`` (in lists and sections
  too) a paragraph; an index (table of contents) is left out, as a Word field result would be.
- ``text:note`` (a footnote or an endnote, in place in the text) becomes the superscript marker
  ``¹`` at its citation and a ``¹ …`` paragraph, numbered in order of appearance, so the shared
  ``structure`` stage links them as for every other format.
- ``table:table`` is read by rows (``office.table_paragraphs``), named by its ``table:name``;
  repeated rows and columns (``number-*-repeated``, how trailing empty cells are stored) are
  expanded up to ``MAX_REPEAT`` and empty ones dropped.

Title, authors and date come from ``meta.xml`` (``dc:title``, ``meta:initial-creator`` or
``dc:creator``, ``meta:creation-date``). The XML is parsed without entities, DTDs or network.
``line`` counts paragraphs and rows.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field, replace
from typing import Any

from qa.errors import DocumentParseError
from qa.ingest.epub import parse_xml
from qa.ingest.office import clean, meta_authors, meta_title, open_zip, table_paragraphs
from qa.ingest.structure import SUPERSCRIPTS, Paragraph, build_document
from qa.types import Document, Place

_TEXT = "{urn:oasis:names:tc:opendocument:xmlns:text:1.0}"
_TABLE = "{urn:oasis:names:tc:opendocument:xmlns:table:1.0}"
_OFFICE = "{urn:oasis:names:tc:opendocument:xmlns:office:1.0}"
_META = "{urn:oasis:names:tc:opendocument:xmlns:meta:1.0}"
_DC = "{http://purl.org/dc/elements/1.1/}"
_TO_SUPER = str.maketrans("0123456789", SUPERSCRIPTS)
_SKIPPED = {_TEXT + n for n in ("table-of-content", "alphabetical-index", "bibliography")} | {
    _TEXT + "tracked-changes",  # deleted text kept for review, not document text
    _OFFICE + "annotation",  # comments
}
MAX_REPEAT = 100


@dataclass
class _State:
    notes: list[str] = field(default_factory=list)
    tables: int = 0
    paragraphs: list[Paragraph] = field(default_factory=list)

    @property
    def line(self) -> int:
        return len(self.paragraphs) + 1


def read_odt_document(raw: bytes, *, doc_id: str, source_path: str, content_hash: str) -> Document:
    archive = open_zip(raw, source_path, "OpenDocument (.odt)")
    try:
        content = parse_xml(archive.read("content.xml"), source_path, "content.xml")
        meta = (
            parse_xml(archive.read("meta.xml"), source_path, "meta.xml")
            if "meta.xml" in archive.namelist()
            else None
        )
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as exc:
        raise DocumentParseError(
            source_path, f"not a readable OpenDocument (.odt) file ({exc})"
        ) from None
    except KeyError:
        raise DocumentParseError(
            source_path, "not a readable .odt: content.xml is missing"
        ) from None
    body = content.find(f"{_OFFICE}body/{_OFFICE}text")
    if body is None:
        raise DocumentParseError(source_path, "not a text document (no office:text body)")
    state = _State()
    _blocks(body, state)
    line = state.line
    for number, note in enumerate(state.notes, start=1):
        if note:
            state.paragraphs.append(Paragraph(f"{str(number).translate(_TO_SUPER)} {note}", line))
            line += 1
    if not state.paragraphs:
        raise DocumentParseError(source_path, "no text in the document")
    document = build_document(
        state.paragraphs,
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="odt",
        title_from_body=False,
    )
    if meta is None:
        return document
    title = meta_title(_first(meta, _DC + "title"))
    authors = meta_authors(_first(meta, _META + "initial-creator") or _first(meta, _DC + "creator"))
    date = _first(meta, _META + "creation-date")[:10] or None
    return replace(
        document,
        title=title or document.title,
        authors=authors or document.authors,
        date=date if date and date[:4].isdigit() else document.date,
    )


def _first(root: Any, tag: str) -> str:
    element = next(root.iter(tag), None)
    return clean(element.text or "") if element is not None else ""


def _blocks(parent: Any, state: _State) -> None:
    for child in parent:
        tag = child.tag
        if not isinstance(tag, str) or tag in _SKIPPED:
            continue
        if tag in (_TEXT + "h", _TEXT + "p"):
            text = _inline(child, state)
            if text:
                level = None
                if tag == _TEXT + "h":
                    value = child.get(_TEXT + "outline-level", "1")
                    level = int(value) if value.isdigit() and 0 < int(value) < 10 else 1
                state.paragraphs.append(Paragraph(text, state.line, level=level))
        elif tag == _TABLE + "table":
            _table(child, state)
        else:  # lists, list items, sections, ...
            _blocks(child, state)


def _inline(element: Any, state: _State) -> str:
    parts: list[str] = []
    _walk(element, state, parts)
    return clean("".join(parts))


def _walk(element: Any, state: _State, parts: list[str]) -> None:
    if element.text:
        parts.append(element.text)
    for child in element:
        tag = child.tag
        if isinstance(tag, str) and tag not in _SKIPPED:
            if tag == _TEXT + "note":
                body = child.find(_TEXT + "note-body")
                text = " ".join(
                    t for p in (body if body is not None else ()) if (t := _inline(p, state))
                )
                state.notes.append(text)
                parts.append(str(len(state.notes)).translate(_TO_SUPER))
            elif tag == _TEXT + "s":
                count = child.get(_TEXT + "c", "1")
                parts.append(" " * min(int(count) if count.isdigit() else 1, 100))
            elif tag in (_TEXT + "tab", _TEXT + "line-break"):
                parts.append(" ")
            else:
                _walk(child, state, parts)
                if tag in (_TEXT + "p", _TEXT + "h"):
                    parts.append(" ")  # paragraphs of one cell or note: words apart
        if child.tail:
            parts.append(child.tail)


def _table(table: Any, state: _State) -> None:
    state.tables += 1
    name = clean(table.get(_TABLE + "name", "")) or f"Table {state.tables}"
    rows: list[tuple[int, list[str]]] = []
    for row in table.iter(_TABLE + "table-row"):
        if _enclosing_table(row) is not table:
            continue  # a row of a table nested in a cell: that cell's text
        cells: list[str] = []
        for cell in row:
            if cell.tag not in (_TABLE + "table-cell", _TABLE + "covered-table-cell"):
                continue
            cells.extend([_inline(cell, state)] * _repeat(cell, "columns"))
        rows.extend((len(rows) + 1 + i, cells) for i in range(_repeat(row, "rows")))
    state.paragraphs.extend(table_paragraphs(rows, line=state.line, place=Place(table=name)))


def _repeat(element: Any, what: str) -> int:
    value = element.get(f"{_TABLE}number-{what}-repeated", "1")
    return min(int(value), MAX_REPEAT) if value.isdigit() and int(value) > 0 else 1


def _enclosing_table(element: Any) -> Any:
    parent = element.getparent()
    while parent is not None and parent.tag != _TABLE + "table":
        parent = parent.getparent()
    return parent
