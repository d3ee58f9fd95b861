"""Word (.docx) reader: python-docx opens the package; paragraphs, tables and notes in order.

- **Headings** come from paragraph styles ("Heading 1".."Heading 9", "Title", and styles based
  on them, as localised templates name their own) or an explicit outline level, so sections
  are the ones the author made, not guessed from the wording.
- **Footnotes and endnotes** are numbered in the order their references appear (as Word shows
  them). A reference becomes the superscript marker ``¹`` in the text and the note a ``¹ …``
  paragraph, so the shared ``structure`` stage links them as for PDF and HTML: the note is
  placed after the section that first cites it and a citation of the passage carries it. A
  hyperlink in a note keeps its address (``(https://…)``) so the note's sources are known.
- **Tables** are read row by row (``office.table_paragraphs``): every cell labelled with its
  column, the caption (a "Caption"-styled paragraph just before or after) or "Table N" naming
  the table, and each row's number (the header is row 1) on its citation.

``line`` counts paragraphs and table rows (a .docx has no source lines). Deleted revisions
(``w:delText``), field codes and the fallback copy of a drawing's text are not document text.
Title, authors and date come from the core properties (a placeholder title such as
"Document1" or a file name is ignored), else the first heading, else the ``doc_id``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
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
from qa.ingest.structure import SUPERSCRIPTS, Paragraph, build_document
from qa.types import Document, Place

_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_R = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_MC_FALLBACK = "{http://schemas.openxmlformats.org/markup-compatibility/2006}Fallback"
_TO_SUPER = str.maketrans("0123456789", SUPERSCRIPTS)
_HEADING_STYLE = re.compile(r"^heading\s*([1-9])$", re.IGNORECASE)
_CAPTION = re.compile(r"^(?:Table|TABLE|Tab\.|表)\s*[\d一二三四五六七八九十]")
_SEPARATORS = ("separator", "continuationSeparator", "continuationNotice")
_NOTE_KINDS = {"footnoteReference": "footnote", "endnoteReference": "endnote"}


@dataclass
class _Notes:
    """Footnote/endnote numbers in order of first reference; their texts once read."""

    numbers: dict[tuple[str, str], int] = field(default_factory=dict)

    def number(self, kind: str, note_id: str) -> int:
        return self.numbers.setdefault((kind, note_id), len(self.numbers) + 1)


def read_docx_document(raw: bytes, *, doc_id: str, source_path: str, content_hash: str) -> Document:
    open_zip(raw, source_path, "Word (.docx)")
    word = _open(raw, source_path)
    notes = _Notes()
    try:  # python-docx parses some parts (notes, styles) only when they are first used
        paragraphs = list(_body_paragraphs(word, notes))
        paragraphs.extend(_note_paragraphs(word, notes, line=len(paragraphs) + 1))
    except DocumentParseError:
        raise
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        raise DocumentParseError(
            source_path, f"not a readable Word (.docx) file ({reason})"
        ) from None
    if not any(p.text for p in paragraphs):
        raise DocumentParseError(source_path, "no text in the Word document")
    document = build_document(
        [p for p in paragraphs if p.text],
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="docx",
        title_from_body=False,
    )
    props = word.core_properties
    return replace(
        document,
        title=meta_title(props.title) or document.title,
        authors=meta_authors(props.author) or document.authors,
        date=meta_date(props.created) or document.date,
    )


def _open(raw: bytes, source: str) -> Any:
    import io

    import docx

    try:
        return docx.Document(io.BytesIO(raw))
    except Exception as exc:  # python-docx raises many kinds on a damaged package
        reason = str(exc) or type(exc).__name__
        raise DocumentParseError(source, f"not a readable Word (.docx) file ({reason})") from None


def _blocks(body: Any) -> Iterator[Any]:
    """Paragraphs and tables of the body in order, content controls (``w:sdt``) opened."""
    for child in body.iterchildren():
        if child.tag in (_W + "p", _W + "tbl"):
            yield child
        elif child.tag == _W + "sdt":
            content = child.find(_W + "sdtContent")
            if content is not None:
                yield from _blocks(content)


def _body_paragraphs(word: Any, notes: _Notes) -> Iterator[Paragraph]:
    from docx.text.paragraph import Paragraph as WordParagraph

    blocks = list(_blocks(word.element.body))
    line = 1
    tables = 0
    used_captions: set[int] = set()
    for index, element in enumerate(blocks):
        if index in used_captions:
            continue
        if element.tag == _W + "tbl":
            tables += 1
            caption = ""
            next_is_table = index + 2 < len(blocks) and blocks[index + 2].tag == _W + "tbl"
            for near in (index - 1, index + 1):
                if near == index + 1 and next_is_table:
                    break  # a line between two tables captions the one it precedes
                if 0 <= near < len(blocks) and near not in used_captions:
                    candidate = blocks[near]
                    if candidate.tag == _W + "p" and _is_caption(WordParagraph(candidate, word)):
                        caption = _text(candidate, notes)
                        used_captions.add(near)
                        break
            name = caption or f"Table {tables}"
            rows = [(number, _row_cells(tr, notes)) for number, tr in enumerate(_rows(element), 1)]
            found = table_paragraphs(
                rows, line=line, caption=caption or None, place=Place(table=name)
            )
            yield from found
            line += len(found)
            continue
        before_table = index + 1 < len(blocks) and blocks[index + 1].tag == _W + "tbl"
        if before_table and _is_caption(WordParagraph(element, word)):
            continue  # the next table takes it as its caption
        text = _text(element, notes)
        if text:
            level = _heading_level(WordParagraph(element, word), element)
            yield Paragraph(text, line, level=level)
            line += 1


def _rows(table: Any) -> Iterator[Any]:
    yield from table.iterchildren(_W + "tr")


def _row_cells(row: Any, notes: _Notes) -> list[str]:
    """A row's cells (as many as the row has, merged ones once), each as one line of text."""
    return [
        " ".join(t for p in cell.iter(_W + "p") if (t := _text(p, notes)))
        for cell in row.iterchildren(_W + "tc")
    ]


