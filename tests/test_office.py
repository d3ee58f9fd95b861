"""Word, PowerPoint, Excel, CSV, EPUB and non-UTF-8 text: real files written to tmp_path by the
libraries people make them with, read through the same pipeline as text and PDF.

Every search goes through ``qa.service.ingest`` into an index in tmp_path (the hashing embedder,
lexical mode: fast, and exact about which words match), and every citation is checked to point
at exactly the characters of the document's stored text that the hit shows.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import docx
import openpyxl
import paperang_p2_fonts_cjk
import pptx
import pytest
from docx.opc.constants import RELATIONSHIP_TYPE as RT
from docx.opc.packuri import PackURI
from docx.opc.part import Part
from docx.oxml import parse_xml
from pptx.util import Inches

from api.mcp_text import where
from api.schemas import CitationPublic
from qa.config import Settings
from qa.errors import DocumentParseError
from qa.ingest import ingest_paths, read_document
from qa.retrieve import Retriever
from qa.service import ingest, open_retriever
from qa.types import Citation, Document, Hit

W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"
R_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
NOTE_URL = "https://www.meti.go.jp/rare-earth"
CITIES = [
    ["City", "2024 output", "2025 output"],
    ["Taipei", "310", "325"],
    ["Kaohsiung", "1,100", "1,234"],
    ["Taichung", "800", "950"],
]


def read(path: Path) -> Document:
    return read_document(path, path.parent)


def exact(retriever: Retriever, hit: Hit) -> Citation:
    """The hit's citation, checked to name exactly the hit's characters of the stored text."""
    document = retriever.document(hit.citation.doc_id)
    c = hit.citation
    assert document.text[c.char_start : c.char_end] == hit.text
    return c


def build(tmp_path: Path, root: Path) -> Retriever:
    settings = Settings(
        embed_model="hash:64", corpus_dir=root, index_dir=tmp_path / "index", threads=1
    )
    ingest(settings, strict=True)
    return open_retriever(settings)


# --- DOCX -------------------------------------------------------------------------------------


def _note_run(kind: str, note_id: int) -> object:
    return parse_xml(
        f'<w:r xmlns:w="{W_NS}"><w:rPr><w:vertAlign w:val="superscript"/></w:rPr>'
        f'<w:{kind}Reference w:id="{note_id}"/></w:r>'
    )


def _notes_part(word: docx.document.Document, kind: str, notes: dict[int, str]) -> Part:
    """A footnotes/endnotes part (python-docx writes none) with a separator and ``notes``."""
    partname = PackURI(f"/word/{kind}s.xml")
    content_type = f"application/vnd.openxmlformats-officedocument.wordprocessingml.{kind}s+xml"
    part = Part(partname, content_type, b"", word.part.package)
    link = part.relate_to(NOTE_URL, RT.HYPERLINK, is_external=True)
    items = [
        f'<w:{kind} w:type="separator" w:id="-1"><w:p><w:r><w:separator/></w:r></w:p></w:{kind}>'
    ]
    for note_id, text in notes.items():
        hyperlink = (
            f'<w:hyperlink r:id="{link}"><w:r><w:t>METI rare earth page</w:t></w:r></w:hyperlink>'
            if note_id == 1 and kind == "footnote"
            else ""
        )
        items.append(
            f'<w:{kind} w:id="{note_id}"><w:p><w:r><w:{kind}Ref/></w:r>'
            f'<w:r><w:t xml:space="preserve"> {text} </w:t></w:r>{hyperlink}</w:p></w:{kind}>'
        )
    part._blob = (  # type: ignore[attr-defined]
        f'<w:{kind}s xmlns:w="{W_NS}" xmlns:r="{R_NS}">{"".join(items)}</w:{kind}s>'
    ).encode()
    word.part.relate_to(part, RT.FOOTNOTES if kind == "footnote" else RT.ENDNOTES)
    return part


def write_docx(path: Path) -> Path:
    """Headings, a footnote with a link, an endnote, a captioned table and a deleted revision."""
    word = docx.Document()
    word.core_properties.title = "Steel and rare earths"
    word.core_properties.author = "Ada Chen; Li Wei"
    word.add_heading("Rare earths", level=1)
    body = word.add_paragraph("Japan depends on China for heavy rare earths")
    body._p.append(_note_run("footnote", 1))
    body.add_run(", and Minamitorishima mud holds more.")
    body._p.append(
        parse_xml(
            f'<w:del xmlns:w="{W_NS}" w:id="9" w:author="x"><w:r>'
            "<w:delText>DELETED_REVISION</w:delText></w:r></w:del>"
        )
    )
    word.add_heading("Steel", level=1)
    word.add_heading("Output by city", level=2)
    word.add_paragraph("Table 2: Crude steel output by city (kt)", style="Caption")
    table = word.add_table(rows=len(CITIES), cols=3)
    for r, values in enumerate(CITIES):
        for c, value in enumerate(values):
            table.cell(r, c).text = value
    word.add_paragraph("1 blast furnace closed in 2024, says https://example.org/steel.")
    after = word.add_paragraph("Nippon Steel bought U.S. Steel for 14.1 billion dollars")
    after._p.append(_note_run("endnote", 1))
    after.add_run(".")
    _notes_part(word, "footnote", {1: "METI, Rare earth strategy, 2024."})
    _notes_part(word, "endnote", {1: "Nikkei, 19 June 2025."})
    word.save(str(path))
    return path


@pytest.fixture
def word_doc(tmp_path: Path) -> Document:
    return read(write_docx(tmp_path / "steel.docx"))


def test_docx_headings_become_sections(word_doc: Document) -> None:
    assert word_doc.format == "docx"
    assert word_doc.title == "Steel and rare earths"
    assert word_doc.authors == ("Ada Chen", "Li Wei")
    assert [(h.level, h.title) for h in word_doc.headings] == [
        (1, "Rare earths"),
        (1, "Steel"),
        (2, "Output by city"),
    ]
    at = word_doc.text.index("Nippon Steel")
    assert word_doc.section_at(at) == "Steel > Output by city"
    assert "DELETED_REVISION" not in word_doc.text


def test_docx_footnote_and_endnote_link_with_their_sources(word_doc: Document) -> None:
    first, second = word_doc.footnotes
    assert (first.n, second.n) == (1, 2)  # numbered in the order they are referenced
    assert first.text.startswith("METI, Rare earth strategy, 2024.")
    assert first.urls == (NOTE_URL,)
    assert second.text == "Nikkei, 19 June 2025."
    assert "heavy rare earths¹, and" in word_doc.text
    assert "14.1 billion dollars²." in word_doc.text
    # the note sits after its section, not in the middle of the body
    assert word_doc.text.index("¹ METI") < word_doc.text.index("Steel\n")
    assert {b.kind for b in word_doc.blocks} >= {"body", "footnotes", "table"}
    # a paragraph opening with a number and holding a year and a link is text, not a note
    assert len(word_doc.footnotes) == 2
    closed = word_doc.text.index("1 blast furnace closed")
    assert next(b.kind for b in word_doc.blocks if b.char_start <= closed < b.char_end) == "body"


def test_docx_table_rows_keep_their_header_and_caption(word_doc: Document) -> None:
    row = "City: Kaohsiung | 2024 output: 1,100 | 2025 output: 1,234"
    assert row in word_doc.text
    assert "Table 2: Crude steel output by city (kt)" in word_doc.text
    assert "1,100 1,234" not in word_doc.text  # never a bare run of numbers
    start = word_doc.text.index(row)
    place = word_doc.place_of(start)
    assert (place.table, place.row) == ("Table 2: Crude steel output by city (kt)", 3)
    table = next(b for b in word_doc.blocks if b.kind == "table")
    assert table.char_start <= start < table.char_end
    assert "Nippon Steel" not in word_doc.text[table.char_start : table.char_end]


def test_docx_searched_through_the_index(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    write_docx(root / "steel.docx")
    retriever = build(tmp_path, root)
    top = retriever.search("Kaohsiung 2025 output", mode="lexical").hits[0]
    c = exact(retriever, top)
    assert "City: Kaohsiung | 2024 output: 1,100 | 2025 output: 1,234" in top.text
    assert c.kind == "table"
    assert c.table == "Table 2: Crude steel output by city (kt)"
    assert c.row is not None and c.row <= 3 <= (c.row_end or 0)
    assert c.section == "Steel > Output by city"
    note = retriever.search("Minamitorishima heavy rare earths", mode="lexical").hits[0]
    assert [f.n for f in exact(retriever, note).footnotes] == [1]
    assert note.citation.footnotes[0].urls == (NOTE_URL,)
    public = CitationPublic.model_validate(c, from_attributes=True).model_dump()
    assert (public["table"], public["row"]) == (c.table, c.row)
    assert "Table 2" in where(c) and "row" in where(c)


def test_docx_corrupt_or_encrypted_is_named_and_others_still_build(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    good = write_docx(root / "good.docx").read_bytes()
    (root / "truncated.docx").write_bytes(good[: len(good) // 2])
    (root / "locked.docx").write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(504))
    with zipfile.ZipFile(root / "nodoc.docx", "w") as archive:
        archive.writestr("hello.txt", "not a word file")
    report = ingest_paths([root], root)
    reasons = {Path(e.path).name: e.reason for e in report.errors}
    assert sorted(reasons) == ["locked.docx", "nodoc.docx", "truncated.docx"]
    assert "encrypted" in reasons["locked.docx"] and ".doc" in reasons["locked.docx"]
    assert reasons["truncated.docx"].startswith("not a readable Word (.docx) file")
    assert reasons["nodoc.docx"].startswith("not a readable Word (.docx) file")
    assert [d.doc_id for d in report.documents] == ["good"]


# --- text encodings ---------------------------------------------------------------------------

BIG5_TEXT = (
    "第一章 高雄鋼鐵\n\n"
    "高雄的鋼鐵產量在二〇二五年增加到一千二百萬噸。\n"
    "南鳥島海底泥含有大量稀土。\n"
)
LATIN_TEXT = "Café au lait and a naïve façade: the crème brûlée cost five euros.\n"


@pytest.mark.parametrize(
    ("name", "raw", "text", "said"),
    [
        ("big5.txt", BIG5_TEXT.replace("〇", "零").encode("big5"), "一千二百萬噸", "big5"),
        ("utf16le.txt", "\ufeff南鳥島稀土。\n".encode("utf-16-le"), "南鳥島稀土", "utf-16-le"),
        ("utf16be.md", "\ufeff# 稀土\n\n南鳥島。\n".encode("utf-16-be"), "南鳥島", "utf-16-be"),
        ("latin1.txt", LATIN_TEXT.encode("latin-1"), "naïve façade: the crème brûlée", "cp1252"),
    ],
)
def test_text_in_other_encodings_is_read_and_the_encoding_said(
    tmp_path: Path, name: str, raw: bytes, text: str, said: str
) -> None:
    path = tmp_path / name
    path.write_bytes(raw)
    document = read(path)
    assert text in document.text
    assert "\ufeff" not in document.text
    assert any(said in warning for warning in document.warnings), document.warnings


def test_utf8_is_read_without_a_warning_and_damaged_utf8_stays_an_error(tmp_path: Path) -> None:
    (tmp_path / "ok.txt").write_text("高雄的鋼鐵。Café.\n", "utf-8")
    assert read(tmp_path / "ok.txt").warnings == ()
    (tmp_path / "damaged.txt").write_bytes("高雄的鋼鐵".encode() + b"\xff\xfe tail\n")
    with pytest.raises(DocumentParseError, match=r"damaged\.txt: not valid UTF-8 \(byte 15"):
        read(tmp_path / "damaged.txt")


def test_big5_file_is_found_by_a_question(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "kaohsiung.txt").write_bytes(BIG5_TEXT.replace("〇", "零").encode("big5"))
    (root / "note.txt").write_text("Nippon Steel bought U.S. Steel.\n", "utf-8")
    retriever = build(tmp_path, root)
    top = retriever.search("高雄的鋼鐵產量", mode="lexical").hits[0]
    c = exact(retriever, top)
    assert c.doc_id == "kaohsiung" and "一千二百萬噸" in top.text
    assert c.section == "第一章 高雄鋼鐵"


# --- XLSX and CSV -----------------------------------------------------------------------------


def write_xlsx(path: Path) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    assert sheet is not None
    sheet.title = "Output"
    for values in CITIES:  # numbers stored as numbers, as a spreadsheet holds them
        sheet.append(
            [int(v.replace(",", "")) if v.replace(",", "").isdigit() else v for v in values]
        )
    prices = book.create_sheet("Prices")
    prices.append(["Metal", "USD per kg", "Date"])
    prices.append(["Dysprosium", 230.5, None])
    prices.append([None, None, None])
    prices.append(["Terbium", 1100, "2025-06"])
    book.properties.title = "Metals workbook"
    book.save(str(path))
    return path


def test_xlsx_sheets_are_sections_and_rows_carry_their_header(tmp_path: Path) -> None:
    document = read(write_xlsx(tmp_path / "metals.xlsx"))
    assert document.title == "Metals workbook"
    assert [(h.level, h.title) for h in document.headings] == [(1, "Output"), (1, "Prices")]
    row = "City: Kaohsiung | 2024 output: 1100 | 2025 output: 1234"
    assert row in document.text
    start = document.text.index(row)
    assert (document.place_of(start).sheet, document.place_of(start).row) == ("Output", 3)
    assert document.line_of(start) == 3
    terbium = document.text.index("Metal: Terbium")
    assert document.place_of(terbium).row == 4  # the empty row 3 is skipped, not renumbered
    assert "Metal: Dysprosium | USD per kg: 230.5\n" in document.text + "\n"


def test_xlsx_and_csv_searched_through_the_index(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    write_xlsx(root / "metals.xlsx")
    (root / "ports.csv").write_text(
        'Port;Cargo (Mt);Note\nKaohsiung;410;"busiest; container"\nKeelung;80;\n', "utf-8"
    )
    retriever = build(tmp_path, root)
    top = retriever.search("Terbium USD per kg", mode="lexical").hits[0]
    c = exact(retriever, top)
    assert (c.sheet, c.section, c.kind) == ("Prices", "Prices", "table")
    assert c.row is not None and c.row <= 4 <= (c.row_end or 0)
    assert "Metal: Terbium | USD per kg: 1100 | Date: 2025-06" in top.text
    port = retriever.search("Keelung cargo", mode="lexical").hits[0]
    pc = exact(retriever, port)
    assert pc.doc_id == "ports" and pc.sheet is None
    assert "Port: Keelung | Cargo (Mt): 80" in port.text
    assert "Port: Kaohsiung | Cargo (Mt): 410 | Note: busiest; container" in port.text
    assert (pc.row, pc.row_end) == (2, 3)
    assert "sheet Prices" in where(c) and "rows" in where(pc)


# --- PPTX -------------------------------------------------------------------------------------


def write_pptx(path: Path) -> Path:
    deck = pptx.Presentation()
    deck.core_properties.title = "Supply chain briefing"
    slide = deck.slides.add_slide(deck.slide_layouts[1])  # title and content
    slide.shapes.title.text = "Rare earth dependence"
    slide.placeholders[1].text_frame.text = "Japan imports 60% of its rare earths from China."
    slide.notes_slide.notes_text_frame.text = "Mention the Minamitorishima mud trial in 2028."
    second = deck.slides.add_slide(deck.slide_layouts[5])  # title only
    second.shapes.title.text = "Steel output"
    rows = second.shapes.add_table(3, 2, Inches(1), Inches(2), Inches(6), Inches(2)).table
    for r, values in enumerate([["City", "Output"], ["Kaohsiung", "1,234"], ["Taipei", "325"]]):
        for c, value in enumerate(values):
            rows.cell(r, c).text = value
    blank = deck.slides.add_slide(deck.slide_layouts[6])  # no title placeholder
    box = blank.shapes.add_textbox(Inches(1), Inches(1), Inches(6), Inches(1))
    box.text_frame.text = "Questions welcome."
    deck.save(str(path))
    return path


def test_pptx_slides_are_sections_with_labelled_notes(tmp_path: Path) -> None:
    document = read(write_pptx(tmp_path / "brief.pptx"))
    assert document.title == "Supply chain briefing"
    assert [(h.level, h.title) for h in document.headings] == [
        (1, "Rare earth dependence"),
        (2, "Speaker notes"),
        (1, "Steel output"),
        (1, "Slide 3"),
    ]
    notes = document.text.index("Mention the Minamitorishima")
    assert document.section_at(notes) == "Rare earth dependence > Speaker notes"
    assert document.place_of(notes).slide == 1
    row = document.text.index("City: Kaohsiung | Output: 1,234")
    assert (document.place_of(row).slide, document.place_of(row).row) == (2, 2)
    assert document.place_of(document.text.index("Questions welcome")).slide == 3


def test_pptx_searched_through_the_index(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    write_pptx(root / "brief.pptx")
    retriever = build(tmp_path, root)
    top = retriever.search("Minamitorishima mud trial", mode="lexical").hits[0]
    c = exact(retriever, top)
    assert (c.slide, c.section) == (1, "Rare earth dependence > Speaker notes")
    assert "slide 1" in where(c)
    public = CitationPublic.model_validate(c, from_attributes=True).model_dump()
    assert public["slide"] == 1 and public["sheet"] is None


# --- EPUB -------------------------------------------------------------------------------------

CONTAINER = (
    '<?xml version="1.0"?><container version="1.0" '
    'xmlns="urn:oasis:names:tc:opendocument:xmlns:container"><rootfiles>'
    '<rootfile full-path="OEBPS/content.opf" media-type="application/oebps-package+xml"/>'
    "</rootfiles></container>"
)
OPF = (
    '<?xml version="1.0"?><package xmlns="http://www.idpf.org/2007/opf" version="3.0">'
    '<metadata xmlns:dc="http://purl.org/dc/elements/1.1/"><dc:title>Rare Earth Stories</dc:title>'
    "<dc:creator>Mei Lin</dc:creator><dc:date>2024-03-01</dc:date></metadata><manifest>"
    '<item id="c1" href="text/one.xhtml" media-type="application/xhtml+xml"/>'
    '<item id="c2" href="text/two%20b.xhtml" media-type="application/xhtml+xml"/>'
    '<item id="css" href="style.css" media-type="text/css"/></manifest>'
    '<spine><itemref idref="c2"/><itemref idref="c1"/><itemref idref="css"/></spine></package>'
)


def _xhtml(title: str, body: str) -> str:
    return (
        '<?xml version="1.0" encoding="utf-8"?><html xmlns="http://www.w3.org/1999/xhtml">'
        f"<head><title>{title}</title><script>var x = 'SCRIPT_TEXT';</script></head>"
        f"<body>{body}</body></html>"
    )


def write_epub(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("mimetype", "application/epub+zip", compress_type=zipfile.ZIP_STORED)
        book.writestr("META-INF/container.xml", CONTAINER)
        book.writestr("OEBPS/content.opf", OPF)
        book.writestr(
            "OEBPS/text/two b.xhtml",
            _xhtml("x", "<h1>The Mud</h1><p>Minamitorishima mud holds &lt;script&gt; text.</p>"),
        )
        book.writestr(
            "OEBPS/text/one.xhtml",
            _xhtml("The Smelter", "<p>The smelter in Kaohsiung opened in 1977.</p>"),
        )
        book.writestr("OEBPS/style.css", "p { color: red }")
    return path


def test_epub_chapters_become_sections_in_spine_order(tmp_path: Path) -> None:
    document = read(write_epub(tmp_path / "stories.epub"))
    assert (document.title, document.authors, document.date) == (
        "Rare Earth Stories",
        ("Mei Lin",),
        "2024-03-01",
    )
    assert [h.title for h in document.headings] == ["The Mud", "The Smelter"]
    assert document.text.index("Minamitorishima") < document.text.index("Kaohsiung")
    assert document.section_at(document.text.index("Kaohsiung")) == "The Smelter"
    assert "<script> text" in document.text  # escaped markup is text ...
    assert "SCRIPT_TEXT" not in document.text  # ... a script element is not


def test_epub_without_its_package_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.epub"
    with zipfile.ZipFile(path, "w") as book:
        book.writestr("META-INF/container.xml", CONTAINER)
    with pytest.raises(DocumentParseError, match=r"broken\.epub: .*OEBPS/content\.opf is missing"):
        read(path)


# --- what is not read is said -----------------------------------------------------------------


def test_unsupported_files_are_reported_by_name(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    (root / "sub").mkdir(parents=True)
    (root / "note.txt").write_text("稀土。\n", "utf-8")
    (root / "sub" / "drawing.svg").write_bytes(b"<svg/>")
    (root / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / ".hidden.bin").write_bytes(b"x")
    report = ingest_paths([root], root)
    assert [d.doc_id for d in report.documents] == ["note"]
    assert report.errors == ()
    assert sorted(Path(s.path).name for s in report.skipped) == ["drawing.svg", "old.doc"]
    assert all("unsupported file type" in s.reason and ".docx" in s.reason for s in report.skipped)


# --- scanned PDFs (OCR) -----------------------------------------------------------------------


def _scan_page(lines: list[str], dpi: int = 150) -> Any:
    """A 6 x 4 inch white page with ``lines`` in 14 pt, half an inch from the edges."""
    from PIL import Image, ImageDraw, ImageFont

    font_file = Path(paperang_p2_fonts_cjk.__file__).parent / "fonts" / "wqy-microhei.ttc"
    font = ImageFont.truetype(str(font_file), round(14 * dpi / 72))
    image = Image.new("RGB", (6 * dpi, 4 * dpi), "white")
    pen = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        pen.text((dpi // 2, dpi // 2 + row * round(28 * dpi / 72)), line, "black", font)
    return image


def draw_scan(path: Path, pages: list[list[str]], dpi: int = 150) -> Path:
    """An image-only PDF, as a scanner makes one: each page a picture of ``pages``' lines."""
    first, *rest = [_scan_page(lines, dpi) for lines in pages]
    first.save(path, "PDF", resolution=dpi, save_all=True, append_images=rest)
    return path


