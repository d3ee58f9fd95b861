"""PDF reader: the text layer via pdfminer.six (pure Python, maps CJK CID fonts to Unicode).

One ``Paragraph`` per text box, in pdfminer's reading order, with its page. Running headers,
footers and page numbers are dropped so they do not cut sentences; small raised digits become
superscript markers so footnote references link as in a text file. ``line`` counts the text
lines kept from the text layer (a PDF has no source lines of its own).

The title is the document information's ``/Title`` (unless it is a placeholder such as
reportlab's "untitled" or a file name such as "Microsoft Word - draft.docx"), else the first
heading, else the ``doc_id``: never the opening words of a body paragraph. A text layer that
does not look like text (``qa.ingest.quality``) is kept, with ``Document.warnings`` saying why.

A page without a text layer (a scan) is read by OCR (``qa.ingest.ocr``) when its libraries are
installed: its lines become boxes like a text layer's, go through the same running-head and
paragraph handling, and each keeps its box on the page (``Document.boxes``, and a citation's
``boxes``). The warnings name the pages read so, since OCR can misread; without the libraries,
they name the pages left unread and the pip command.
"""

from __future__ import annotations

import io
import math
import re
import statistics
import unicodedata
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace

from pdfminer.high_level import extract_pages
from pdfminer.layout import LAParams, LTAnno, LTChar, LTPage, LTTextBox, LTTextLine
from pdfminer.pdfdocument import PDFDocument, PDFEncryptionError, PDFPasswordIncorrect
from pdfminer.pdfparser import PDFParser
from pdfminer.pdftypes import resolve1
from pdfminer.utils import decode_text

from qa.errors import DocumentParseError
from qa.ingest.ocr import Rect
from qa.ingest.quality import text_layer_warnings
from qa.ingest.structure import SUPERSCRIPTS, Paragraph, build_document
from qa.scripts import WIDE, WIDE_WITHOUT_HANGUL
from qa.types import Document, TextBox

