"""HTML reader: the standard library's ``HTMLParser`` turns a page into ``Paragraph``s.

Page chrome (scripts, navigation, headers, footers, forms) is dropped so it never becomes a
passage; h1-h6 carry their level, ``<sup>12</sup>`` becomes the marker ``¹²`` and a footnote
list item becomes ``¹² text``, so the shared ``structure`` stage links notes as in a text file.
Each paragraph keeps the source line where its text starts, for citations.

A data table (two rows or more, two cells or more in a row) is read by rows, as in every other
format (``office.table_paragraphs``): each row one line, every cell labelled with its column's
header, the ``<caption>`` (else "Table N") naming it; a table nested in a cell is that cell's
text. A table of one row or one column is layout, not data: its cells stay paragraphs.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass, field, replace
from html.parser import HTMLParser

from qa.errors import DocumentParseError
from qa.ingest.office import table_paragraphs
from qa.ingest.structure import SUPERSCRIPTS, Paragraph, build_document
from qa.ingest.text import canonical_text
from qa.scripts import WIDE
from qa.types import Document, Place

_DROP = frozenset(
    "script style noscript template nav header footer aside form svg iframe head title".split()
)
_BLOCK = frozenset(
    "p div li td th tr table ul ol dl dd dt blockquote pre section article main br hr figure "
    "figcaption h1 h2 h3 h4 h5 h6 body address details summary caption".split()
)
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())
_NOTE_CLASSES = frozenset({"footnotes", "footnote", "endnotes", "references"})
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9._:-]+)""", re.I)
# What browsers decode these labels as (WHATWG Encoding Standard), keyed by Python codec name.
_CODEC_ALIASES = dict(
    pair.split("=")
    for pair in "big5=big5hkscs gb2312=gb18030 gbk=gb18030 iso8859-1=cp1252 ascii=cp1252 "
    "shift_jis=cp932 euc_kr=cp949 utf-16=utf-8 utf-16-le=utf-8 utf-16-be=utf-8".split()
)
_SPACE = re.compile(r"[ \t\n\r\f\xa0]+")
_CJK = re.compile(f"[{WIDE}]")
_NOTE_ID = re.compile(r"(\d+)\D*$")
_MARKER_TEXT = re.compile(r"^\s*[\[(]?\s*(\d{1,3})\s*[\])]?\s*$")
_BACKLINK = re.compile(r"^[\s↩↑^\ufe0e\ufe0f]*$")
_TO_SUPER = str.maketrans("0123456789", SUPERSCRIPTS)


@dataclass
class _Table:
    """The outermost open table: its rows of cells (each a list of text pieces) and caption."""

    line: int
    in_main: bool
    rows: list[list[list[str]]] = field(default_factory=list)
    row_lines: list[int] = field(default_factory=list)
    caption: list[str] = field(default_factory=list)
    in_caption: bool = False
    nested: int = 0  # tables open inside a cell of this one


@dataclass
class _Open:
    """An open element and the parser state it changed, undone when it closes."""

    tag: str
    drop: bool = False
    main: bool = False
    notes: bool = False
    note_item: bool = False
    block: bool = False
    href: str = ""
    text_from: int = 0  # index into the paragraph pieces where an anchor's text starts


