"""Plain-text and Markdown reader: decode, normalise, cut into paragraphs for ``structure``.

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
    text = canonical_text(raw, source_path)
    paragraphs = markdown_paragraphs(text) if markdown else text_paragraphs(text)
    if not paragraphs:
        raise DocumentParseError(source_path, "the file is empty")
    return build_document(
        paragraphs,
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="markdown" if markdown else "text",
        markdown=markdown,
    )
