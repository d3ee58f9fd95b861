"""Spreadsheet readers: .xlsx (openpyxl) and .csv (the standard library's ``csv``).

Each worksheet is a section titled by its name; its rows are a table (``office.
table_paragraphs``): the first row with any value is the header, and every later row is one
line with each cell labelled by its column's header ("City: Kaohsiung | 2025: 1,234"), so
every passage of rows repeats the header it needs and none is a bare run of numbers. A row's
citation carries the sheet's name and the row number the spreadsheet shows (``Place``), and
``line`` is that row number too.

Cells are read as the file last computed them (``data_only``: a formula gives its cached
value; a workbook never opened in a spreadsheet program has none, and such cells are empty).
Hidden sheets are read too: hiding is layout, not deletion. A CSV file is decoded like a text
file (``text.decode_text``), its delimiter sniffed from its first lines (comma, semicolon, tab
or bar), and it is one sheet without a name.
"""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from typing import Any

from qa.errors import DocumentParseError
from qa.ingest.office import (
    cell_text,
    meta_authors,
    meta_date,
    meta_title,
    open_zip,
    table_paragraphs,
)
from qa.ingest.structure import Paragraph, build_document
from qa.ingest.text import decode_text
from qa.types import Document, Place

MAX_CELLS = 2_000_000  # a sheet this large is data for a database, not a document to cite


def read_xlsx_document(raw: bytes, *, doc_id: str, source_path: str, content_hash: str) -> Document:
    open_zip(raw, source_path, "Excel (.xlsx)")
    workbook = _open(raw, source_path)
    try:
        paragraphs: list[Paragraph] = []
        cells = 0
        for sheet in workbook.worksheets:
            rows: list[tuple[int, list[str]]] = []
            for number, values in enumerate(sheet.iter_rows(values_only=True), start=1):
                cells += len(values)
                if cells > MAX_CELLS:
                    raise DocumentParseError(
                        source_path, f"more than {MAX_CELLS} cells; not read as a document"
                    )
                texts = [cell_text(v) for v in values]
                if any(texts):
                    rows.append((number, texts))
            if not rows:
                continue
            place = Place(sheet=sheet.title)
            paragraphs.append(Paragraph(sheet.title, rows[0][0], level=1, place=place))
            paragraphs.extend(
                table_paragraphs(rows, line=rows[0][0], place=place, column_names=_letters())
            )
            _renumber_lines(paragraphs)
        props = workbook.properties
    except DocumentParseError:
        raise
    except Exception as exc:  # read-only mode parses each sheet only as it is read
        reason = str(exc) or type(exc).__name__
        raise DocumentParseError(
            source_path, f"not a readable Excel (.xlsx) file ({reason})"
        ) from None
    finally:
        workbook.close()
    if not paragraphs:
        raise DocumentParseError(source_path, "no cell with a value in any sheet")
    document = build_document(
        paragraphs,
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="xlsx",
        title_from_body=False,
    )
    return replace(
        document,
        title=meta_title(props.title) or doc_id,
        authors=meta_authors(props.creator),
        date=meta_date(props.created),
    )


def _open(raw: bytes, source: str) -> Any:
    import openpyxl

    try:
        return openpyxl.load_workbook(io.BytesIO(raw), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds on a damaged workbook
        reason = str(exc) or type(exc).__name__
        raise DocumentParseError(source, f"not a readable Excel (.xlsx) file ({reason})") from None


def _letters() -> list[str]:
    from openpyxl.utils import get_column_letter

    return [f"column {get_column_letter(i)}" for i in range(1, 703)]


def _renumber_lines(paragraphs: list[Paragraph]) -> None:
    """A row's ``line`` is its row number (the sheet's heading takes its first row's)."""
    for index, paragraph in enumerate(paragraphs):
        if paragraph.place is not None and paragraph.place.row is not None:
            paragraphs[index] = replace(paragraph, line=paragraph.place.row)


def read_csv_document(raw: bytes, *, doc_id: str, source_path: str, content_hash: str) -> Document:
    text, warnings = decode_text(raw, source_path)
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text), dialect)
    rows: list[tuple[int, list[str]]] = []
    lines: dict[int, int] = {}
    start = 1
    try:
        for number, record in enumerate(reader, start=1):
            if any(cell.strip() for cell in record):
                rows.append((number, record))
                lines[number] = start
            start = reader.line_num + 1
            if number * max(len(record), 1) > MAX_CELLS:
                raise DocumentParseError(
                    source_path, f"more than {MAX_CELLS} cells; not read as a document"
                )
    except csv.Error as exc:
        raise DocumentParseError(
            source_path, f"not readable as CSV (line {reader.line_num}: {exc})"
        ) from None
    paragraphs = table_paragraphs(rows, line=1, place=Place())
    paragraphs = [
        replace(p, line=lines.get(p.place.row, p.line)) if p.place and p.place.row else p
        for p in paragraphs
    ]
    if not paragraphs:
        raise DocumentParseError(source_path, "the file is empty")
    document = build_document(
        paragraphs,
        doc_id=doc_id,
        source_path=source_path,
        content_hash=content_hash,
        format="csv",
        title_from_body=False,
    )
    return replace(document, warnings=warnings)