SCANNED = [
    ["第六章 稀土", "南鳥島海底泥含有大量稀土，", "政府計畫開始試採。"],
    ["Chapter 2 Steel", "Nippon Steel bought U.S. Steel", "for 14.1 billion dollars."],
]


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Retriever]:
    root = tmp_path_factory.mktemp("scan") / "corpus"
    root.mkdir()
    draw_scan(root / "scan.pdf", SCANNED)
    return root, build(root.parent, root)


def test_scanned_pages_are_read_by_ocr_with_their_boxes(scanned: tuple[Path, Retriever]) -> None:
    _, retriever = scanned
    document = retriever.document("scan")
    assert any("read by OCR" in w for w in document.warnings), document.warnings
    assert [page for _, page in document.page_runs] == [1, 2]
    for query, word, page in (("南鳥島海底泥", "南鳥島", 1), ("Nippon Steel billion", "Nippon", 2)):
        top = retriever.search(query, mode="lexical").hits[0]
        c = exact(retriever, top)
        assert c.doc_id == "scan" and c.page is not None and c.page <= page <= (c.page_end or 0)
        assert {b.page for b in c.boxes} <= set(range(c.page, (c.page_end or c.page) + 1))
        at = document.text.index(word)
        assert c.char_start <= at < c.char_end
        line = next(b for b in c.boxes if b.char_start <= at < b.char_end)
        assert line.page == page == document.page_of(at)
        # inside the 6 x 4 inch page, in points from its top-left; drawn half an inch (36 pt)
        # from the left edge, on the second or third line (a line is 28 pt)
        assert 0 <= line.x0 < line.x1 <= 6 * 72 and 0 <= line.top < line.bottom <= 4 * 72
        assert 30 <= line.x0 <= 45 and 60 <= line.top <= 100
        assert word in document.text[line.char_start : line.char_end]