class _Extractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[_Open] = []
        self.drop = self.main = self.notes = self.pre = 0
        self.saw_main = False
        self.title: list[str] = []
        self.in_title = False
        self.sup: list[str] | None = None
        self.note: int | None = None
        self.note_counter = 0
        self.pieces: list[str] = []
        self.first_line: int | None = None
        self.in_main = False
        self.level: int | None = None
        self.is_pre = False
        self.found: list[tuple[Paragraph, bool, bool]] = []  # paragraph, inside main, is a note
        self.table: _Table | None = None
        self.tables = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in _VOID:
            if tag == "br" and not self.drop and not self._cell_text(" "):
                self._break()
            return
        self._close_implied(tag)
        record = _Open(tag, text_from=len(self.pieces))
        self.stack.append(record)
        if tag == "title" and not self.title and all(r.tag != "svg" for r in self.stack):
            self.in_title = True
        hidden = "hidden" in values or re.search(r"display\s*:\s*none", values.get("style", ""))
        if tag in _DROP or hidden or self.drop:
            record.drop = True
            self.drop += 1
            return
        if self._table_tag(tag, start=True):
            return
        if tag in ("main", "article"):
            record.main, self.saw_main = True, True
            self.main += 1
        classes = set(values.get("class", "").lower().split())
        if classes & _NOTE_CLASSES or values.get("role") == "doc-endnotes":
            record.notes = True
            self.notes += 1
        if tag == "ol" and self.notes and values.get("start", "").isdigit():
            self.note_counter = int(values["start"]) - 1
        if tag == "li" and self.notes and self.note is None:
            self._flush()
            match = _NOTE_ID.search(values.get("id", ""))
            self.note = int(match.group(1)) if match else self.note_counter + 1
            self.note_counter = self.note
            record.note_item = True
        elif tag in _BLOCK:
            record.block = True
            self._break()
            if tag[0] == "h" and tag[1:].isdigit() and self.note is None:
                self.level = int(tag[1:])
            if tag == "pre":
                self.pre += 1
        if tag == "sup" and self.sup is None:
            self.sup = []
        if tag == "a":
            record.href = values.get("href", "")

    def _close_implied(self, tag: str) -> None:
        """``<li>a<li>b`` closes the first item; ``<body>`` closes an unclosed ``<head>``."""
        closes = {"li": "li", "body": "head"}.get(tag)
        opened = [i for i, record in enumerate(self.stack) if record.tag == closes]
        if not opened or any(r.tag in ("ol", "ul") for r in self.stack[opened[-1] :]):
            return  # nothing open, or the open item holds the list this one belongs to
        while len(self.stack) > opened[-1]:
            self._close(self.stack.pop())

    def handle_endtag(self, tag: str) -> None:
        if tag == "br" and not self.drop:
            self._break()
        if not any(record.tag == tag for record in self.stack):
            if tag in _BLOCK and not self.drop:
                self._break()  # a stray </p> still ends a paragraph
            return
        while self.stack:
            record = self.stack.pop()
            self._close(record)
            if record.tag == tag:
                return

    def _table_tag(self, tag: str, *, start: bool) -> bool:
        """Table structure while a table is open; True when the tag was taken here."""
        table = self.table
        if tag == "table" and start:
            if table is None:
                self._flush()
                line = self.getpos()[0]
                self.table = _Table(line, self.main > 0)
            else:
                table.nested += 1
                self._cell_text(" ")
            return True
        if table is None:
            return False
        if tag == "table":  # a closing tag
            if table.nested:
                table.nested -= 1
            else:
                self.table = None
                self._emit_table(table)
            return True
        if table.nested:
            if tag in ("td", "th", "tr", "br", "p", "div", "li"):
                self._cell_text(" ")
            return tag in ("td", "th", "tr")
        if tag == "caption":
            table.in_caption = start
            return True
        if tag == "tr" and start:
            table.rows.append([])
            table.row_lines.append(self.getpos()[0])
            return True
        if tag in ("td", "th") and start:
            if not table.rows:
                table.rows.append([])
                table.row_lines.append(self.getpos()[0])
            table.rows[-1].append([])
            return True
        if tag in ("br", "p", "div", "li") and (table.in_caption or _open_cell(table)):
            self._cell_text(" ")  # a break inside a cell separates words, not rows
        return tag in ("tr", "td", "th")

    def _cell_text(self, text: str) -> bool:
        """Send text to the open table's caption or current cell; False when none is open."""
        table = self.table
        if table is None:
            return False
        if table.in_caption:
            table.caption.append(text)
        elif (cell := _open_cell(table)) is not None:
            cell.append(text)
        return True

    def _emit_table(self, table: _Table) -> None:
        rows = [[_collapse("".join(cell)) for cell in row] for row in table.rows]
        filled = [
            (n, row, line)
            for n, (row, line) in enumerate(zip(rows, table.row_lines, strict=True), 1)
        ]
        filled = [(n, row, line) for n, row, line in filled if any(row)]
        caption = _collapse("".join(table.caption))
        found: list[Paragraph] = []
        if len(filled) >= 2 and max(len(row) for _, row, _ in filled) >= 2:
            self.tables += 1
            name = caption or f"Table {self.tables}"
            lines = {n: line for n, _, line in filled}
            found = [
                replace(p, line=lines.get(p.place.row, table.line))
                if p.place and p.place.row
                else p
                for p in table_paragraphs(
                    [(n, row) for n, row, _ in filled],
                    line=table.line,
                    caption=caption or None,
                    place=Place(table=name),
                )
            ]
        else:  # layout: a row or a column of boxes, each cell a paragraph as before
            if caption:
                found.append(Paragraph(caption, table.line))
            found.extend(Paragraph(cell, line) for _, row, line in filled for cell in row if cell)
        self.found.extend((paragraph, table.in_main, False) for paragraph in found)

    def _close(self, record: _Open) -> None:
        if record.tag == "title":
            self.in_title = False
        if record.drop:
            self.drop -= 1
            return
        if self._table_tag(record.tag, start=False):
            return
        if record.tag == "sup" and self.sup is not None:
            text, self.sup = "".join(self.sup), None
            match = _MARKER_TEXT.match(text)
            marker = match.group(1).translate(_TO_SUPER) if match else text
            if not self._cell_text(marker):
                self.pieces.append(marker)
        if record.tag == "a" and self.note is not None:
            anchor = "".join(self.pieces[record.text_from :])
            if record.href.startswith("#") and _BACKLINK.match(anchor):
                del self.pieces[record.text_from :]  # the "↩" back to the marker
            elif record.href.startswith(("http://", "https://")) and record.href not in anchor:
                self.pieces.append(f" ({record.href})")  # so the note's urls are known
        if record.block:
            self._break()
            if record.tag == "pre":
                self.pre -= 1
        if record.note_item:
            self._flush()
        if record.main:
            self.main -= 1
        if record.notes:
            self.notes -= 1

    def finish(self) -> list[tuple[Paragraph, bool, bool]]:
        """Close what the page left open and return (paragraph, in main, is a note)."""
        while self.stack:
            self._close(self.stack.pop())
        self._flush()
        return self.found

    def handle_data(self, data: str) -> None:
        if self.in_title:
            self.title.append(data)
        if self.drop:
            return
        if self.sup is None and self._cell_text(data):
            return
        if self.first_line is None and data.strip():
            start = len(data) - len(data.lstrip())
            self.first_line = self.getpos()[0] + data.count("\n", 0, start)
            self.in_main = self.main > 0
            self.is_pre = self.pre > 0
        if self.sup is not None:
            self.sup.append(data)
        else:
            self.pieces.append(data)

    def _break(self) -> None:
        """A block boundary: ends the paragraph, except inside one footnote (kept whole)."""
        if self.note is not None:
            self.pieces.append(" ")
        else:
            self._flush()

    def _flush(self) -> None:
        raw = "".join(self.pieces)
        if self.is_pre:
            text = "\n".join(line.rstrip() for line in raw.strip().split("\n"))
        else:
            text = _collapse(raw)
        if text and self.first_line is not None:
            level = self.level
            if self.note is not None:
                text, level = f"{str(self.note).translate(_TO_SUPER)} {text}", None
            paragraph = Paragraph(text, self.first_line, level=level)
            self.found.append((paragraph, self.in_main, self.note is not None))
        self.pieces, self.first_line, self.level, self.note = [], None, None, None
        self.is_pre = False


