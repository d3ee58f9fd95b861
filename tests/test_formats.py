"""HTML and PDF input: real files written to tmp_path, read through the same pipeline as text.

PDFs are generated with reportlab's built-in CID fonts (no font files): MSung-Light for
Traditional Chinese and HeiseiMin-W3 for Japanese. reportlab declares MSung-Light with the
Simplified ``UniGB-UCS2-H`` CMap, so text extracts as the wrong characters; the fixture
registers it with ``UniCNS-UCS2-H``, the CMap that matches its CNS1 glyph collection.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from reportlab.pdfbase import cidfonts, pdfmetrics
from reportlab.pdfgen.canvas import Canvas

from qa.chunk import ChunkerSettings, chunk_document
from qa.config import Settings
from qa.errors import DependencyMissingError, DocumentParseError
from qa.ingest import ingest_paths, read_document
from qa.service import ingest, open_retriever
from qa.types import Chunk, Document

ZH, JA = "MSung-Light", "HeiseiMin-W3"
HEADER = "國防安全研究院 2025 年度報告"
Draw = Callable[[Canvas], None]


@pytest.fixture(scope="module", autouse=True)
def cid_fonts() -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(cidfonts.defaultUnicodeEncodings, ZH, ("cht", "UniCNS-UCS2-H"))
        for face in (ZH, JA):
            pdfmetrics.registerFont(cidfonts.UnicodeCIDFont(face))


def write_pdf(path: Path, pages: list[Draw], **options: object) -> Path:
    canvas = Canvas(str(path), **options)  # type: ignore[arg-type]
    for draw in pages:
        draw(canvas)
        canvas.showPage()
    canvas.save()
    return path


def text(canvas: Canvas, x: float, y: float, line: str, size: float = 12, font: str = ZH) -> float:
    """Draw one line; returns where it ends, so a marker can follow it."""
    canvas.setFont(font, size)
    canvas.drawString(x, y, line)
    return x + pdfmetrics.stringWidth(line, font, size)


def running(canvas: Canvas, page: int) -> None:
    text(canvas, 72, 800, HEADER, 9)
    canvas.setFont(ZH, 9)
    canvas.drawCentredString(297, 40, f"- {page} -")


def zh_page1(c: Canvas) -> None:
    running(c, 1)
    text(c, 72, 750, "第六章 日本製造業供應鏈安全", 16)
    text(c, 72, 715, "貳、戰略資源與稀土供應鏈安全", 14)
    x = text(c, 72, 680, "日本對中國的稀土依賴很高")
    x = text(c, x, 684, "1", 7)  # a footnote reference: small and raised, as word processors set it
    text(c, x, 680, "，南鳥島海底泥含有大量稀土，")
    text(c, 72, 664, "政府計畫於二〇二八年前開始試採。")
    text(c, 72, 630, "經濟產業省認為，建立不依賴單一國家的稀土供應鏈，")
    text(
        c, 72, 614, "需要與七大工業國集團及澳洲等夥伴共同投資冶煉產能，並且"
    )  # cut by the page end
    x = text(c, 72, 84, "1", 5)
    text(c, x, 80, "〈日本稀土戰略〉，經濟產業省，https://www.meti.go.jp/rare-earth", 8)


def zh_page2(c: Canvas) -> None:
    running(c, 2)
    text(c, 72, 750, "在二〇三〇年前把對中國的依賴降到五成以下。")
    text(c, 72, 715, "參、跨國併購與鋼鐵戰略自主", 14)
    text(c, 72, 680, "日本製鐵以一百四十一億美元收購美國鋼鐵公司。")


def zh_page3(c: Canvas) -> None:
    running(c, 3)
    text(c, 72, 750, "肆、軍民融合與造船產業布局", 14)
    text(c, 72, 715, "造船業的復興被視為海上安全的基礎。")


@pytest.fixture(scope="module")
def zh_pdf(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_pdf(tmp_path_factory.mktemp("pdf") / "report.pdf", [zh_page1, zh_page2, zh_page3])


def read(path: Path) -> Document:
    return read_document(path, path.parent)


def chunks_of(document: Document) -> list[Chunk]:
    return chunk_document(document, ChunkerSettings())


# --- HTML ------------------------------------------------------------------------------------

PAGE = """<!DOCTYPE html>
<html lang="zh-Hant">
<head>
  <meta charset="utf-8">
  <title>稀土報告 | 範例網站</title>
  <style>.x { content: "STYLE_TEXT"; }</style>
  <script>var s = "SCRIPT_TEXT";</script>
