"""From paragraphs to a structured ``Document``: headings, footnotes, page-break repair, metadata.

Every reader (text, Markdown, HTML, PDF) hands over ``Paragraph``s with their source line (and
page); this module decides what each paragraph is and assembles the canonical text:

- headings (第N章, 壹、, 一、, （一）, Markdown ``#``, HTML h1-h6, short news subheads) make the
  section tree; a run of chapter headings with nothing between them is a table of contents;
- footnote definitions (``¹¹ 〈…〉``, ``31 “…”``, ``[^3]: …``) leave the body flow and are placed
  after the section of their first marker; ``同註 13、註 19`` is resolved to the notes it names;
- a body paragraph that stops mid-sentence where a page ends (footnote block or page boundary
  in between) is joined with its continuation, so chunks hold whole sentences;
- a news page's dateline, author line, editorial boilerplate, "more reports" list and related
  stories become their own labelled blocks, never part of the article body;
- a table's caption and rows (a ``Paragraph`` whose ``place`` names a table or a row) are a
  ``table`` block of their own, never classified as headings or notes: a row that starts with
  "1" and holds a year is data, not footnote 1. Each table is its own block, so no passage
  mixes two tables or a table and the prose around it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from qa.types import Block, Document, Footnote, Heading, Place

SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
_SUPER_TO_DIGIT = str.maketrans(SUPERSCRIPTS, "0123456789")
_CJK_NUM = "一二三四五六七八九十百零〇两兩"
_FORMAL_NUM = "壹貳參肆伍陸柒捌玖拾貮叁"
_HEADING_PATTERNS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (1, re.compile(rf"^第[{_CJK_NUM}\d]+[章篇部]\s*\S.*$")),
    (2, re.compile(rf"^[{_FORMAL_NUM}]+、\s*\S.*$")),
    (3, re.compile(rf"^[{_CJK_NUM}]+、\s*\S.*$")),
    (4, re.compile(rf"^[（(][{_CJK_NUM}]+[)）]\s*\S.*$")),
)
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")
_SENTENCE_PUNCT = tuple("。，；：！？.,;:!?")
_COMPLETE_END = re.compile(rf"[。！？!?.…」』”\"’）)》>]+[{SUPERSCRIPTS}]*$|[{SUPERSCRIPTS}]+$")
_NOTE_DEF = re.compile(
    rf"^(?:(?P<sup>[{SUPERSCRIPTS}]+)|(?P<num>\d{{1,3}})(?!\d|[.,]\d)|\[\^(?P<md>\d+)\]:)\s*"
)
_NOTE_LIKE = re.compile(r"https?://|[〈《“\"]|同註|同前註|ibid|\b(?:19|20)\d\d\b", re.IGNORECASE)
MARKER = re.compile(rf"[{SUPERSCRIPTS}]+|\[\^(\d+)\]")
_CROSS_REF = re.compile(r"(?:同)?註\s*(\d+)")
_URL = re.compile(r"https?://[^\s<>」』）)\]，。]+")
_DATELINE = re.compile(r"^date\s+(\d{4}-\d{2}-\d{2})\s+(.*)$")
_AUTHOR_LINE = re.compile(r"^([^\s*＊]{2,20})[*＊]$")
_AUTHOR_NOTE = re.compile(r"^[*＊]\s*\S")
_BIO = re.compile(r"^[●•◎]\s*(?:作者|記者|撰文)[：:]\s*([^／/，,。\s]+)")
_BOILERPLATE = re.compile(r"^[●•◎]")
_MORE_REPORTS = re.compile(r"^(?:更多.{0,30}(?:報導|新聞)|延伸閱讀|看更多|相關報導)$")
_RELATED = re.compile(r"^(?:其他人也在看|相關新聞|推薦閱讀|你可能也喜歡|熱門新聞)$")
_TRAILING_AUTHOR = re.compile(r"[（(][^（）()]{1,20}[)）]$")
_MAX_HEADING_CHARS = 60
_MAX_SUBHEAD_CHARS = 25


# Formats whose readers mark every note themselves (a superscript marker, a ``¹ …`` definition):
# there a paragraph opening with a plain number ("1 million tonnes in 2025") is text, never a
# note definition guessed from its numbering, as it must be for text files and PDFs.
MARKED_NOTES = frozenset({"docx", "pptx", "odt", "xlsx", "csv"})


@dataclass(frozen=True)
class Paragraph:
    """One paragraph as a reader found it; ``level`` is set when the format marks a heading."""

    text: str
    line: int
    page: int | None = None
    level: int | None = None
    place: Place | None = None  # slide, sheet, table, row (formats without pages)

    @property
    def in_table(self) -> bool:
        """A table's caption or one of its rows (a heading that names a sheet is not)."""
        place = self.place
        return bool(
            place and self.level is None and (place.row is not None or place.table is not None)
        )