def _open_cell(table: _Table) -> list[str] | None:
    return table.rows[-1][-1] if table.rows and table.rows[-1] else None


def _collapse(raw: str) -> str:
    """HTML whitespace -> one space, none between two CJK characters or before a marker."""

    def space(match: re.Match[str]) -> str:
        before = raw[match.start() - 1] if match.start() else ""
        after = raw[match.end()] if match.end() < len(raw) else ""
        if after and after in SUPERSCRIPTS:
            return ""
        return "" if _CJK.match(before) and _CJK.match(after) else " "

    return _SPACE.sub(space, raw).strip()


def decode_html(raw: bytes, source: str) -> str:
    """BOM, else ``<meta charset>`` / http-equiv, else UTF-8; then as a text file (NFC, ``\n``)."""
    encoding = "utf-8"
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encoding = "utf-16"
    elif not raw.startswith(codecs.BOM_UTF8) and (match := _META_CHARSET.search(raw[:4096])):
        label = match.group(1).decode("ascii")
        try:
            name = codecs.lookup(label).name
        except LookupError:
            raise DocumentParseError(source, f"unknown charset {label!r}") from None
        encoding = _CODEC_ALIASES.get(name, name)
    if encoding != "utf-8":
        try:
            raw = raw.decode(encoding).encode("utf-8")
        except UnicodeDecodeError as exc:
            bad = raw[exc.start : exc.start + 1]
            raise DocumentParseError(
                source, f"not valid {encoding} (byte {exc.start}: {bad!r})"
            ) from None
    return canonical_text(raw, source)


def html_paragraphs(text: str) -> tuple[list[Paragraph], str]:
    """The main content's paragraphs (footnote lists kept wherever they are) and ``<title>``."""
    parser = _Extractor()
    parser.feed(text)
    parser.close()
    found = parser.finish()
    if parser.saw_main and any(in_main for _, in_main, _ in found):
        found = [item for item in found if item[1] or item[2]]
    return [paragraph for paragraph, _, _ in found], _collapse("".join(parser.title))


def read_html_document(raw: bytes, *, doc_id: str, source_path: str, content_hash: str) -> Document:
    paragraphs, title = html_paragraphs(decode_html(raw, source_path))
    if not paragraphs:
        raise DocumentParseError(source_path, "no text content in the HTML body")
    document = build_document(
        paragraphs, doc_id=doc_id, source_path=source_path, content_hash=content_hash, format="html"
    )
    if title and not any(h.level == 1 for h in document.headings):
        document = replace(document, title=title)
    return document