def test_a_blank_scan_is_named_not_indexed_as_nothing(tmp_path: Path) -> None:
    path = draw_scan(tmp_path / "blank.pdf", [[]])
    with pytest.raises(DocumentParseError, match=r"blank\.pdf: .*OCR found no text"):
        read(path)


def test_without_the_ocr_libraries_the_pages_and_the_pip_command_are_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa.ingest import ocr

    monkeypatch.setattr(ocr, "available", lambda: False)
    path = draw_scan(tmp_path / "scan.pdf", SCANNED)
    with pytest.raises(DocumentParseError) as info:
        read(path)
    assert info.value.reason.startswith("no text layer (scanned PDF?); pages 1, 2")
    assert "pip install rapidocr-onnxruntime pypdfium2" in info.value.reason


# --- HTML tables ------------------------------------------------------------------------------

HTML_TABLE = """<!DOCTYPE html><html><head><title>Steel</title></head><body><main>
<h1>Steel report</h1>
<p>Output rose<sup>1</sup> in 2025.</p>
<table>
<caption>Table 4: Output by city (kt)</caption>
<thead><tr><th>City</th><th>2024</th><th>2025</th></tr></thead>
<tbody>
<tr><td>Taipei</td><td>310</td><td>325</td></tr>
<tr><td>Kaohsiung<br>City</td><td>1,100</td><td><p>1,234</p></td></tr>
</tbody></table>
<p>After the table.</p>
<table><tr><td>Layout A</td><td>Layout B</td></tr></table>
<ol class="footnotes"><li id="fn1">METI 2025.</li></ol>
</main></body></html>
"""