@dataclass
class _Item:
    kind: str  # heading, body, note, author-note, author, toc, front, boilerplate, nav kinds
    pieces: list[Paragraph]
    level: int = 0
    title: str = ""
    note: int = 0
    section: int = 0


def heading_level(text: str, *, markdown: bool = False) -> tuple[int, str] | None:
    """Level and title of a heading line (第N章, 壹、, 一、, （一）, Markdown ``#``)."""
    line = text.strip()
    if not line or len(line) > _MAX_HEADING_CHARS + 10:
        return None
    if markdown and (match := _MARKDOWN_HEADING.match(line)):
        return len(match.group(1)), match.group(2)
    if len(line) > _MAX_HEADING_CHARS or line.endswith(_SENTENCE_PUNCT):
        return None
    for level, pattern in _HEADING_PATTERNS:
        if pattern.match(line):
            return level, line
    return None


def build_document(
    paragraphs: list[Paragraph],
    *,
    doc_id: str,
    source_path: str,
    content_hash: str,
    format: str,
    markdown: bool = False,
    title_from_body: bool = True,
) -> Document:
    """``title_from_body=False``: with no level-1 heading or dateline the title is the first
    heading of any level, else the ``doc_id`` (never the opening of a body paragraph)."""
    # Only plain text needs subheads guessed; Markdown, HTML and PDF mark theirs (or have
    # captions and list items that merely look like one).
    items = _classify(
        paragraphs,
        markdown=markdown,
        guess_subheads=format == "text",
        plain_notes=format not in MARKED_NOTES,
    )
    if not markdown:  # Markdown has no pages: a definition between paragraphs is authored there
        items = _join_page_breaks(items)
    _assign_sections(items)
    return _assemble(items, doc_id, source_path, content_hash, format, title_from_body)


def _classify(
    paragraphs: list[Paragraph], *, markdown: bool, guess_subheads: bool, plain_notes: bool = True
) -> list[_Item]:
    items: list[_Item] = []
    next_note = 1
    trailing: str | None = None  # once a "more reports"/"related" list starts, it runs to the end
    starred: list[str] = []  # names on "張務華*" lines: the "* 張務華為…" note is about them
    for index, para in enumerate(paragraphs):
        text = para.text
        following = paragraphs[index + 1].text if index + 1 < len(paragraphs) else ""
        if _MORE_REPORTS.match(text) or _RELATED.match(text):
            trailing = "more-reports" if _MORE_REPORTS.match(text) else "related"
            items.append(_Item("nav-heading:" + trailing, [para], level=1, title=text.strip()))
            continue
        if trailing:
            items.append(_Item(trailing, [para]))
            continue
        if para.in_table:
            items.append(_Item("table", [para]))
            continue
        # A heading the format marks ("## 1 Overview (2024)") is never a footnote definition.
        note = None if para.level else _footnote_number(text, next_note, plain=plain_notes)
        if note is not None:
            items.append(_Item("note", [para], note=note))
            next_note = note + 1
            continue
        heading = (
            (para.level, text.strip()) if para.level else heading_level(text, markdown=markdown)
        )
        next_heading = heading_level(following)
        if heading and heading[0] == 1 and not para.level and next_heading and next_heading[0] == 1:
            items.append(_Item("toc", [para]))  # 第六章… 第七章… with nothing between
            continue
        if heading:
            items.append(_Item("heading", [para], level=heading[0], title=heading[1]))
        elif match := _DATELINE.match(text):
            items.append(_Item("dateline", [para], level=1, title=match.group(2).strip()))
        elif author := _AUTHOR_LINE.match(text):
            items.append(_Item("author", [para]))
            starred.extend(_split_names(author.group(1)))
        elif _AUTHOR_NOTE.match(text) and any(name in text for name in starred):
            items.append(_Item("author-note", [para]))  # not a "* item" bullet list
        elif _BIO.match(text):
            items.append(_Item("author", [para]))
        elif _BOILERPLATE.match(text):
            items.append(_Item("boilerplate", [para]))
        elif guess_subheads and _is_subhead(text, items, following):
            items.append(_Item("heading", [para], level=2, title=text.strip()))
        elif (
            not any(i.kind in ("heading", "dateline", "body") for i in items)
            and len(text) <= 20
            and (not _complete(text) or not any(ch.isalnum() for ch in text))  # "PART 3", "....."
        ):
            items.append(_Item("front", [para]))  # "PART 3", "東北亞區域" before the chapter
        else:
            items.append(_Item("body", [para]))
    if not any(_opens_section(i) or i.kind == "toc" for i in items):
        for item in items:  # with no heading to precede, short lines are the text itself
            item.kind = "body" if item.kind == "front" else item.kind
    return items