</head>
<body>
  <header><h1>SITE_HEADER</h1></header>
  <nav><a href="/">NAV_TEXT</a></nav>
  <div class="promo">OUTSIDE_MAIN</div>
  <main>
    <h1>報告</h1>
    <h2>貳、稀土</h2>
    <p>日本對中國的稀土依賴
    很高<sup>1</sup>，南鳥島海底泥含有稀土。</p>
    <div hidden>HIDDEN_TEXT</div>
    <noscript>NOSCRIPT_TEXT</noscript>
    <form><label>FORM_TEXT</label></form>
    <h2>參、鋼鐵</h2>
    <p>
      Nippon Steel bought <b>U.S. Steel</b> for 14.1 billion
      dollars.<sup><a href="#fn2" id="ref2">2</a></sup></p>
    <aside>ASIDE_TEXT</aside>
  </main>
  <section class="footnotes">
    <ol>
      <li id="fn1"><p>〈日本稀土戰略〉，<a href="https://www.meti.go.jp/a">經濟產業省</a>。
        <a href="#ref1" class="footnote-back">↩︎</a></p></li>
      <li id="fn2">“Steel deal”, https://example.com/steel <a href="#ref2">↩</a></li>
    </ol>
  </section>
  <footer>FOOTER_TEXT</footer>