_CJK = re.compile(f"[{WIDE}]")
_VIRTUAL_SPACE = "\x00"
_CJK_GAP = re.compile(rf"(?<=[{WIDE_WITHOUT_HANGUL}])\x00+(?=[{WIDE_WITHOUT_HANGUL}])")
_UNMAPPED = re.compile(r"\(cid:\d+\)")
# Kangxi radicals and ligatures that CJK/Latin fonts often map glyphs to instead of the letter.
_COMPAT = re.compile(r"[\u2e80-\u2fdf\ufb00-\ufb06]")
_ROMAN = r"(?=[ivxlc])c{0,3}(?:xc|xl|l?x{0,3})(?:ix|iv|v?i{0,3})"
_PAGE_NUMBER = re.compile(  # 12, - 12 -, 頁 12, 第 12 頁, Page 3 of 9, 3/9, xii
    rf"^[-–—]?\s*(?:(?:page|p\.|頁|页|第)\s*)?(?:\d{{1,4}}|{_ROMAN})"
    r"(?:\s*(?:頁|页|/\s*\d{1,4}|of\s+\d{1,4}))?\s*[-–—]?$",
    re.IGNORECASE,
)
_TO_SUPER = str.maketrans("0123456789", SUPERSCRIPTS)
_EDGE_BAND = 0.08  # top/bottom share of the page where running heads and folios live
_RUNNING_SHARE = 0.4  # a head on 40% of pages is running (alternating heads cover half each)
_PLACEHOLDER_TITLE = re.compile(
    r"^(?:untitled|unknown|anonymous|无题|無題|document\d*)$"
    r"|\.(?:docx?|pdf|rtf|odt|pptx?|xlsx?|txt|tex|indd|html?)$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class _Box:
    lines: tuple[str, ...]
    edge: bool  # at the top or bottom of its page
    # OCR'd lines only: each line's box (x0, top, x1, bottom; points from the top-left)
    rects: tuple[tuple[float, float, float, float], ...] = ()

    @property
    def text(self) -> str:
        return " ".join(self.lines)


def read_pdf_document(raw: bytes, *, doc_id: str, source_path: str, content_hash: str) -> Document:
    pages, unmapped = _extract(raw, source_path)
    blank = [number for number, boxes in enumerate(pages, start=1) if not boxes]
    ocr_notes: tuple[str, ...] = ()
    if blank and not unmapped:
        pages, ocr_notes = _with_ocr(raw, pages, blank)
    paragraphs: list[Paragraph] = []
    scanned: list[tuple[int, _Box]] = []  # (line, box) of OCR'd paragraphs
    line = 1
    for number, boxes in enumerate(_drop_running(pages), start=1):
        for box in boxes:
            paragraphs.append(Paragraph(join_lines(box.lines), line, page=number))
            if box.rects:
                scanned.append((line, box))
            line += len(box.lines)
    if not paragraphs:
        reason = "no text layer (scanned PDF?)"
        if unmapped:
            reason = "text layer without Unicode mapping (fonts lack a ToUnicode map)"
        elif ocr_notes and ocr_notes[0].startswith("OCR"):
            reason = "no text layer (scanned PDF?), and OCR found no text on any page"
        elif ocr_notes:
            reason = f"no text layer (scanned PDF?); {ocr_notes[0]}"
        raise DocumentParseError(source_path, reason)
    document = build_document(
        paragraphs,
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="pdf",
        title_from_body=False,
    )
    return replace(
        document,
        title=_info_title(raw) or document.title,
        warnings=text_layer_warnings(document.text, unmapped=unmapped) + ocr_notes,
        boxes=scanned_boxes(document, [(line, box.lines, box.rects) for line, box in scanned]),
    )


def _with_ocr(
    raw: bytes, pages: list[list[_Box]], blank: list[int]
) -> tuple[list[list[_Box]], tuple[str, ...]]:
    """``pages`` with the blank ones read by OCR, and a warning saying which were."""
    from qa.ingest import ocr

    listed = _page_list(blank)
    if not ocr.available():
        return pages, (
            f"{listed} without a text layer not read: OCR needs rapidocr-onnxruntime and "
            "pypdfium2 (pip install rapidocr-onnxruntime pypdfium2)",
        )
    try:
        found = ocr.ocr_pages(raw, blank)
    except Exception as exc:  # pdfium or onnxruntime on a page pdfminer could read
        return pages, (f"{listed} without a text layer: OCR failed ({exc or type(exc).__name__})",)
    pages = list(pages)
    for number, paragraphs in found.items():
        top = min((p.lines[0].box[1] for p in paragraphs), default=0.0)
        bottom = max((p.lines[-1].box[3] for p in paragraphs), default=0.0)
        boxes: list[_Box] = []
        for p in paragraphs:
            kept = [(text, line.box) for line in p.lines if (text := _clean(line.text))]
            if kept:
                edge = p.edge or p.lines[0].box[1] <= top or p.lines[-1].box[3] >= bottom
                boxes.append(_Box(tuple(t for t, _ in kept), edge, tuple(r for _, r in kept)))
        pages[number - 1] = boxes
    read = [n for n in blank if found.get(n)]
    if not read:
        return pages, (f"OCR found no text on {listed} without a text layer",)
    return pages, (f"{_page_list(read)} read by OCR (no text layer): recognition can err",)


def _page_list(numbers: list[int]) -> str:
    return ("page " if len(numbers) == 1 else "pages ") + ", ".join(map(str, numbers))


def scanned_boxes(
    document: Document, scanned: list[tuple[int, tuple[str, ...], tuple[Rect, ...]]]
) -> tuple[TextBox, ...]:
    """Each OCR'd line's characters in the canonical text, with its page and box, from the
    OCR'd paragraphs as ``(first line number, lines, their boxes)``.

    A paragraph is one piece of the canonical text, found by its first line number
    (``line_runs`` maps piece starts to lines); line k starts where joining lines 0..k ends
    less line k's own length (``join_lines`` only ever drops a hyphen or adds a space before).
    """
    starts = {line: offset for offset, line in document.line_runs}
    found: list[TextBox] = []
    for line, lines, rects in scanned:
        offset = starts.get(line)
        if offset is None:
            continue
        page = document.page_of(offset) or 0
        for k, (text, rect) in enumerate(zip(lines, rects, strict=True)):
            end = offset + len(join_lines(lines[: k + 1]))
            if document.text[end - len(text) : end] == text:
                found.append(TextBox(end - len(text), end, page, *rect))
    return tuple(sorted(found, key=lambda b: b.char_start))


def _info_title(raw: bytes) -> str:
    """The document information's ``/Title``; empty when missing, a placeholder or a file name."""
    try:
        infos = PDFDocument(PDFParser(io.BytesIO(raw))).info
    except Exception:  # the page extraction that ran first reports a damaged file
        return ""
    for info in infos:
        value = resolve1(info.get("Title"))
        if isinstance(value, bytes):
            value = decode_text(value)
        if isinstance(value, str):
            title = unicodedata.normalize("NFC", " ".join(value.split()))
            if title and not _PLACEHOLDER_TITLE.search(title):
                return title
    return ""


def _extract(raw: bytes, source: str) -> tuple[list[list[_Box]], int]:
    """Text boxes per page, and how many glyphs had no Unicode mapping."""
    pages: list[list[_Box]] = []
    unmapped = 0
    for layout in _layouts(raw, source):
        boxes, missing = _page_boxes(layout)
        pages.append(boxes)
        unmapped += missing
    return pages, unmapped


def _layouts(raw: bytes, source: str) -> Iterator[LTPage]:
    """pdfminer's pages; its errors (of many kinds on damaged files) become parse errors."""
    layouts = extract_pages(io.BytesIO(raw), laparams=LAParams())
    while True:
        try:
            layout = next(layouts, None)
        except PDFPasswordIncorrect:
            raise DocumentParseError(source, "encrypted PDF: a password is needed") from None
        except PDFEncryptionError as exc:
            raise DocumentParseError(source, f"encrypted PDF that cannot be read ({exc})") from None
        except Exception as exc:
            reason = str(exc) or type(exc).__name__
            raise DocumentParseError(source, f"not a readable PDF ({reason})") from None
        if layout is None:
            return
        yield layout


def _page_boxes(layout: LTPage) -> tuple[list[_Box], int]:
    found: list[tuple[tuple[str, ...], float, float]] = []
    unmapped = 0
    for element in layout:
        if isinstance(element, LTTextBox):
            raw = [_line_text(line) for line in element if isinstance(line, LTTextLine)]
            unmapped += sum(len(_UNMAPPED.findall(line)) for line in raw)
            if lines := tuple(text for line in raw if (text := _clean(line))):
                found.append((lines, element.y0, element.y1))
    top = max((y1 for _, _, y1 in found), default=0.0)
    bottom = min((y0 for _, y0, _ in found), default=0.0)
    band = layout.height * _EDGE_BAND
    boxes = [
        _Box(lines, y1 >= top or y0 <= bottom or y0 >= layout.height - band or y1 <= band)
        for lines, y0, y1 in found
    ]
    return boxes, unmapped


def _line_text(line: LTTextLine) -> str:
    """A line's raw text; digits set smaller and raised above the line are footnote markers."""
    chars = [item for item in line if isinstance(item, LTChar)]
    if not chars:
        return ""
    size = Counter(round(c.size, 1) for c in chars).most_common(1)[0][0]
    bottom = statistics.median(c.y0 for c in chars if round(c.size, 1) == size)
    parts: list[str] = []
    for item in line:
        if isinstance(item, LTChar):
            text = item.get_text()
            if text.isdigit() and item.size <= 0.8 * size and item.y0 >= bottom + 0.25 * size:
                text = text.translate(_TO_SUPER)
            parts.append(text)
        elif isinstance(item, LTAnno) and item.get_text() == " ":
            parts.append(_VIRTUAL_SPACE)  # a gap pdfminer saw, not a space glyph
    return "".join(parts)


def _clean(text: str) -> str:
    """Unmapped glyphs out, no gap between CJK characters, radicals/ligatures as letters, NFC."""
    text = _CJK_GAP.sub("", _UNMAPPED.sub("", text)).replace(_VIRTUAL_SPACE, " ")
    text = _COMPAT.sub(lambda m: unicodedata.normalize("NFKC", m.group()), text)
    text = re.sub(rf"\s+(?=[{SUPERSCRIPTS}])", "", re.sub(r"\s+", " ", text))
    return unicodedata.normalize("NFC", text).strip()


def join_lines(lines: tuple[str, ...]) -> str:
    """Lines of one box: no separator in CJK, a space in Latin, a word's line-end hyphen gone."""
    text = lines[0]
    for line in lines[1:]:
        if text.endswith("\u00ad"):
            text = text[:-1] + line
        elif re.search(r"[a-z]-$", text) and line[:1].islower():
            text = text[:-1] + line  # "informa-" + "tion"
        elif text.endswith("-") or _CJK.match(text[-1]) or _CJK.match(line[0]):
            text += line
        else:
            text += " " + line
    return text


def _drop_running(pages: list[list[_Box]]) -> list[list[_Box]]:
    """Drop page numbers and short lines repeated at the top or bottom of many pages."""
    seen: Counter[str] = Counter()
    for boxes in pages:
        seen.update({_shape(box.text) for box in boxes if box.edge and len(box.text) <= 80})
    needed = max(2, math.ceil(_RUNNING_SHARE * len(pages)))
    return [
        [
            box
            for box in boxes
            if not (box.edge and (_PAGE_NUMBER.match(box.text) or seen[_shape(box.text)] >= needed))
        ]
        for boxes in pages
    ]


def _shape(text: str) -> str:
    """Running heads differ only in their page number: compare with digits masked."""
    return re.sub(r"\d+", "#", re.sub(r"\s+", "", text))
