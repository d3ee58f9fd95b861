"""Ingestion: discovery, canonical text, titles, headings, line numbers and error reporting.

The canonical text is rebuilt from the source's paragraphs (one per non-empty ``.txt`` line),
``"\n\n"`` between them; ``Document.line_runs`` maps each paragraph piece back to its line.
"""

from __future__ import annotations

import hashlib
import unicodedata
from pathlib import Path

import pytest
from conftest import CHAPTER, CHAPTER_TITLE, CORPUS, LEVEL2, NEWS

from qa.errors import DocumentParseError, QAError
from qa.ingest import IngestReport, ingest_paths, read_document
from qa.types import Document, Heading


def _source_lines(path: Path) -> list[str]:
    """The file as a reader sees it (BOM dropped, newlines normalised, NFC), cut into lines."""
    text = path.read_bytes().decode("utf-8-sig")
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    return text.split("\n")


def _pieces(doc: Document) -> list[tuple[int, int, int]]:
    """(start, end, source line) of every paragraph piece, the separator after it trimmed."""
    pieces = []
    for index, (start, line) in enumerate(doc.line_runs):
        end = doc.line_runs[index + 1][0] if index + 1 < len(doc.line_runs) else len(doc.text)
        piece = doc.text[start:end]
        for separator in ("\n\n", " "):  # paragraph break, or the glue of a joined sentence
            if piece.endswith(separator):
                end -= len(separator)
                break
        pieces.append((start, end, line))
    return pieces


def _by_id(report: IngestReport) -> dict[str, Document]:
    return {d.doc_id: d for d in report.documents}


@pytest.fixture(scope="module")
def corpus_docs() -> dict[str, Document]:
    report = ingest_paths([CORPUS], CORPUS, strict=True)
    assert report.errors == ()
    return _by_id(report)


# --- the bundled corpus -----------------------------------------------------------------------


def test_corpus_has_two_documents_named_by_stem(corpus_docs: dict[str, Document]) -> None:
    assert sorted(corpus_docs) == sorted([CHAPTER, NEWS])
    assert {p.stem for p in CORPUS.glob("*.txt")} == set(corpus_docs)
    for doc_id, doc in corpus_docs.items():
        assert doc.source_path == f"corpus/{doc_id}.txt"
        assert len(doc.content_hash) == 64


def test_corpus_titles(corpus_docs: dict[str, Document]) -> None:
    assert corpus_docs[CHAPTER].title == CHAPTER_TITLE
    news_title = corpus_docs[NEWS].title
    assert "日本聯手G7建「民主稀土鏈」" in news_title
    assert not news_title.startswith("date")
    assert "2026-01-14" not in news_title
    assert news_title == news_title.strip()


@pytest.mark.parametrize("doc_id", [CHAPTER, NEWS])
def test_corpus_canonical_text(corpus_docs: dict[str, Document], doc_id: str) -> None:
    """Every non-empty source line is one piece of the text, verbatim (stripped), exactly once."""
    doc = corpus_docs[doc_id]
    lines = _source_lines(CORPUS / f"{doc_id}.txt")
    assert "\r" not in doc.text
    assert unicodedata.is_normalized("NFC", doc.text)
    starts = [start for start, _ in doc.line_runs]
    assert starts[0] == 0
    assert starts == sorted(set(starts))
    pieces = _pieces(doc)
    assert sorted(line for _, _, line in pieces) == [
        number for number, line in enumerate(lines, start=1) if line.strip()
    ]
    assert pieces[-1][1] == len(doc.text)
    rebuilt = []
    for index, (start, end, line) in enumerate(pieces):
        assert doc.text[start:end] == lines[line - 1].strip()
        gap = doc.text[end : pieces[index + 1][0]] if index + 1 < len(pieces) else ""
        assert gap in ("\n\n", "", " ")  # a paragraph break, or the glue of a joined sentence
        rebuilt += [lines[line - 1].strip(), gap]
    assert "".join(rebuilt) == doc.text
    # only footnote definitions and author notes move: the body keeps the order of the file
    body = [
        line
        for start, _, line in pieces
        for block in doc.blocks
        if block.kind == "body" and block.char_start <= start < block.char_end
    ]
    assert body == sorted(body)


def test_chapter_headings(corpus_docs: dict[str, Document]) -> None:
    doc = corpus_docs[CHAPTER]
    level2 = [h.title for h in doc.headings if h.level == 2]
    assert level2 == list(LEVEL2)
    for heading in doc.headings:
        # each heading points at its own text in the canonical text, at the start of a line
        assert doc.text.startswith(heading.title, heading.char_start)
        assert heading.char_start == 0 or doc.text[heading.char_start - 1] == "\n"
    starts = [h.char_start for h in doc.headings]
    assert starts == sorted(starts)
    assert CHAPTER_TITLE in [h.title for h in doc.headings if h.level == 1]