def test_html_data_table_is_read_by_labelled_rows(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "steel.html").write_text(HTML_TABLE, "utf-8")
    document = read(root / "steel.html")
    row = "City: Kaohsiung City | 2024: 1,100 | 2025: 1,234"
    assert row in document.text
    assert "Layout A\n\nLayout B" in document.text  # one row: layout, cells stay paragraphs
    start = document.text.index(row)
    place = document.place_of(start)
    assert (place.table, place.row) == ("Table 4: Output by city (kt)", 3)
    assert document.line_of(start) == 9  # the <tr> of the row
    assert [f.n for f in document.footnotes] == [1]
    retriever = build(tmp_path, root)
    top = retriever.search("Kaohsiung 2025", mode="lexical").hits[0]
    c = exact(retriever, top)
    assert row in top.text and c.kind == "table" and c.table == "Table 4: Output by city (kt)"
    assert c.row is not None and c.row <= 3 <= (c.row_end or 0)


def test_xml_entity_bombs_are_refused(tmp_path: Path) -> None:
    """A "billion laughs" sheet: openpyxl parses through defusedxml, which refuses entities."""
    good = write_xlsx(tmp_path / "good.xlsx")
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        + "".join(
            f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i else "&lol;" * 10}">' for i in range(9)
        )
        + ']><worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>&lol8;</t></is></c></row>'
        "</sheetData></worksheet>"
    )
    with (
        zipfile.ZipFile(good) as source,
        zipfile.ZipFile(tmp_path / "bomb.xlsx", "w") as target,
    ):
        for member in source.namelist():
            is_sheet = member == "xl/worksheets/sheet1.xml"
            target.writestr(member, bomb if is_sheet else source.read(member))
    with pytest.raises(DocumentParseError, match=r"bomb\.xlsx: not a readable Excel"):
        read(tmp_path / "bomb.xlsx")