def _is_caption(paragraph: Any) -> bool:
    """Styled "Caption", or a short unstyled line "Table 3 …" / "表 3 …" beside a table."""
    if _style_name(paragraph) == "caption":
        return True
    text = paragraph.text.strip()
    heading = _heading_level(paragraph, paragraph._p)
    return heading is None and len(text) <= 200 and bool(_CAPTION.match(text))


def _style_name(paragraph: Any) -> str:
    try:
        style = paragraph.style
    except (KeyError, ValueError, AttributeError):
        return ""
    return str(getattr(style, "name", "") or "").lower()


def _heading_level(paragraph: Any, element: Any) -> int | None:
    """Level from the style (or the style it is based on), else the paragraph's outline level."""
    try:
        style = paragraph.style
    except (KeyError, ValueError, AttributeError):
        style = None
    for _ in range(4):
        if style is None:
            break
        name = str(getattr(style, "name", "") or "")
        if name.lower() == "title":
            return 1
        if match := _HEADING_STYLE.match(name):
            return int(match.group(1))
        style = getattr(style, "base_style", None)
    outline = element.find(f"{_W}pPr/{_W}outlineLvl")
    if outline is not None:
        value = outline.get(_W + "val", "")
        if value.isdigit() and int(value) < 9:
            return int(value) + 1
    return None


def _text(element: Any, notes: _Notes, links: dict[str, str] | None = None) -> str:
    """A paragraph's visible text on one line; note references as superscript markers."""
    parts: list[str] = []
    _walk(element, notes, parts, links)
    return clean("".join(parts))


def _walk(node: Any, notes: _Notes, parts: list[str], links: dict[str, str] | None) -> None:
    for child in node:
        tag = child.tag
        if not isinstance(tag, str) or tag == _MC_FALLBACK:
            continue
        name = tag[len(_W) :] if tag.startswith(_W) else ""
        if name == "t":
            parts.append(child.text or "")
        elif name in ("tab", "br", "cr") and node.tag == _W + "r":
            parts.append(" ")
        elif name == "noBreakHyphen":
            parts.append("-")
        elif name in _NOTE_KINDS:
            note_id = child.get(_W + "id", "")
            number = notes.number(_NOTE_KINDS[name], note_id)
            parts.append(str(number).translate(_TO_SUPER))
        elif name in ("footnoteRef", "endnoteRef", "delText", "instrText"):
            continue
        elif name == "hyperlink" and links is not None:
            inner: list[str] = []
            _walk(child, notes, inner, links)
            anchor = "".join(inner)
            parts.append(anchor)
            url = links.get(child.get(_R + "id", ""), "")
            if url.startswith(("http://", "https://")) and url not in anchor:
                parts.append(f" ({url})")
        else:
            _walk(child, notes, parts, links)


def _note_paragraphs(word: Any, notes: _Notes, *, line: int) -> list[Paragraph]:
    """``¹ text`` for every referenced note, in number order."""
    from docx.oxml.parser import parse_xml  # python-docx's parser: no entities, no network

    texts: dict[tuple[str, str], str] = {}
    for rel in word.part.rels.values():
        kind = rel.reltype.rsplit("/", 1)[-1]  # ".../footnotes" or ".../endnotes"
        if kind not in ("footnotes", "endnotes") or rel.is_external:
            continue
        part = rel.target_part
        links = {rid: r.target_ref for rid, r in part.rels.items() if r.is_external}
        for note in parse_xml(part.blob).iterchildren(_W + kind[:-1]):
            if note.get(_W + "type") in (
                "separator",
                "continuationSeparator",
                "continuationNotice",
            ):
                continue
            body = " ".join(
                text
                for p in note.iter(_W + "p")
                if (text := _text(p, _Notes(dict(notes.numbers)), links))
            )
            texts[(kind[:-1], note.get(_W + "id", ""))] = body
    found: list[Paragraph] = []
    for (kind, note_id), number in sorted(notes.numbers.items(), key=lambda item: item[1]):
        body = texts.get((kind, note_id), "")
        if body:
            found.append(Paragraph(f"{str(number).translate(_TO_SUPER)} {body}", line + len(found)))
    return found