</body>
</html>
"""
CHROME = ("STYLE", "SCRIPT", "SITE_HEADER", "NAV", "OUTSIDE_MAIN", "HIDDEN", "NOSCRIPT", "FORM")


@pytest.fixture
def page(tmp_path: Path) -> Document:
    path = tmp_path / "page.html"
    path.write_text(PAGE, "utf-8")
    return read(path)


def test_html_keeps_main_text_and_drops_chrome(page: Document) -> None:
    assert page.format == "html"
    assert page.title == "報告"
    for marker in (*CHROME, "ASIDE", "FOOTER"):
        assert f"{marker}_TEXT" not in page.text and marker not in page.text
    # CJK lines are joined without a space; Latin ones with one.
    assert "日本對中國的稀土依賴很高¹，南鳥島海底泥含有稀土。" in page.text
    assert "Nippon Steel bought U.S. Steel for 14.1 billion dollars.²" in page.text


def test_html_headings_give_sections(page: Document) -> None:
    assert [(h.level, h.title) for h in page.headings] == [
        (1, "報告"),
        (2, "貳、稀土"),
        (2, "參、鋼鐵"),
    ]
    for heading in page.headings:
        assert page.text.startswith(heading.title, heading.char_start)
    chunks = chunks_of(page)
    assert next(c for c in chunks if "南鳥島" in c.text).section == "報告 > 貳、稀土"
    assert next(c for c in chunks if "Nippon Steel" in c.text).section == "報告 > 參、鋼鐵"


def test_html_footnotes_link_to_markers(page: Document) -> None:
    notes = {f.n: f for f in page.footnotes}
    assert sorted(notes) == [1, 2]
    assert notes[1].text.startswith("〈日本稀土戰略〉，經濟產業省")
    assert notes[1].urls == ("https://www.meti.go.jp/a",)  # taken from the link's href
    assert notes[2].urls == ("https://example.com/steel",)
    assert "↩" not in page.text
    for note, mark in zip(page.footnotes, ("¹ ", "² "), strict=True):
        assert page.text[note.char_start : note.char_end].startswith(mark)
    body = [c for c in chunks_of(page) if c.kind == "body"]
    rare_earth = next(c for c in body if "南鳥島" in c.text)
    steel = next(c for c in body if "Nippon Steel" in c.text)
    assert 1 in rare_earth.footnotes and "¹" in rare_earth.text
    assert 2 in steel.footnotes and "²" in steel.text
    assert not any("經濟產業省" in c.text for c in body)


def test_html_line_of_points_at_the_source_line(page: Document) -> None:
    source = PAGE.split("\n")
    probes = (
        "<h1>報告",
        "貳、稀土",
        "日本對中國",
        "參、鋼鐵",
        "Nippon Steel",
        "〈日本稀土戰略〉",
        "“Steel",
    )
    for probe in probes:
        expected = next(i for i, line in enumerate(source, start=1) if probe in line)
        start = page.text.index(probe.removeprefix("<h1>"))
        assert page.line_of(start) == expected, probe
    # a paragraph's text may start on a later line than its tag
    assert source[page.line_of(page.text.index("Nippon")) - 2].strip() == "<p>"


def test_html_without_main_uses_body_and_title_fallback(tmp_path: Path) -> None:
    path = tmp_path / "plain.htm"
    path.write_text(
        "<html><head><title> Rare  earth\nnotes </title></head><body>"
        "<p>First paragraph about magnets.</p><ul><li>Item one</li><li>Item two</li></ul>"
        "<table><tr><td>Cell A</td><td>Cell B</td></tr></table></body></html>",
        "utf-8",
    )
    doc = read(path)
    assert doc.title == "Rare earth notes"
    assert doc.headings == ()
    assert doc.text == "First paragraph about magnets.\n\nItem one\n\nItem two\n\nCell A\n\nCell B"


def test_html_list_items_are_not_headings(tmp_path: Path) -> None:
    path = tmp_path / "list.html"
    path.write_text(
        "<h1>Report</h1>\n"
        "<p>Japan relies heavily on China for rare earths, and wants new suppliers soon.</p>\n"
        "<ul><li>Lynas in Australia</li><li>Minamitorishima mud</li></ul>\n"
        "<p>Both options take years to develop, the trade ministry in Tokyo said this week.</p>",
        "utf-8",
    )
    doc = read(path)
    assert [h.title for h in doc.headings] == ["Report"]
    assert doc.section_at(doc.text.index("Both options")) == "Report"


@pytest.mark.parametrize(
    ("encoding", "head", "body"),
    [
        ("big5", '<meta charset="big5">', "日本對中國的稀土依賴很高。"),
        (
            "gb2312",
            '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">',
            "日本对中国的稀土依赖很高。",
        ),
        ("shift_jis", "<meta charset='Shift_JIS'>", "レアアースの調達先を多様化する。"),
    ],
)
def test_html_declared_charset_is_used(tmp_path: Path, encoding: str, head: str, body: str) -> None:
    path = tmp_path / "legacy.html"
    path.write_bytes(f"<html><head>{head}</head><body><p>{body}</p></body></html>".encode(encoding))
    assert read(path).text == body


def test_html_invalid_bytes_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.html"
    path.write_bytes(b"<html><body><p>caf\xe9 \xff</p></body></html>")
    with pytest.raises(DocumentParseError, match=r"broken\.html: not valid UTF-8 \(byte 18"):
        read(path)
    path.write_bytes(b'<meta charset="big5"><p>\xa4\xe9\xa5\xbb\xff</p>')
    with pytest.raises(DocumentParseError, match=r"broken\.html: not valid big5hkscs"):
        read(path)
    path.write_bytes(b'<meta charset="no-such-charset"><p>x</p>')
    with pytest.raises(DocumentParseError, match="unknown charset"):
        read(path)
    path.write_text("<html><body><script>only()</script></body></html>", "utf-8")
    with pytest.raises(DocumentParseError, match="no text content"):
        read(path)


# --- PDF -------------------------------------------------------------------------------------


def test_pdf_cjk_structure(zh_pdf: Path) -> None:
    doc = read(zh_pdf)
    assert doc.format == "pdf"
    assert doc.title == "第六章 日本製造業供應鏈安全"
    assert doc.warnings == ()  # a correctly mapped CJK text layer is not reported
    assert [(h.level, h.title) for h in doc.headings] == [
        (1, "第六章 日本製造業供應鏈安全"),
        (2, "貳、戰略資源與稀土供應鏈安全"),
        (2, "參、跨國併購與鋼鐵戰略自主"),
        (2, "肆、軍民融合與造船產業布局"),
    ]
    # running header and page folios are gone; the cut sentence is whole again
    assert HEADER not in doc.text and "- 1 -" not in doc.text
    assert "\n\n2\n\n" not in doc.text
    assert "共同投資冶煉產能，並且在二〇三〇年前把對中國的依賴降到五成以下。" in doc.text
    assert "日本對中國的稀土依賴很高¹，南鳥島海底泥含有大量稀土，政府計畫" in doc.text


def test_pdf_footnote_leaves_the_body(zh_pdf: Path) -> None:
    doc = read(zh_pdf)
    (note,) = doc.footnotes
    assert note.n == 1
    assert note.text == "〈日本稀土戰略〉，經濟產業省，https://www.meti.go.jp/rare-earth"
    assert note.urls == ("https://www.meti.go.jp/rare-earth",)
    # the note follows the whole section, not the page-1 half of the cut sentence
    assert note.char_start > doc.text.index("五成以下。")
    chunks = chunks_of(doc)
    assert any(c.kind == "footnotes" and "〈日本稀土戰略〉" in c.text for c in chunks)
    assert not any(c.kind == "body" and "〈日本稀土戰略〉" in c.text for c in chunks)
    cited = next(c for c in chunks if c.kind == "body" and "¹" in c.text)
    assert cited.footnotes == (1,)


def test_pdf_pages_and_lines(zh_pdf: Path) -> None:
    doc = read(zh_pdf)
    assert doc.page_of(doc.text.index("南鳥島")) == 1
    assert doc.page_of(doc.text.index("並且")) == 1
    assert doc.page_of(doc.text.index("在二〇三〇年前")) == 2
    assert doc.page_of(doc.text.index("日本製鐵")) == 2
    assert doc.page_of(doc.text.index("造船業")) == 3
    # lines of the kept text layer: title 1, heading 2, body 3-4, body 5-6, note 7, page 2 ...
    starts = ("第六章", "貳、", "日本對", "經濟產業省認為")
    assert [doc.line_of(doc.text.index(p)) for p in starts] == [1, 2, 3, 5]
    assert doc.line_of(doc.text.index("〈日本稀土戰略〉")) == 7
    assert doc.line_of(doc.text.index("在二〇三〇年前")) == 8
    joined = next(c for c in chunks_of(doc) if "並且在二〇三〇年前" in c.text)
    assert (joined.page_start, joined.page_end) == (1, 2)
    assert joined.section == "第六章 日本製造業供應鏈安全 > 貳、戰略資源與稀土供應鏈安全"
    later = next(c for c in chunks_of(doc) if "造船業" in c.text)
    assert (later.page_start, later.page_end) == (3, 3)


def body_page(c: Canvas) -> None:
    """No level-1 heading; a first paragraph longer than any title should be."""
    text(c, 72, 750, "美國鋼鐵公司的收購案歷時一年半，" * 2)
    text(c, 72, 734, "最後以一百四十一億美元成交，並附帶黃金股條款。" * 2)
    text(c, 72, 700, "參、跨國併購與鋼鐵戰略自主", 14)
    text(c, 72, 680, "日本製鐵以一百四十一億美元收購美國鋼鐵公司。")


@pytest.mark.parametrize(
    ("metadata", "expected"),
    [
        ("日本製造業供應鏈安全 2025", "日本製造業供應鏈安全 2025"),  # the document's own title
        ("Microsoft Word - draft-3.docx", "參、跨國併購與鋼鐵戰略自主"),  # a file name: not one
        (None, "參、跨國併購與鋼鐵戰略自主"),  # reportlab writes "untitled": the first heading
    ],
)
def test_pdf_title_is_metadata_or_first_heading(
    tmp_path: Path, metadata: str | None, expected: str
) -> None:
    path = tmp_path / "deal.pdf"
    canvas = Canvas(str(path))
    if metadata:
        canvas.setTitle(metadata)
    body_page(canvas)
    canvas.showPage()
    canvas.save()
    assert read(path).title == expected


def test_pdf_without_title_or_heading_is_named_by_its_doc_id(tmp_path: Path) -> None:
    def page(c: Canvas) -> None:
        text(c, 72, 750, "美國鋼鐵公司的收購案歷時一年半，最後以一百四十一億美元成交。")

    assert read(write_pdf(tmp_path / "steel-deal.pdf", [page])).title == "steel-deal"


def test_pdf_japanese_text(tmp_path: Path) -> None:
    def page(c: Canvas) -> None:
        text(c, 72, 750, "第一章 経済安全保障", 16, JA)
        text(c, 72, 715, "日本政府はレアアースの調達先を多様化する。", 12, JA)
        text(c, 72, 699, "南鳥島沖の海底泥の試掘は二〇二六年に始まる。", 12, JA)

    doc = read(write_pdf(tmp_path / "ja.pdf", [page]))
    assert doc.title == "第一章 経済安全保障"
    assert "日本政府はレアアースの調達先を多様化する。南鳥島沖の海底泥の試掘は" in doc.text


def test_pdf_latin_hyphenation(tmp_path: Path) -> None:
    def page(c: Canvas) -> None:
        for y, line in enumerate(
            (
                "Tokyo wants a reliable supply of rare earth informa-",
                "tion and magnets, and a new U.S.-",
                "Japan framework for critical minerals.",
            )
        ):
            text(c, 72, 700 - 15 * y, line, 12, "Helvetica")

    doc = read(write_pdf(tmp_path / "en.pdf", [page]))
    assert doc.text == (
        "Tokyo wants a reliable supply of rare earth information and magnets, "
        "and a new U.S.-Japan framework for critical minerals."
    )


def test_bad_pdfs_name_the_file_and_ingest_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "corrupt.pdf").write_bytes(random.Random(7).randbytes(4096))
    write_pdf(root / "locked.pdf", [zh_page2], encrypt="secret")
    write_pdf(root / "scan.pdf", [lambda c: c.rect(72, 72, 300, 500, fill=1)])
    (root / "note.txt").write_text("稀土是戰略資源。\n", "utf-8")
    (root / "page.html").write_text("<p>HTML 也能讀。</p>", "utf-8")
    with pytest.raises(DocumentParseError, match=r"corrupt\.pdf: not a readable PDF"):
        read(root / "corrupt.pdf")
    report = ingest_paths([root], root)
    reasons = {Path(e.path).name: e.reason for e in report.errors}
    assert sorted(reasons) == ["corrupt.pdf", "locked.pdf", "scan.pdf"]
    assert "encrypted" in reasons["locked.pdf"]
    assert reasons["scan.pdf"].startswith("no text layer (scanned PDF?)")  # OCR'd, if installed
    assert sorted(d.doc_id for d in report.documents) == ["note", "page"]
    with pytest.raises(DocumentParseError):
        ingest_paths([root], root, strict=True)


def test_missing_pdfminer_names_the_pip_command(
    zh_pdf: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delitem(sys.modules, "qa.ingest.pdf", raising=False)
    for name in [m for m in sys.modules if m == "pdfminer" or m.startswith("pdfminer.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "pdfminer", None)
    with pytest.raises(DependencyMissingError, match=r"pip install pdfminer\.six"):
        read(zh_pdf)


# --- end to end ------------------------------------------------------------------------------


def test_ingest_and_search_mixed_corpus(tmp_path: Path, zh_pdf: Path) -> None:
    root = tmp_path / "corpus"
    root.mkdir()
    (root / "note.txt").write_text("第一章 稀土\n\n日本的稀土依賴很高。\n", "utf-8")
    (root / "page.html").write_text(PAGE, "utf-8")
    (root / "report.pdf").write_bytes(zh_pdf.read_bytes())
    settings = Settings(
        embed_model="hash:64", corpus_dir=root, index_dir=tmp_path / "index", threads=1
    )
    outcome = ingest(settings, strict=True)
    assert sorted(d.doc_id for d in outcome.ingest.documents) == ["note", "page", "report"]
    retriever = open_retriever(settings)
    result = retriever.search("冶煉產能", mode="lexical")
    top = result.hits[0]
    assert top.citation.doc_id == "report"
    assert "冶煉產能" in top.text
    assert (top.citation.page, top.citation.page_end) == (1, 2)
    assert top.citation.section.endswith("貳、戰略資源與稀土供應鏈安全")
    for query in ("冶煉產能", "稀土", "Nippon Steel"):
        for hit in retriever.search(query, mode="lexical", top_k=10).hits:
            document = retriever.document(hit.citation.doc_id)
            assert document.text[hit.citation.char_start : hit.citation.char_end] == hit.text
            assert (hit.citation.page is not None) == (document.format == "pdf")