def _split_names(names: str) -> list[str]:
    return [name for name in re.split(r"[、，,]", names) if name]


def _footnote_number(text: str, expected: int, *, plain: bool = True) -> int | None:
    """The note a paragraph defines: ``¹ …``, ``[^1]: …``, or (``plain``) ``1 …`` that looks
    like one and continues the numbering."""
    match = _NOTE_DEF.match(text)
    if not match or match.end() == len(text) or (match.group("num") and not plain):
        return None
    if match.group("sup"):
        return int(match.group("sup").translate(_SUPER_TO_DIGIT))
    if match.group("md"):
        return int(match.group("md"))
    number = int(match.group("num"))
    # A plain number opens a note only where the numbering continues and it looks like one.
    if number == expected and _NOTE_LIKE.search(text[match.end() :]):
        return number
    return None


def _is_subhead(text: str, items: list[_Item], following: str) -> bool:
    """A short unpunctuated line between two body paragraphs (news subheads)."""
    stripped = text.strip()
    return bool(
        items
        and items[-1].kind == "body"
        and len(stripped) <= _MAX_SUBHEAD_CHARS
        and not any(p in stripped for p in "。，；：！？,;!?")
        and len(following) >= 2 * _MAX_SUBHEAD_CHARS
    )


def _complete(text: str) -> bool:
    return bool(_COMPLETE_END.search(text.rstrip()))


def _join_page_breaks(items: list[_Item]) -> list[_Item]:
    """Join a body paragraph cut at a page end with the body paragraph that continues it."""
    joined: list[_Item] = []
    last_body: _Item | None = None
    crossed = False  # a footnote block, author note or page boundary lies since last_body
    for item in items:
        if item.kind == "body":
            page_turned = last_body is not None and item.pieces[0].page != last_body.pieces[-1].page
            if (
                last_body is not None
                and (crossed or page_turned)
                and not _complete(last_body.pieces[-1].text)
            ):
                last_body.pieces.extend(item.pieces)
                crossed = False
                continue
            last_body, crossed = item, False
        elif item.kind in ("note", "author-note"):
            crossed = True
        else:
            last_body, crossed = None, False
        joined.append(item)
    return joined


def _assign_sections(items: list[_Item]) -> None:
    """Section = index of the heading in force; a note goes to the section of its first marker."""
    section = 0
    first_marker: dict[int, int] = {}
    author_section: int | None = None
    for item in items:
        if _opens_section(item):
            section += 1
        item.section = section
        if item.kind == "author" and author_section is None:
            author_section = section
        if item.kind in ("body", "author", "table"):
            for piece in item.pieces:
                for _, n in find_markers(piece.text):
                    first_marker.setdefault(n, section)
    for item in items:
        if item.kind == "note":
            item.section = first_marker.get(item.note, item.section)
        elif item.kind == "author-note" and author_section is not None:
            item.section = author_section  # the "* 張務華為…" note joins the "張務華*" line


def _opens_section(item: _Item) -> bool:
    return item.kind in ("heading", "dateline") or item.kind.startswith("nav-heading")


def find_markers(text: str) -> list[tuple[int, int]]:
    """(offset, number) of footnote markers: superscript digits or Markdown ``[^n]``."""
    found = []
    for match in MARKER.finditer(text):
        digits = match.group(1) or match.group().translate(_SUPER_TO_DIGIT)
        found.append((match.start(), int(digits)))
    return found