def test_chapter_section_at_rare_earth(corpus_docs: dict[str, Document]) -> None:
    doc = corpus_docs[CHAPTER]
    heading = next(h for h in doc.headings if h.title == LEVEL2[1])
    following = next(h for h in doc.headings if h.title == LEVEL2[2])
    inside = doc.text.index("稀土", heading.char_start + len(heading.title))
    assert inside < following.char_start
    expected = f"{CHAPTER_TITLE} > {LEVEL2[1]}"
    assert doc.section_at(inside) == expected
    assert doc.section_at(heading.char_start) == expected
    assert doc.section_at(following.char_start - 1) == expected
    assert doc.section_at(following.char_start) == f"{CHAPTER_TITLE} > {LEVEL2[2]}"
    assert doc.section_at(len(doc.text) - 1) == f"{CHAPTER_TITLE} > {LEVEL2[-1]}"
    assert doc.section_at(0) == ""


@pytest.mark.parametrize("doc_id", [CHAPTER, NEWS])
def test_corpus_line_of_matches_file_lines(corpus_docs: dict[str, Document], doc_id: str) -> None:
    doc = corpus_docs[doc_id]
    lines = _source_lines(CORPUS / f"{doc_id}.txt")
    for start, end, number in _pieces(doc):
        assert doc.text[start:end] == lines[number - 1].strip()
        for offset in range(start, end):  # every character of the piece is on its source line
            assert doc.line_of(offset) == number, (offset, number)


# --- discovery --------------------------------------------------------------------------------


def test_recursion_and_doc_ids(small_corpus: Path) -> None:
    report = ingest_paths([small_corpus], small_corpus, strict=True)
    docs = _by_id(report)
    assert sorted(docs) == ["en", "sub/ja", "zh"]
    assert docs["sub/ja"].text == "レアアースの調達先を多様化する。"
    assert docs["sub/ja"].source_path == "corpus/sub/ja.txt"
    assert docs["en"].title == "Steel"
    assert docs["zh"].title == "第一章 稀土"


def test_hidden_and_unsupported_files_are_skipped(small_corpus: Path) -> None:
    (small_corpus / ".hidden.txt").write_text("秘密\n", "utf-8")
    (small_corpus / ".git").mkdir()
    (small_corpus / ".git" / "notes.txt").write_text("秘密\n", "utf-8")
    (small_corpus / "sub" / ".cache").mkdir()
    (small_corpus / "sub" / ".cache" / "x.md").write_text("# Cached\n", "utf-8")
    (small_corpus / "table.csv").write_text("a,b\n1,2\n", "utf-8")  # read since issue 26
    (small_corpus / "blob.bin").write_bytes(b"\x00\x01\x02")
    (small_corpus / "notes.markdown").write_text("# Notes\n\nbody\n", "utf-8")
    (small_corpus / "UPPER.TXT").write_text("大寫副檔名\n", "utf-8")
    report = ingest_paths([small_corpus], small_corpus)
    assert report.errors == ()
    assert sorted(_by_id(report)) == ["UPPER", "en", "notes", "sub/ja", "table", "zh"]
    assert [Path(s.path).name for s in report.skipped] == ["blob.bin"]  # named, not silent


def test_hidden_root_itself_is_walked(tmp_path: Path) -> None:
    # only parts below the given folder count as hidden
    root = tmp_path / ".corpus"
    root.mkdir()
    (root / "a.txt").write_text("內容\n", "utf-8")
    report = ingest_paths([root], root, strict=True)
    assert [d.doc_id for d in report.documents] == ["a"]


def test_single_file_argument(small_corpus: Path) -> None:
    report = ingest_paths([small_corpus / "sub" / "ja.txt"], small_corpus, strict=True)
    assert [d.doc_id for d in report.documents] == ["sub/ja"]
    report = ingest_paths([small_corpus / "zh.txt"], small_corpus / "sub", strict=True)
    assert [d.doc_id for d in report.documents] == ["zh"]  # outside the root: file stem


def test_explicit_unsupported_file_is_an_error(small_corpus: Path) -> None:
    sheet = small_corpus / "table.xls"  # the binary Excel format: no reader takes it
    sheet.write_bytes(b"\xd0\xcf\x11\xe0")
    report = ingest_paths([sheet, small_corpus / "zh.txt"], small_corpus)
    assert [d.doc_id for d in report.documents] == ["zh"]
    assert len(report.errors) == 1
    assert "table.xls" in str(report.errors[0])
    assert "unsupported" in report.errors[0].reason


