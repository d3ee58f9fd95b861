"""Plain-text and Markdown reader: canonical text, title and heading outline."""

from __future__ import annotations

import codecs
import re
import unicodedata

from qa.errors import DocumentParseError
from qa.types import Document, Heading

_CJK_NUM = "一二三四五六七八九十百零〇两兩"
_FORMAL_NUM = "壹貳參肆伍陸柒捌玖拾貮叁"
# (level, pattern) for a whole line; the first match wins.
_HEADING_PATTERNS: tuple[tuple[int, re.Pattern[str]], ...] = (
    (1, re.compile(rf"^第[{_CJK_NUM}\d]+[章篇部]\s*\S.*$")),
    (2, re.compile(rf"^[{_FORMAL_NUM}]+、\s*\S.*$")),
    (3, re.compile(rf"^[{_CJK_NUM}]+、\s*\S.*$")),
    (4, re.compile(rf"^[（(][{_CJK_NUM}]+[)）]\s*\S.*$")),
)
_MARKDOWN_HEADING = re.compile(r"^(#{1,6})\s+(.+?)(?:\s+#+)?\s*$")
_CODE_FENCE = re.compile(r"^(```|~~~)")
_SENTENCE_END = tuple("。，；：！？.,;!?")
_MAX_HEADING_CHARS = 60
_DATELINE = re.compile(r"^date\s+\d{4}-\d{2}-\d{2}\s+")
_TRAILING_AUTHOR = re.compile(r"[（(][^（）()]{1,20}[)）]$")


def canonical_text(raw: bytes, source: str) -> str:
    """UTF-8 (BOM dropped), NFC, ``\\n`` newlines: the text every offset refers to."""
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


def find_headings(text: str, *, markdown: bool) -> tuple[Heading, ...]:
    headings: list[Heading] = []
    offset = 0
    in_code = False
    for line in text.split("\n"):
        if markdown and _CODE_FENCE.match(line.strip()):
            in_code = not in_code
        level_title = None if in_code else _heading(line.strip(), markdown=markdown)
        if level_title is not None:
            level, title = level_title
            headings.append(Heading(level, title, offset + (len(line) - len(line.lstrip()))))
        offset += len(line) + 1
    return tuple(headings)


def _heading(line: str, *, markdown: bool) -> tuple[int, str] | None:
    if not line or len(line) > _MAX_HEADING_CHARS + 10:
        return None
    if markdown:
        match = _MARKDOWN_HEADING.match(line)
        if match:
            return len(match.group(1)), match.group(2)
    if len(line) > _MAX_HEADING_CHARS or line.endswith(_SENTENCE_END):
        return None
    for level, pattern in _HEADING_PATTERNS:
        if pattern.match(line):
            return level, line
    return None


def guess_title(text: str, headings: tuple[Heading, ...], fallback: str) -> str:
    """Markdown H1, else the first chapter heading, else the first non-empty line."""
    for heading in headings:
        if heading.level == 1:
            if _HEADING_PATTERNS[0][1].match(heading.title):  # 第六章 …（author）
                return _TRAILING_AUTHOR.sub("", heading.title).strip()
            return heading.title
    for line in text.split("\n"):
        line = _DATELINE.sub("", line.strip())
        if line:
            return line[:200]
    return fallback


def read_text_document(
    raw: bytes, *, doc_id: str, source_path: str, content_hash: str, markdown: bool
) -> Document:
    text = canonical_text(raw, source_path)
    if not text.strip():
        raise DocumentParseError(source_path, "the file is empty")
    headings = find_headings(text, markdown=markdown)
    return Document.create(
        doc_id=doc_id,
        title=guess_title(text, headings, fallback=doc_id),
        source_path=source_path,
        text=text,
        content_hash=content_hash,
        headings=headings,
    )