def _assemble(
    items: list[_Item],
    doc_id: str,
    source_path: str,
    content_hash: str,
    format: str,
    title_from_body: bool = True,
) -> Document:
    group = {"author-note": 1, "note": 2}
    order = sorted(
        range(len(items)),
        key=lambda i: (items[i].section, group.get(items[i].kind, 0), items[i].note, i),
    )
    title, authors, date = _metadata(items, title_from_body)
    text_parts: list[str] = []
    offset = 0
    line_runs: list[tuple[int, int]] = []
    page_runs: list[tuple[int, int]] = []
    blocks: list[Block] = []
    headings: list[Heading] = []
    footnotes: list[Footnote] = []
    markers: list[tuple[int, int]] = []
    places: list[tuple[int, Place]] = []
    last_table: tuple[str | None, str | None] | None = None
    for position, index in enumerate(order):
        item = items[index]
        if position:
            text_parts.append("\n\n")
            offset += 2
        start = offset
        for number, piece in enumerate(item.pieces):
            if number:
                glue = " " if _needs_space(item.pieces[number - 1].text, piece.text) else ""
                text_parts.append(glue)
                offset += len(glue)
            line_runs.append((offset, piece.line))
            if piece.page is not None and (not page_runs or page_runs[-1][1] != piece.page):
                page_runs.append((offset, piece.page))
            place = piece.place or _NOWHERE
            if (places and places[-1][1] != place) or (not places and place != _NOWHERE):
                places.append((offset, place))
            if item.kind in ("body", "author", "table"):
                markers.extend((offset + o, n) for o, n in find_markers(piece.text))
            text_parts.append(piece.text)
            offset += len(piece.text)
        kind = _block_kind(item)
        table = _table_of(item) if kind == "table" else None
        same_table = kind != "table" or table == last_table
        last_table = table
        if blocks and blocks[-1].kind == kind and same_table:
            blocks[-1] = Block(kind, blocks[-1].char_start, offset)
        else:
            blocks.append(Block(kind, start, offset))
        if _opens_section(item):
            headings.append(
                Heading(item.level, title if item.kind == "dateline" else item.title, start)
            )
        if item.kind == "note":
            footnotes.append(_footnote(item, start, offset))
    return Document(
        doc_id=doc_id,
        title=title or doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format=format,
        text="".join(text_parts),
        authors=authors,
        date=date,
        headings=tuple(headings),
        blocks=tuple(blocks),
        footnotes=tuple(footnotes),
        markers=tuple(markers),
        line_runs=tuple(line_runs),
        page_runs=tuple(page_runs),
        places=tuple(places),
    )


_NOWHERE = Place()


def _table_of(item: _Item) -> tuple[str | None, str | None]:
    """Which table an item belongs to: (sheet, table); a new one starts a new block."""
    place = item.pieces[0].place or _NOWHERE
    return place.sheet, place.table


def _block_kind(item: _Item) -> str:
    if item.kind == "note":
        return "footnotes"
    if item.kind == "author-note":
        return "author"
    if item.kind.startswith("nav-heading:"):
        return item.kind.split(":", 1)[1]
    if item.kind in ("heading", "dateline"):
        return "body"  # a heading starts the passage it titles
    return item.kind


def _needs_space(left: str, right: str) -> bool:
    return bool(
        left
        and right
        and left[-1].isascii()
        and left[-1].isalnum()
        and right[0].isascii()
        and right[0].isalnum()
    )


def _footnote(item: _Item, start: int, end: int) -> Footnote:
    raw = item.pieces[0].text
    match = _NOTE_DEF.match(raw)
    body = raw[match.end() :] if match else raw
    body = " ".join([body, *(p.text for p in item.pieces[1:])]).strip()
    refs = tuple(int(n) for n in _CROSS_REF.findall(body) if int(n) != item.note)
    urls = tuple(dict.fromkeys(u.rstrip(".,;") for u in _URL.findall(body)))
    return Footnote(item.note, body, urls, refs, start, end)


def _metadata(
    items: list[_Item], title_from_body: bool = True
) -> tuple[str, tuple[str, ...], str | None]:
    authors: list[str] = []
    for item in items:
        line = item.pieces[0].text.strip()
        if item.kind == "author" and (m := _AUTHOR_LINE.match(line) or _BIO.match(line)):
            authors.extend(_split_names(m.group(1)))
    date = None
    title = ""
    for item in items:
        if item.kind == "dateline" and (m := _DATELINE.match(item.pieces[0].text)):
            date, title = m.group(1), _clean_title(m.group(2), authors)
            break
        if item.kind == "heading" and item.level == 1:
            title = item.title
            if _HEADING_PATTERNS[0][1].match(title):
                title = _TRAILING_AUTHOR.sub("", title).strip()
            break
    if not title and title_from_body:
        title = next((i.pieces[0].text.strip()[:200] for i in items if i.kind == "body"), "")
    elif not title:
        title = next((i.title for i in items if i.kind == "heading"), "")
    return title, tuple(dict.fromkeys(authors)), date


def _clean_title(title: str, authors: list[str]) -> str:
    """``名家》鄭仲嵐／日本聯手G7建「民主稀土鏈」`` -> ``日本聯手G7建「民主稀土鏈」``."""
    title = re.sub(r"^[^》]{1,8}》", "", title).strip()
    for author in authors:
        for sep in ("／", "/"):
            if title.startswith(author + sep):
                title = title[len(author) + 1 :].strip()
    return title


def find_headings(text: str, *, markdown: bool = False) -> tuple[Heading, ...]:
    """Headings of a text taken verbatim, one candidate per line (no other structure)."""
    headings: list[Heading] = []
    offset = 0
    for line in text.split("\n"):
        found = heading_level(line, markdown=markdown)
        if found is not None:
            headings.append(Heading(found[0], found[1], offset + len(line) - len(line.lstrip())))
        offset += len(line) + 1
    return tuple(headings)