# --- ODT --------------------------------------------------------------------------------------

ODT_NS = (
    'xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" '
    'xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" '
    'xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" '
    'xmlns:meta="urn:oasis:names:tc:opendocument:xmlns:meta:1.0" '
    'xmlns:dc="http://purl.org/dc/elements/1.1/"'
)
ODT_BODY = (
    "<text:table-of-content><text:index-body><text:p>Rare earths ..... 1</text:p>"
    "</text:index-body></text:table-of-content>"
    '<text:h text:outline-level="1">Rare earths</text:h>'
    '<text:p>Japan depends on China<text:note text:note-class="footnote">'
    "<text:note-citation>1</text:note-citation><text:note-body><text:p>METI, 2024, "
    "https://www.meti.go.jp/rare-earth</text:p></text:note-body></text:note> for heavy"
    "<text:s/>rare earths.</text:p>"
    '<text:h text:outline-level="2">Output</text:h>'
    '<table:table table:name="Output by city"><table:table-column/>'
    "<table:table-header-rows><table:table-row>"
    "<table:table-cell><text:p>City</text:p></table:table-cell>"
    "<table:table-cell><text:p>2025</text:p></table:table-cell>"
    "</table:table-row></table:table-header-rows>"
    "<table:table-row><table:table-cell><text:p>Kaohsiung</text:p></table:table-cell>"
    "<table:table-cell><text:p>1,234</text:p></table:table-cell></table:table-row>"
    '<table:table-row table:number-rows-repeated="1000"><table:table-cell '
    'table:number-columns-repeated="1000"/></table:table-row>'
    "</table:table>"
    "<text:list><text:list-item><text:p>Keelung is smaller.</text:p></text:list-item></text:list>"
)


