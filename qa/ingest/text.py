"""Plain-text and Markdown reader: decode, normalise, cut into paragraphs for ``structure``.

Files are decoded as they are (``decode_text``): UTF-8, a byte-order mark's UTF-16/32, or the
encoding charset-normalizer detects (Big5, GB18030, Shift_JIS, Latin-1 ...), said in the
document's warnings when it is a guess.

A ``.txt`` line is a paragraph (news pages and PDF extractions put one per line); in Markdown,
consecutive lines form a paragraph, headings stand alone and fenced code stays one block. A
Markdown heading becomes its title alone, with its level on the ``Paragraph`` (the ``#`` markers
are syntax, not text a citation should quote); a footnote definition (``[^2]: …``) starts a
paragraph of its own even on the line right after another one, as definitions are usually written.
"""

from __future__ import annotations

import codecs
import re
import unicodedata
from dataclasses import replace

from qa.errors import DocumentParseError
from qa.ingest.structure import Paragraph, build_document
from qa.types import Document

_CODE_FENCE = re.compile(r"^(```|~~~)")
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")
_MARKDOWN_NOTE_DEF = re.compile(r"^\[\^\d+\]:")


def canonical_text(raw: bytes, source: str) -> str:
    """UTF-8 (BOM dropped), NFC, ``\\n`` newlines."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        position = exc.start + (3 if raw.startswith(codecs.BOM_UTF8) else 0)
        raise DocumentParseError(
            source, f"not valid UTF-8 (byte {position}: {raw[position : position + 1]!r})"
        ) from None
    return _normalized(text, source)


def decode_text(raw: bytes, source: str) -> tuple[str, tuple[str, ...]]:
    """The text of a text file in whatever encoding it is, and a warning naming the encoding
    when it was not UTF-8.

    A byte-order mark decides (UTF-8, UTF-16 or UTF-32); else valid UTF-8 is UTF-8 (ASCII
    included); else charset-normalizer picks the encoding whose decoding reads most like
    language (Big5, GB18030, Shift_JIS, EUC-KR, Latin-1/cp1252 ...). A guess can be wrong, so
    it is said: ``Document.warnings`` carries "read as big5 (not UTF-8; detected)", and
    ``qa ingest`` prints it. Bytes no encoding fits are an error naming the first bad byte.
    """
    for bom, encoding in _BOMS:
        if raw.startswith(bom):
            try:
                text = raw[len(bom) :].decode(encoding)
            except UnicodeDecodeError as exc:
                position = exc.start + len(bom)
                if encoding == "utf-8":
                    reason = f"not valid UTF-8 (byte {position}: {raw[position : position + 1]!r})"
                else:
                    reason = (
                        f"not valid UTF-8 (byte 0: {raw[:1]!r}), nor {encoding} after its "
                        f"byte-order mark ({exc.reason} at byte {position})"
                    )
                raise DocumentParseError(source, reason) from None
            note = () if encoding == "utf-8" else (f"read as {encoding} (byte-order mark)",)
            return _normalized(text, source), note
    try:
        return _normalized(raw.decode("utf-8"), source), ()
    except UnicodeDecodeError as exc:
        position = exc.start
    bad = f"not valid UTF-8 (byte {position}: {raw[position : position + 1]!r})"
    first = _NON_ASCII.search(raw)
    if first is not None and first.start() < position:
        # Characters before the bad byte decoded as UTF-8: a damaged UTF-8 file, not another
        # encoding (Big5, GB18030 or Latin-1 text fails at its first non-ASCII byte).
        raise DocumentParseError(source, bad)
    from charset_normalizer import from_bytes

    matches = from_bytes(raw)
    best = matches.best()
    if best is None or best.encoding in ("utf_8", "ascii"):
        raise DocumentParseError(source, f"{bad}, and no other encoding fits")
    # Single-byte encodings often tie (the letters of "naïve" exist in cp1250 and cp1252 alike,
    # as different bytes); a tie goes to Windows-1252, what browsers read "Latin-1" as.
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    best = next((m for m in tied if m.encoding in _PREFERRED_ON_TIE), best)
    encoding = best.encoding.replace("_", "-")
    return _normalized(str(best), source), (f"read as {encoding} (not UTF-8; detected)",)


_NON_ASCII = re.compile(rb"[\x80-\xff]")
_PREFERRED_ON_TIE = ("cp1252", "latin_1")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),  # before UTF-16 LE, whose mark it starts with
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)


def _normalized(text: str, source: str) -> str:
    if "\x00" in text:
        raise DocumentParseError(source, "contains NUL bytes; is it a binary file?")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return unicodedata.normalize("NFC", text)


def text_paragraphs(text: str) -> list[Paragraph]:
    return [
        Paragraph(line.strip(), number)
        for number, line in enumerate(text.split("\n"), start=1)
        if line.strip()
    ]


def markdown_paragraphs(text: str) -> list[Paragraph]:
    paragraphs: list[Paragraph] = []
    lines: list[str] = []
    first = 0
    in_code = False

    def flush() -> None:
        if lines:
            paragraphs.append(Paragraph("\n".join(lines).strip(), first))
            lines.clear()

    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.strip()
        if _CODE_FENCE.match(stripped):
            if not in_code:
                flush()
            in_code = not in_code
        elif in_code:
            pass
        elif not stripped:
            flush()
            continue
        elif heading := _MARKDOWN_HEADING.match(stripped):
            flush()
            paragraphs.append(Paragraph(heading.group(2), number, level=len(heading.group(1))))
            continue
        elif _MARKDOWN_NOTE_DEF.match(stripped):
            flush()
        if not lines:
            first = number
        lines.append(line.rstrip() if in_code or _CODE_FENCE.match(stripped) else stripped)
        if not in_code and _CODE_FENCE.match(stripped):
            flush()
    flush()
    return paragraphs


def read_text_document(
    raw: bytes, *, doc_id: str, source_path: str, content_hash: str, markdown: bool
) -> Document:
    text, warnings = decode_text(raw, source_path)
    paragraphs = markdown_paragraphs(text) if markdown else text_paragraphs(text)
    if not paragraphs:
        raise DocumentParseError(source_path, "the file is empty")
    document = build_document(
        paragraphs,
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="markdown" if markdown else "text",
        markdown=markdown,
    )
    return replace(document, warnings=warnings) if warnings else document