def test_duplicate_doc_id_is_an_error(small_corpus: Path) -> None:
    (small_corpus / "zh.md").write_text("# 重複\n", "utf-8")
    report = ingest_paths([small_corpus], small_corpus)
    assert sorted(_by_id(report)) == ["en", "sub/ja", "zh"]
    assert len(report.errors) == 1
    assert "zh" in report.errors[0].reason
    with pytest.raises(DocumentParseError):
        ingest_paths([small_corpus], small_corpus, strict=True)


# --- canonicalisation -------------------------------------------------------------------------


def _read(path: Path) -> Document:
    return read_document(path, path.parent)


def test_crlf_cr_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "mixed.txt"
    path.write_bytes("\ufeff第一行\r\n第二行\r第三行\n\r\n第五行".encode())
    doc = _read(path)
    assert doc.text == "第一行\n\n第二行\n\n第三行\n\n第五行"
    assert doc.line_runs == ((0, 1), (5, 2), (10, 3), (15, 5))
    assert doc.title == "第一行"
    assert doc.line_of(0) == 1
    assert doc.line_of(doc.text.index("第二行")) == 2
    assert doc.line_of(doc.text.index("第三行")) == 3
    assert doc.line_of(doc.text.index("第五行")) == 5
    assert doc.line_of(len(doc.text) - 1) == 5
    # the hash is of the raw bytes, not of the canonical text

    assert doc.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()


def test_bom_only_at_start_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "bom.txt"
    path.write_bytes(b"\xef\xbb\xbfabc\n")
    assert _read(path).text == "abc"
    path.write_bytes(b"abc\xef\xbb\xbf\n")  # elsewhere U+FEFF is text (a zero-width no-break space)
    assert _read(path).text == "abc\ufeff"


def test_nfd_becomes_nfc(tmp_path: Path) -> None:
    composed = "Café Tōkyō 한국어 ガバナンス\n第二行 é\n"
    decomposed = unicodedata.normalize("NFD", composed)
    assert decomposed != composed
    path = tmp_path / "nfd.txt"
    path.write_text(decomposed, "utf-8")
    doc = _read(path)
    assert doc.text == composed.strip().replace("\n", "\n\n")
    assert doc.line_of(doc.text.index("第二行")) == 2
    assert doc.line_of(doc.text.index("é", doc.text.index("第二行"))) == 2


def test_line_of_matches_source_lines(tmp_path: Path) -> None:
    source_lines = ["標題", "", "  縮排的一行", "Latin line", "", "", "最後一行"]
    path = tmp_path / "lines.txt"
    path.write_bytes("\r\n".join(source_lines).encode())
    doc = _read(path)
    assert doc.text == "標題\n\n縮排的一行\n\nLatin line\n\n最後一行"  # paragraphs, stripped
    file_lines = path.read_text("utf-8").splitlines()
    assert file_lines == source_lines
    for number, line in enumerate(file_lines, start=1):
        if line.strip():
            start = doc.text.index(line.strip())
            for offset in range(start, start + len(line.strip())):
                assert doc.line_of(offset) == number


# --- errors -----------------------------------------------------------------------------------


def test_invalid_utf8_is_reported_and_others_survive(small_corpus: Path) -> None:
    bad = small_corpus / "bad.txt"
    bad.write_bytes("好的開頭".encode() + b"\xff\xfe broken\n")
    report = ingest_paths([small_corpus], small_corpus)
    assert sorted(_by_id(report)) == ["en", "sub/ja", "zh"]
    assert len(report.errors) == 1
    error = report.errors[0]
    assert isinstance(error, DocumentParseError)
    assert isinstance(error, QAError)
    assert "bad.txt" in str(error)
    assert "bad.txt" in error.path
    assert "UTF-8" in error.reason

    with pytest.raises(DocumentParseError, match=r"bad\.txt"):
        ingest_paths([small_corpus], small_corpus, strict=True)


def test_invalid_utf8_after_bom_names_the_bad_byte(tmp_path: Path) -> None:
    path = tmp_path / "bom-bad.txt"
    path.write_bytes(b"\xef\xbb\xbfabc\xffdef\n")
    with pytest.raises(DocumentParseError) as info:
        _read(path)
    assert "byte 6: b'\\xff'" in info.value.reason


@pytest.mark.parametrize(
    "raw",
    [b"", b"   \n\n\t\r\n", b"\xef\xbb\xbf", "\u3000\n".encode()],
    ids=["empty", "whitespace", "bom-only", "ideographic-space"],
)
def test_empty_file_is_an_error(small_corpus: Path, raw: bytes) -> None:
    (small_corpus / "empty.txt").write_bytes(raw)
    report = ingest_paths([small_corpus], small_corpus)
    assert len(report.documents) == 3
    assert [e.path for e in report.errors] == ["corpus/empty.txt"]
    assert "empty" in report.errors[0].reason
    with pytest.raises(DocumentParseError, match=r"empty\.txt"):
        ingest_paths([small_corpus], small_corpus, strict=True)