def write_odt(path: Path) -> Path:
    with zipfile.ZipFile(path, "w") as odt:
        odt.writestr("mimetype", "application/vnd.oasis.opendocument.text")
        odt.writestr(
            "content.xml",
            f"<office:document-content {ODT_NS}><office:body><office:text>{ODT_BODY}"
            "</office:text></office:body></office:document-content>",
        )
        odt.writestr(
            "meta.xml",
            f"<office:document-meta {ODT_NS}><office:meta><dc:title>Metals</dc:title>"
            "<meta:initial-creator>Mei Lin</meta:initial-creator>"
            "<meta:creation-date>2025-02-03T10:00:00</meta:creation-date>"
            "</office:meta></office:document-meta>",
        )
    return path


def test_odt_headings_notes_and_tables(tmp_path: Path) -> None:
    document = read(write_odt(tmp_path / "metals.odt"))
    assert (document.title, document.authors, document.date) == (
        "Metals",
        ("Mei Lin",),
        "2025-02-03",
    )
    assert [(h.level, h.title) for h in document.headings] == [(1, "Rare earths"), (2, "Output")]
    assert "Japan depends on China¹ for heavy rare earths." in document.text
    assert "....." not in document.text  # the table of contents is not text
    (note,) = document.footnotes
    assert note.urls == ("https://www.meti.go.jp/rare-earth",)
    row = document.text.index("City: Kaohsiung | 2025: 1,234")
    assert (document.place_of(row).table, document.place_of(row).row) == ("Output by city", 2)
    assert document.section_at(document.text.index("Keelung")) == "Rare earths > Output"
    assert len(document.text) < 1000  # a thousand repeated empty rows and cells add nothing


