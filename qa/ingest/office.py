"""What the Office and e-book readers share: a safe look at the zip container, metadata, tables.

DOCX, PPTX, XLSX and EPUB files are zip archives of XML parts. Before a library parses one:

- a file that is not a zip archive is named as such; an OLE compound file (``D0 CF 11 E0``) is
  a password-protected Office file or a legacy ``.doc``/``.ppt``/``.xls``, which no reader here
  understands, and the message says so instead of "not a zip file";
- an archive that would unpack to more than ``MAX_UNPACKED_BYTES`` is refused before anything
  is decompressed (a zip bomb would otherwise take the worker's memory).

A table becomes one paragraph per row in which every cell is labelled with its column's header
("City: Kaohsiung | 2025: 1,234"): whichever rows a passage holds, it holds the column names
with them, so a question naming a row and a column finds the cell, and no passage is a bare
run of numbers. Rows keep their number (``Place.row``) for the citation.
"""

from __future__ import annotations

import datetime as dt
import io
import re
import unicodedata
import zipfile
from collections.abc import Sequence

from qa.errors import DocumentParseError
from qa.ingest.structure import Paragraph
from qa.types import Place

MAX_UNPACKED_BYTES = 512 * 1024 * 1024
_NOWHERE = Place()
_OLE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_SPACE = re.compile(r"\s+")
# Core-property titles that name nothing (the same list the PDF reader uses for ``/Title``).
_PLACEHOLDER_TITLE = re.compile(
    r"^(?:untitled|unknown|anonymous|无题|無題|document\d*|presentation\d*|book\d*|slide \d+)$"
    r"|\.(?:docx?|pdf|rtf|odt|pptx?|xlsx?|txt|tex|indd|html?|epub)$",
    re.IGNORECASE,
)


def open_zip(raw: bytes, source: str, kind: str) -> zipfile.ZipFile:
    """The archive, checked: a clear reason when it is not one, is encrypted or is too big."""
    if raw.startswith(_OLE):
        raise DocumentParseError(
            source,
            f"not a readable {kind} file: an encrypted (password-protected) Office file or an "
            "old binary format (.doc, .ppt, .xls); save it again in the current format",
        )
    try:
        archive = zipfile.ZipFile(io.BytesIO(raw))
        unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise DocumentParseError(source, f"not a readable {kind} file ({exc})") from None
    if unpacked > MAX_UNPACKED_BYTES:
        raise DocumentParseError(
            source,
            f"{kind} file unpacks to {unpacked} bytes, over the {MAX_UNPACKED_BYTES}-byte limit",
        )
    return archive


def clean(text: str) -> str:
    """One line of text: whitespace runs (newlines and tabs included) -> one space, NFC."""
    return unicodedata.normalize("NFC", _SPACE.sub(" ", text)).strip()


def meta_title(value: object) -> str:
    """A core-property title worth showing: empty when missing or a placeholder/file name."""
    title = clean(value) if isinstance(value, str) else ""
    return "" if _PLACEHOLDER_TITLE.search(title) else title


def meta_authors(value: object) -> tuple[str, ...]:
    """Authors from a core-property "creator" ("A; B" and "A, B" both name two)."""
    if not isinstance(value, str):
        return ()
    return tuple(
        dict.fromkeys(name for part in re.split(r"[;；,，、]", value) if (name := clean(part)))
    )


def meta_date(value: object) -> str | None:
    """``YYYY-MM-DD`` of a core-property date (None when missing)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()[:10]
    return None


def cell_text(value: object) -> str:
    """A cell as a reader sees it: 1234.0 -> 1234, a date -> its ISO date, text on one line."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ") if value.time() != dt.time() else value.date().isoformat()
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    return clean(str(value))


def table_paragraphs(
    rows: Sequence[tuple[int, Sequence[str]]],
    *,
    line: int,
    caption: str | None = None,
    place: Place = _NOWHERE,
    column_names: Sequence[str] = (),
) -> list[Paragraph]:
    """A table as paragraphs: its caption (when it has one), then one line per row after the
    header, each cell labelled with its column ("City: Kaohsiung | 2025: 1,234").

    ``rows`` are ``(row number, cells)`` with cells already as text; the first row with any
    text is the header. A column without a header is named by ``column_names`` (spreadsheet
    letters) or its position. A table of one row has no header: its cells are given as they
    are. ``line`` is the source line of the first paragraph; each further one takes the next.
    """
    rows = [(number, [clean(c) for c in cells]) for number, cells in rows]
    rows = [(number, cells) for number, cells in rows if any(cells)]
    found: list[Paragraph] = []
    if caption:
        found.append(Paragraph(clean(caption), line, place=place))
    if not rows:
        return found
    header = rows[0][1]
    body = rows[1:]
    if not body:  # a single row: nothing to label it with
        body, header = rows, []
    names = [
        header[i] if i < len(header) and header[i] else _column_name(i, column_names)
        for i in range(max(len(cells) for _, cells in rows))
    ]
    for number, cells in body:
        if header:
            parts = [f"{names[i]}: {cell}" for i, cell in enumerate(cells) if cell]
        else:
            parts = [cell for cell in cells if cell]
        row_place = Place(place.slide, place.sheet, place.table, number)
        found.append(Paragraph(" | ".join(parts), line + len(found), place=row_place))
    return found


def _column_name(index: int, column_names: Sequence[str]) -> str:
    if index < len(column_names):
        return column_names[index]
    return f"column {index + 1}"