def test_nul_bytes_are_an_error(small_corpus: Path) -> None:
    (small_corpus / "binary.txt").write_bytes(b"text\x00more text\n")
    report = ingest_paths([small_corpus], small_corpus)
    assert len(report.documents) == 3
    assert len(report.errors) == 1
    assert "binary.txt" in str(report.errors[0])
    assert "NUL" in report.errors[0].reason
    with pytest.raises(DocumentParseError, match=r"binary\.txt"):
        ingest_paths([small_corpus], small_corpus, strict=True)


@pytest.mark.parametrize("strict", [False, True])
def test_missing_explicit_file(small_corpus: Path, strict: bool) -> None:
    missing = small_corpus / "missing.txt"
    with pytest.raises(DocumentParseError, match=r"missing\.txt") as info:
        ingest_paths([missing], small_corpus, strict=strict)
    assert info.value.path == str(missing)


# --- Markdown ---------------------------------------------------------------------------------


def test_markdown_headings_and_title(tmp_path: Path) -> None:
    path = tmp_path / "doc.md"
    path.write_text("# Title\n\nIntro text.\n\n## Sub\n\nBody.\n\n### Deeper ###\n", "utf-8")
    doc = _read(path)
    assert doc.title == "Title"
    text = doc.text
    assert doc.headings == (
        Heading(1, "Title", 0),
        Heading(2, "Sub", text.index("Sub")),
        Heading(3, "Deeper", text.index("Deeper")),
    )
    assert doc.section_at(text.index("Body")) == "Title > Sub"
    assert doc.section_at(text.index("Intro")) == "Title"


def test_markdown_heading_ending_in_hash(tmp_path: Path) -> None:
    path = tmp_path / "lang.md"
    path.write_text("# C#\n\n## F# notes\n", "utf-8")
    doc = _read(path)
    assert [h.title for h in doc.headings] == ["C#", "F# notes"]
    assert doc.title == "C#"


def test_markdown_hash_lines_in_txt_are_not_headings(tmp_path: Path) -> None:
    path = tmp_path / "doc.txt"
    path.write_text("# Title\n\n## Sub\n", "utf-8")
    doc = _read(path)
    assert doc.headings == ()
    assert doc.title == "# Title"


def test_markdown_h1_wins_over_first_line(tmp_path: Path) -> None:
    path = tmp_path / "doc.markdown"
    path.write_text("前言段落，不是標題\n\n# 真正的標題\n", "utf-8")
    doc = _read(path)
    assert doc.title == "真正的標題"
    assert doc.headings == (Heading(1, "真正的標題", doc.text.index("真正的標題")),)


def test_plain_text_chinese_heading_levels(tmp_path: Path) -> None:
    path = tmp_path / "zh.txt"
    lines = [
        "第一章 供應鏈（作者）",
        "壹、背景",
        "一、稀土",
        "（一）南鳥島",
        "這一句話以句號結尾、不是標題。",
        "貳、結論",
    ]
    path.write_text("\n".join(lines) + "\n", "utf-8")
    doc = _read(path)
    assert [(h.level, h.title) for h in doc.headings] == [
        (1, "第一章 供應鏈（作者）"),
        (2, "壹、背景"),
        (3, "一、稀土"),
        (4, "（一）南鳥島"),
        (2, "貳、結論"),
    ]
    assert doc.title == "第一章 供應鏈"
    assert doc.section_at(doc.text.index("南鳥島")) == (
        "第一章 供應鏈（作者） > 壹、背景 > 一、稀土 > （一）南鳥島"
    )
    assert doc.section_at(doc.text.index("貳、結論")) == "第一章 供應鏈（作者） > 貳、結論"


def test_markdown_title_keeps_its_parenthetical(tmp_path: Path) -> None:
    path = tmp_path / "report.md"
    path.write_text("# Steel (2025)\n\nBody.\n", "utf-8")
    assert ingest_paths([path], tmp_path).documents[0].title == "Steel (2025)"


def test_markdown_code_fence_lines_are_not_headings(tmp_path: Path) -> None:
    path = tmp_path / "code.md"
    path.write_text("# Real\n\n```bash\n# not a heading\n```\n\n## Also real\n", "utf-8")
    headings = ingest_paths([path], tmp_path).documents[0].headings
    assert [h.title for h in headings] == ["Real", "Also real"]


def test_a_file_named_twice_is_ingested_once(small_corpus: Path) -> None:
    report = ingest_paths([small_corpus, small_corpus / "zh.txt"], small_corpus)
    assert not report.errors
    assert sorted(d.doc_id for d in report.documents) == ["en", "sub/ja", "zh"]