WRITERS = {
    "docx": write_docx,
    "pptx": write_pptx,
    "xlsx": write_xlsx,
    "epub": write_epub,
    "odt": write_odt,
}


# --- damaged files: a clear error, never a crash ----------------------------------------------


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_damaged_office_files_are_parse_errors(tmp_path: Path, suffix: str) -> None:
    good = WRITERS[suffix](tmp_path / f"good.{suffix}").read_bytes()
    with zipfile.ZipFile(tmp_path / f"good.{suffix}") as archive:
        names = archive.namelist()
    damaged = {
        "random": bytes(range(256)) * 8,
        "empty": b"",
        "truncated": good[: len(good) * 2 // 3],
        "ole": b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(100),
    }
    for name, raw in damaged.items():
        (tmp_path / f"{name}.{suffix}").write_bytes(raw)
    # a valid zip with each part in turn replaced by XML that is not well formed
    for index, part in enumerate(names):
        with (
            zipfile.ZipFile(tmp_path / f"good.{suffix}") as source,
            zipfile.ZipFile(tmp_path / f"part{index}.{suffix}", "w") as target,
        ):
            for member in names:
                target.writestr(member, b"<oops" if member == part else source.read(member))
    for path in sorted(tmp_path.glob(f"*.{suffix}")):
        if path.name == f"good.{suffix}":
            continue
        try:
            document = read(path)
        except DocumentParseError as exc:
            assert path.name in str(exc) and exc.reason
        else:  # a part the reader does not need (a theme, a thumbnail) may be broken
            assert document.text and path.name.startswith("part"), path.name


def test_qa_ingest_names_skipped_files_and_assumed_encodings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cli import main

    root = tmp_path / "corpus"
    root.mkdir()
    write_docx(root / "steel.docx")
    (root / "kaohsiung.txt").write_bytes(BIG5_TEXT.replace("〇", "零").encode("big5"))
    (root / "photo.heic").write_bytes(b"\xff\xd8\xff")
    monkeypatch.setenv("QA_EMBED_MODEL", "hash:64")
    monkeypatch.setenv("QA_THREADS", "1")
    monkeypatch.setenv("QA_CORPUS_DIR", str(root))
    code = main(["ingest", "--index", str(tmp_path / "index"), "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "added 2" in out
    assert f"skipped: cannot ingest {root / 'photo.heic'}: unsupported file type" in err
    assert "warning: corpus/kaohsiung.txt: read as big5 (not UTF-8; detected)" in err


def test_scanned_images_are_read_by_ocr(tmp_path: Path) -> None:
    """A two-page TIFF (a scanner's multi-page output) and a PNG; boxes are in pixels."""
    from PIL import Image

    pages = [_scan_page(lines) for lines in SCANNED]
    pages[0].save(tmp_path / "scan.tiff", save_all=True, append_images=pages[1:])
    pages[1].save(tmp_path / "steel.png")
    tiff = read(tmp_path / "scan.tiff")
    assert tiff.format == "image" and [p for _, p in tiff.page_runs] == [1, 2]
    at = tiff.text.index("Nippon")
    line = next(b for b in tiff.boxes if b.char_start <= at < b.char_end)
    assert line.page == 2 and 60 <= line.x0 <= 90  # half an inch at 150 dpi: 75 px
    png = read(tmp_path / "steel.png")
    assert "Nippon Steel" in png.text and png.page_of(0) == 1
    assert any("OCR" in w for w in png.warnings)
    Image.new("RGB", (300, 200), "white").save(tmp_path / "blank.png")
    with pytest.raises(DocumentParseError, match=r"blank\.png: OCR found no text"):
        read(tmp_path / "blank.png")
    (tmp_path / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really")
    with pytest.raises(DocumentParseError, match=r"broken\.jpg: not a readable image"):
        read(tmp_path / "broken.jpg")


def test_an_ocr_failure_is_named_not_a_crash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qa.ingest import ocr

    def broken(raw: bytes, pages: list[int]) -> None:
        raise RuntimeError("onnxruntime: out of memory")

    monkeypatch.setattr(ocr, "ocr_pages", broken)
    path = draw_scan(tmp_path / "scan.pdf", SCANNED[:1])
    with pytest.raises(
        DocumentParseError,
        match=r"scan\.pdf: no text layer \(scanned PDF\?\); "
        r"page 1 without a text layer: OCR failed \(onnxruntime: out of memory\)",
    ):
        read(path)
