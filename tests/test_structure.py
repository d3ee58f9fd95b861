"""Structure-aware ingestion on the real corpus: sections, footnotes, page breaks, metadata, blocks.

Expectations about the source files are derived from the files themselves where they can be
(which lines are footnote definitions, where a page break cuts a sentence), so a test checks the
library against the text, not against its own output.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest
from conftest import CHAPTER, CHAPTER_TITLE, CORPUS, LEVEL2, NEWS
from fastapi.testclient import TestClient

from qa.chunk import ChunkerSettings, chunk_document
from qa.ingest import ingest_paths, read_document
from qa.retrieve import Retriever
from qa.types import INDEXED_KINDS, Document, Footnote

TOC = (
    "第六章 川普 2.0 時代的日本製造業供應鏈安全重構（張務華）",
    "第七章 日本石破茂時期的防衛建設與川普新政影響（王尊彥）",
    "第八章 韓國新政府上任之後的韓半島安保局勢評估（林志豪）",
)
NEWS_TITLE = "日本聯手G7建「民主稀土鏈」"
NEWS_SUBHEADS = ("稀土進出口被中國下令禁止", "日方尋求替代方案的十多年", "國產稀土將成經濟安保命脈")
SUPERSCRIPTS = "⁰¹²³⁴⁵⁶⁷⁸⁹"
TO_DIGITS = str.maketrans(SUPERSCRIPTS, "0123456789")
TO_SUPERSCRIPT = str.maketrans("0123456789", SUPERSCRIPTS)
MARKER = re.compile(f"[{SUPERSCRIPTS}]+")
# In the chapter file a footnote definition is "¹¹ 〈…〉" or "31 “…”" / "41 齋藤萌，…" (one or two
# digits, a space); body lines that start with a number start with a year ("2025 年").
NOTE_LINE = re.compile(rf"^(?:[{SUPERSCRIPTS}]+|\d{{1,2}}) \S")
AUTHOR_NOTE_LINE = re.compile(r"^\* \S")
HEADING_LINE = re.compile(r"^(?:第.{1,3}章 |[壹貳參肆伍陸]、)")
SENTENCE_END = re.compile(rf"[。！？」”][{SUPERSCRIPTS}]*$")


def _lines(doc_id: str) -> list[str]:
    """Stripped lines of the source file (1-based: ``_lines(x)[n - 1]`` is line n)."""
    return [line.strip() for line in (CORPUS / f"{doc_id}.txt").read_text("utf-8").split("\n")]


def _run_of(document: Document, line: int) -> int:
    """Canonical offset where source line ``line`` starts (it is one paragraph piece)."""
    starts = [start for start, number in document.line_runs if number == line]
    assert len(starts) == 1, (line, starts)
    return starts[0]


def _note(document: Document, n: int) -> Footnote:
    note = document.footnote(n)
    assert note is not None, n
    return note


def _blocks(document: Document, kind: str) -> list[str]:
    return [document.text[b.char_start : b.char_end] for b in document.blocks if b.kind == kind]


def _paragraphs(document: Document, start: int, end: int) -> list[tuple[int, str]]:
    """(offset, text) of the "\\n\\n"-separated paragraphs of ``text[start:end]``."""
    found = []
    for match in re.finditer(r"[^\n]+(?:\n(?!\n)[^\n]+)*", document.text[start:end]):
        found.append((start + match.start(), match.group()))
    return found


def _search(client: TestClient, question: str, **options: Any) -> list[dict[str, Any]]:
    response = client.post("/v1/search", json={"question": question, **options})
    assert response.status_code == 200, response.text
    hits: list[dict[str, Any]] = response.json()["hits"]
    return hits


@pytest.fixture(scope="module")
def docs() -> dict[str, Document]:
    report = ingest_paths([CORPUS], CORPUS, strict=True)
    assert report.errors == ()
    return {d.doc_id: d for d in report.documents}


@pytest.fixture(scope="module")
def chapter(docs: dict[str, Document]) -> Document:
    return docs[CHAPTER]


@pytest.fixture(scope="module")
def news(docs: dict[str, Document]) -> Document:
    return docs[NEWS]


# --- section tree -------------------------------------------------------------------------------


def test_chapter_headings_are_the_chapter_and_its_six_parts(chapter: Document) -> None:
    assert [(h.level, h.title) for h in chapter.headings] == [
        (1, CHAPTER_TITLE),
        *((2, title) for title in LEVEL2),
    ]
    lines = _lines(CHAPTER)
    for heading in chapter.headings:
        # the heading is its own paragraph, the one line of the file that reads exactly so
        (number,) = [n for n, line in enumerate(lines, start=1) if line == heading.title]
        assert heading.char_start == _run_of(chapter, number)
        assert chapter.line_of(heading.char_start) == number
        assert chapter.text[heading.char_start :].split("\n\n", 1)[0] == heading.title


def test_chapter_toc_and_front_matter_are_blocks_not_headings(chapter: Document) -> None:
    assert _blocks(chapter, "toc") == ["\n\n".join(TOC)]
    assert _blocks(chapter, "front") == ["PART 3\n\n.....\n\n東北亞區域"]
    titles = [h.title for h in chapter.headings]
    assert not any(t.startswith(("第七章", "第八章")) or "（張務華）" in t for t in titles)
    toc = next(b for b in chapter.blocks if b.kind == "toc")
    toc_lines = [n for n, line in enumerate(_lines(CHAPTER), start=1) if line in TOC]
    assert [
        line for s, line in chapter.line_runs if toc.char_start <= s < toc.char_end
    ] == toc_lines
    assert all(h.char_start >= toc.char_end for h in chapter.headings)
    # neither is indexed
    chunks = chunk_document(chapter, ChunkerSettings())
    assert chunks[0].text == CHAPTER_TITLE
    assert not any(
        "第七章" in c.text or "東北亞區域" in c.text or "PART 3" in c.text for c in chunks
    )


def test_rare_earth_export_controls_are_cited_under_part_two(
    client: TestClient, corpus_retriever: Retriever
) -> None:
    expected = f"{CHAPTER_TITLE} > {LEVEL2[1]}"
    for hits in (
        _search(client, "稀土出口管制", mode="hybrid"),
        _search(client, "稀土出口管制", mode="lexical"),
    ):
        about = [h for h in hits if h["citation"]["doc_id"] == CHAPTER and "稀土出口" in h["text"]]
        assert about
        assert {h["citation"]["section"] for h in about} == {expected}
    top = corpus_retriever.search("稀土出口管制", top_k=1, mode="hybrid").hits[0]
    assert top.citation.doc_id == CHAPTER and "稀土出口" in top.text
    assert top.citation.section == expected


def test_news_subheads_are_level_two_under_the_title(news: Document) -> None:
    assert [(h.level, h.title) for h in news.headings] == [
        (1, NEWS_TITLE),
        *((2, title) for title in NEWS_SUBHEADS),
        (1, "更多 NOWnews 今日新聞 報導"),
        (1, "其他人也在看"),
    ]
    for title in NEWS_SUBHEADS:
        heading = next(h for h in news.headings if h.title == title)
        assert news.text.startswith(title + "\n\n", heading.char_start)
        inside = heading.char_start + len(title) + 2
        assert news.section_at(inside) == f"{NEWS_TITLE} > {title}"
    assert news.section_at(news.text.index("[NOWnews今日新聞]")) == NEWS_TITLE


# --- footnotes ----------------------------------------------------------------------------------


def test_chapter_has_47_notes_once_each_in_both_written_forms(chapter: Document) -> None:
    lines = _lines(CHAPTER)
    definition_lines = [n for n, line in enumerate(lines, start=1) if NOTE_LINE.match(line)]
    assert len(definition_lines) == 47
    assert [note.n for note in chapter.footnotes] == list(range(1, 48))
    plain = set()
    for note in chapter.footnotes:
        definition = chapter.text[note.char_start : note.char_end]
        prefix = definition[: len(definition) - len(note.text)]
        assert prefix.rstrip() in (str(note.n), str(note.n).translate(TO_SUPERSCRIPT))
        if prefix.rstrip() == str(note.n):
            plain.add(note.n)
        # the definition is one source line, verbatim
        (number,) = [line for start, line in chapter.line_runs if start == note.char_start]
        assert number in definition_lines
        assert definition == lines[number - 1]
    assert plain == {*range(1, 11), 31, 32, 33, 34, 41, 42, 43, 44}
    assert _note(chapter, 31).text.startswith("“‘Make America Shipbuilding Great Again’")
    assert _note(chapter, 41).text.startswith("齋藤萌，〈Meiji Seika")
    assert _note(chapter, 11).text.startswith("〈日本として初となるレアアース")


def test_note_text_never_stays_in_the_body(chapter: Document) -> None:
    body = "\n\n".join(_blocks(chapter, "body"))
    for note in chapter.footnotes:
        assert note.text not in body, note.n
    for block in chapter.blocks:
        inside = [
            n.n for n in chapter.footnotes if block.char_start <= n.char_start < block.char_end
        ]
        if block.kind == "footnotes":
            assert inside, block
            assert chapter.text[block.char_start : block.char_end] == "\n\n".join(
                chapter.text[_note(chapter, n).char_start : _note(chapter, n).char_end]
                for n in inside
            )
        else:
            assert inside == [], block


def test_every_marker_maps_to_a_defined_note(chapter: Document) -> None:
    found = [
        (b.char_start + m.start(), int(m.group().translate(TO_DIGITS)))
        for b in chapter.blocks
        if b.kind in ("body", "author")
        for m in MARKER.finditer(chapter.text[b.char_start : b.char_end])
    ]
    assert tuple(found) == chapter.markers
    assert sorted(n for _, n in found) == list(range(1, 48))  # each note is cited once
    for offset, n in found:
        note = chapter.footnote(n)
        assert note is not None
        # the definition follows the marker, at the end of the marker's section
        assert note.char_start > offset
        assert chapter.section_at(note.char_start) == chapter.section_at(offset)


def test_footnote_urls(chapter: Document) -> None:
    mofcom = "https://www.mofcom.gov.cn/article/zwgk/gkzcfb/202307/20230703419666.shtml"
    assert _note(chapter, 1).urls == (mofcom,)
    assert len(_note(chapter, 7).urls) == 2
    assert _note(chapter, 42).urls == (
        "https://www.kansensho.or.jp/modules/guidelines/index.php?content_id=36",
    )
    assert _note(chapter, 17).urls == ()
    for note in chapter.footnotes:
        assert all(url in note.text for url in note.urls)


def test_cross_references(chapter: Document) -> None:
    refs = {note.n: note.refers_to for note in chapter.footnotes}
    assert refs[17] == (14,)
    assert refs[19] == (15, 18)
    assert refs[22] == (13, 19)
    assert refs[25] == (14, 15, 20)
    for note in chapter.footnotes:
        named = tuple(int(n) for n in re.findall(r"註 ?(\d+)", note.text))
        assert note.refers_to == named, note.n
        assert all(chapter.footnote(n) is not None for n in named)
    assert [n.n for n in chapter.footnotes_for((17,))] == [17, 14]
    assert [n.n for n in chapter.footnotes_for((19, 22))] == [19, 15, 18, 22, 13]


def test_hit_citing_note_17_carries_17_and_14(client: TestClient) -> None:
    document = client.get(f"/v1/documents/{CHAPTER}").json()
    defined = {note["n"]: note for note in document["footnotes"]}
    hits = _search(client, "橋本英二 記者會 雙贏戰略", mode="lexical", top_k=10)
    citing = [h for h in hits if "¹⁷" in h["text"]]
    assert citing
    for hit in citing:
        notes = hit["citation"]["footnotes"]
        numbers = [note["n"] for note in notes]
        assert numbers[numbers.index(17) + 1] == 14
        for note in notes:
            assert note == defined[note["n"]]
        assert defined[17]["text"] == "同註 14。"
        assert defined[14]["text"].startswith("松田直樹，〈日本製鉄、日米連合で中国對抗")


def test_footnote_definitions_are_searchable(client: TestClient, chapter: Document) -> None:
    # ³⁵ is cited in part 肆 (line 171) but printed after the 伍 heading (line 175): the note
    # moves back to the end of 肆, the section of its marker.
    lines = _lines(CHAPTER)
    marker_line = next(n for n, line in enumerate(lines, start=1) if "。³⁵" in line)
    definition_line = next(n for n, line in enumerate(lines, start=1) if line.startswith("³⁵ "))
    heading_line = {title: lines.index(title) + 1 for title in LEVEL2}
    assert heading_line[LEVEL2[3]] < marker_line < heading_line[LEVEL2[4]] < definition_line
    marker = next(offset for offset, n in chapter.markers if n == 35)
    section = f"{CHAPTER_TITLE} > {LEVEL2[3]}"
    assert chapter.section_at(marker) == section

    hits = _search(
        client, "Fact Sheet Strategic Trade and Investment Agreement White House", mode="lexical"
    )
    notes = [h for h in hits if h["citation"]["kind"] == "footnotes"]
    fact_sheet = [h for h in notes if "Strategic Trade and Investment Agreement" in h["text"]]
    assert fact_sheet
    assert hits[0] in fact_sheet
    for hit in fact_sheet:
        assert hit["citation"]["section"] == section
        assert "³⁵ “Fact Sheet: President Donald J. Trump Secures" in hit["text"]


# --- page breaks --------------------------------------------------------------------------------


def _page_breaks(lines: list[str]) -> list[tuple[int, int]]:
    """(body line before, body line after) of each run of note lines between two body lines."""
    kinds = []
    for number, line in enumerate(lines, start=1):
        if not line:
            continue
        if NOTE_LINE.match(line) or AUTHOR_NOTE_LINE.match(line):
            kinds.append(("note", number))
        elif HEADING_LINE.match(line) or number < lines.index(LEVEL2[0]) + 1:
            kinds.append(("other", number))  # headings, and the front matter before 壹
        else:
            kinds.append(("body", number))
    breaks = []
    for is_note, run in itertools.groupby(enumerate(kinds), key=lambda k: k[1][0] == "note"):
        items = list(run)
        first, last = items[0][0], items[-1][0]
        if is_note and first > 0 and last + 1 < len(kinds):
            before, after = kinds[first - 1], kinds[last + 1]
            if before[0] == after[0] == "body":
                breaks.append((before[1], after[1]))
    return breaks


def test_sentences_cut_by_page_breaks_are_joined(chapter: Document) -> None:
    lines = _lines(CHAPTER)
    breaks = _page_breaks(lines)
    assert len(breaks) == 14
    cut = [(b, a) for b, a in breaks if not SENTENCE_END.search(lines[b - 1])]
    tails = ["進入 2024 年後，", "外交資源亦難", "數量超", "「國防經濟」體", "日鐵"]
    tails += ["為應對此挑戰，", "韓國政", "具戰略價值之", "工程師"]
    assert len(cut) == 9
    for (before, _), tail in zip(cut, tails, strict=True):
        assert lines[before - 1].endswith(tail), (before, tail)
    for before, after in cut:
        head, rest = lines[before - 1], lines[after - 1]
        assert head + rest in chapter.text  # CJK on both sides: joined without a space
        assert _run_of(chapter, after) == _run_of(chapter, before) + len(head)
    assert "外交資源亦難以整合運用" in chapter.text
    assert "進入 2024 年後，中國再度針對鎂" in chapter.text
    for before, after in breaks:
        if (before, after) not in cut:  # a whole sentence ends the page: paragraphs stay apart
            assert lines[before - 1] + "\n\n" + lines[after - 1] in chapter.text
    # and nothing else was joined
    joined = [
        (line, next_line)
        for (start, line), (next_start, next_line) in itertools.pairwise(chapter.line_runs)
        if chapter.text[start + len(lines[line - 1]) : next_start] != "\n\n"
    ]
    assert joined == cut


@pytest.mark.parametrize("doc_id", [CHAPTER, NEWS])
def test_body_paragraphs_end_with_a_whole_sentence(docs: dict[str, Document], doc_id: str) -> None:
    document = docs[doc_id]
    heading_starts = {h.char_start for h in document.headings}
    checked = 0
    for block in document.blocks:
        if block.kind != "body":
            continue
        for start, paragraph in _paragraphs(document, block.char_start, block.char_end):
            if start in heading_starts:
                continue
            assert SENTENCE_END.search(paragraph), paragraph[-30:]
            checked += 1
    assert checked > (40 if doc_id == CHAPTER else 12)


def test_author_note_sits_with_the_author_line(chapter: Document) -> None:
    lines = _lines(CHAPTER)
    author_line = lines.index("張務華*") + 1
    note_line = next(n for n, line in enumerate(lines, start=1) if line.startswith("* 張務華為"))
    assert note_line > lines.index(LEVEL2[1]) + 1  # printed inside 貳, at the first page's foot
    author = [b for b in chapter.blocks if b.kind == "author"]
    assert len(author) == 1
    assert chapter.text[author[0].char_start : author[0].char_end] == (
        f"張務華*\n\n{lines[note_line - 1]}"
    )
    assert chapter.line_of(author[0].char_start) == author_line
    assert chapter.line_of(author[0].char_end - 1) == note_line
    part_two = next(h for h in chapter.headings if h.title == LEVEL2[1])
    part_three = next(h for h in chapter.headings if h.title == LEVEL2[2])
    assert "張務華為" not in chapter.text[part_two.char_start : part_three.char_start]
    assert author[0].char_end < part_two.char_start
    assert chapter.section_at(author[0].char_start) == CHAPTER_TITLE


# --- metadata -----------------------------------------------------------------------------------


def test_metadata(chapter: Document, news: Document) -> None:
    assert (chapter.title, chapter.authors, chapter.date) == (CHAPTER_TITLE, ("張務華",), None)
    assert (news.title, news.authors, news.date) == (NEWS_TITLE, ("鄭仲嵐",), "2026-01-14")
    assert chapter.format == news.format == "text"


def test_metadata_in_the_api(client: TestClient) -> None:
    listed = {d["doc_id"]: d for d in client.get("/v1/documents").json()["data"]}
    expected = {
        CHAPTER: (CHAPTER_TITLE, ["張務華"], None),
        NEWS: (NEWS_TITLE, ["鄭仲嵐"], "2026-01-14"),
    }
    for doc_id, (title, authors, date) in expected.items():
        assert (listed[doc_id]["title"], listed[doc_id]["authors"], listed[doc_id]["date"]) == (
            title,
            authors,
            date,
        )
        document = client.get(f"/v1/documents/{doc_id}").json()
        assert (document["title"], document["authors"], document["date"]) == (title, authors, date)
    seen = set()
    for question in ("南鳥島 稀土", "日鐵 美國鋼鐵", "片山皋月 G7"):
        for hit in _search(client, question, mode="lexical", top_k=10):
            citation = hit["citation"]
            title, authors, date = expected[citation["doc_id"]]
            assert (citation["title"], citation["authors"], citation["date"]) == (
                title,
                authors,
                date,
            )
            seen.add(citation["doc_id"])
    assert seen == {CHAPTER, NEWS}


# --- news page furniture ------------------------------------------------------------------------


def test_news_blocks(news: Document) -> None:
    lines = _lines(NEWS)
    assert [b.kind for b in news.blocks] == [
        "body",
        "author",
        "boilerplate",
        "more-reports",
        "related",
    ]
    body, author, boilerplate, more, related = (
        news.text[b.char_start : b.char_end] for b in news.blocks
    )
    assert body.startswith(lines[0]) and body.endswith("而是定義科技命脈的政治馬拉松。")
    assert author == lines[19] and author.startswith("●作者：鄭仲嵐／駐日本東京記者")
    assert boilerplate == f"{lines[20]}\n\n{lines[21]}"
    assert boilerplate.startswith("●本文為作者評論意見") and "●《今日廣場》歡迎來稿" in boilerplate
    assert more == "\n\n".join(lines[22:26])
    assert more.startswith("更多 NOWnews 今日新聞 報導\n\n") and more.count("\n\n") == 3
    assert related == "\n\n".join(line for line in lines[26:] if line)
    assert related.startswith("其他人也在看")
    assert news.blocks[-1].char_end == len(news.text)


def test_page_furniture_is_never_indexed(client: TestClient, corpus_retriever: Retriever) -> None:
    news = corpus_retriever.document(NEWS)
    unindexed = [
        news.text[b.char_start : b.char_end] for b in news.blocks if b.kind not in INDEXED_KINDS
    ]
    assert len(unindexed) == 3
    for chunk in corpus_retriever.index.chunks:
        document = corpus_retriever.document(chunk.doc_id)
        (block,) = [
            b
            for b in document.blocks
            if b.char_start <= chunk.char_start and chunk.char_end <= b.char_end
        ]
        assert block.kind == chunk.kind in INDEXED_KINDS
        for needle in ("本文為作者評論意見", "歡迎來稿", "名家論壇》", "其他人也在看", "法說會"):
            assert needle not in chunk.text
    hits = _search(client, "台積電 法說會", mode="lexical", top_k=50)
    assert hits  # the chapter mentions 台積電; the related-stories teaser is not there
    assert not any("法說會" in h["text"] for h in hits)
    assert "股民不買單？台積電法說會前夕" in unindexed[2]
    for question in ("本文為作者評論意見 不代表立場", "今日廣場 歡迎來稿", "其他人也在看 台股"):
        for hit in _search(client, question, top_k=20):
            assert all(not (block in hit["text"] or hit["text"] in block) for block in unindexed), (
                question
            )


def test_author_bio_is_an_indexed_author_block(client: TestClient) -> None:
    hits = _search(client, "鄭仲嵐 駐日本東京記者", mode="lexical", top_k=3)
    assert hits[0]["citation"]["kind"] == "author"
    assert hits[0]["citation"]["doc_id"] == NEWS
    assert hits[0]["text"].startswith("●作者：鄭仲嵐／駐日本東京記者。")


# --- Markdown and small generated files ---------------------------------------------------------


def _read(tmp_path: Path, name: str, text: str) -> Document:
    path = tmp_path / name
    path.write_text(text, "utf-8")
    return read_document(path, tmp_path)


def test_markdown_footnote(tmp_path: Path) -> None:
    doc = _read(
        tmp_path,
        "notes.md",
        "# Title\n\n## Sub\n\nA claim with a source.[^1] And a second\nline of it.\n\n"
        "[^1]: Source, https://example.org/x\n",
    )
    assert doc.format == "markdown"
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Title"), (2, "Sub")]
    assert doc.text == (
        "Title\n\nSub\n\nA claim with a source.[^1] And a second\nline of it.\n\n"
        "[^1]: Source, https://example.org/x"
    )
    (note,) = doc.footnotes
    assert (note.n, note.text, note.urls, note.refers_to) == (
        1,
        "Source, https://example.org/x",
        ("https://example.org/x",),
        (),
    )
    assert doc.text[note.char_start : note.char_end] == "[^1]: Source, https://example.org/x"
    assert doc.markers == ((doc.text.index("[^1]"), 1),)
    assert [(b.kind, doc.text[b.char_start : b.char_end]) for b in doc.blocks] == [
        ("body", doc.text[: doc.text.index("\n\n[^1]:")]),
        ("footnotes", "[^1]: Source, https://example.org/x"),
    ]
    assert doc.line_of(note.char_start) == 8
    assert doc.line_of(doc.text.index("line of it")) == 6
    chunks = chunk_document(doc, ChunkerSettings())
    cited = [c for c in chunks if c.kind == "body" and "[^1]" in c.text]
    assert cited and all(c.footnotes == (1,) for c in cited)
    assert [c.kind for c in chunks if "example.org" in c.text] == ["footnotes"]


def test_markdown_notes_go_to_the_section_that_cites_them(tmp_path: Path) -> None:
    doc = _read(
        tmp_path,
        "two.md",
        "# T\n\n## A\n\nFirst claim.[^1]\n\n## B\n\nSecond claim.[^2]\n\n"
        "[^1]: One, 2020.\n\n[^2]: Two, 2021.\n",
    )
    assert doc.text == (
        "T\n\nA\n\nFirst claim.[^1]\n\n[^1]: One, 2020.\n\n"
        "B\n\nSecond claim.[^2]\n\n[^2]: Two, 2021."
    )
    assert [doc.section_at(n.char_start) for n in doc.footnotes] == ["T > A", "T > B"]
    assert [doc.line_of(n.char_start) for n in doc.footnotes] == [11, 13]


def test_markdown_consecutive_footnote_definitions_are_separate_notes(tmp_path: Path) -> None:
    source = (
        "# 報告\n\n## 壹、前言\n\n第一句。[^1] 第二句。[^2]\n\n"
        "[^1]: 〈來源一〉，2024 年。\n[^2]: 〈來源二〉，https://example.org/2\n"
        "    續行。\n[^3]: 〈來源三〉，2025 年。\n"
    )
    doc = _read(tmp_path, "notes.md", source)
    assert [(n.n, n.text) for n in doc.footnotes] == [
        (1, "〈來源一〉，2024 年。"),
        (2, "〈來源二〉，https://example.org/2\n續行。"),
        (3, "〈來源三〉，2025 年。"),
    ]
    assert doc.footnotes[1].urls == ("https://example.org/2",)
    lines = source.split("\n")
    for note in doc.footnotes:  # each definition cites its own source line
        assert lines[doc.line_of(note.char_start) - 1].startswith(f"[^{note.n}]:")
    chunks = chunk_document(doc, ChunkerSettings())
    (cited,) = [c for c in chunks if c.kind == "body" and "第二句" in c.text]
    assert cited.footnotes == (1, 2)


def test_markdown_hit_text_has_no_heading_markers(tmp_path: Path) -> None:
    source = (
        "# 日本的供應鏈\n\n前言一句。\n\n## 貳、戰略資源 ##\n\n"
        "稀土的依賴度接近百分之百。\n\n### 一、對策\n\n分散來源。\n"
    )
    doc = _read(tmp_path, "chain.md", source)
    assert "#" not in doc.text
    assert [(h.level, h.title) for h in doc.headings] == [
        (1, "日本的供應鏈"),
        (2, "貳、戰略資源"),
        (3, "一、對策"),
    ]
    assert doc.section_at(doc.text.index("分散來源")) == "日本的供應鏈 > 貳、戰略資源 > 一、對策"
    lines = source.split("\n")
    chunks = chunk_document(doc, ChunkerSettings())
    assert chunks
    for chunk in chunks:
        assert "#" not in chunk.text
        assert doc.text[chunk.char_start : chunk.char_end] == chunk.text
        # the first and last lines a chunk cites hold its first and last characters
        assert chunk.text.split("\n")[0] in lines[chunk.line_start - 1]
        assert chunk.text.split("\n")[-1] in lines[chunk.line_end - 1]
    for heading in doc.headings:
        line = lines[doc.line_of(heading.char_start) - 1]
        assert line.startswith("#" * heading.level + " " + heading.title)


def test_markdown_numbered_heading_is_not_a_footnote(tmp_path: Path) -> None:
    doc = _read(tmp_path, "numbered.md", "# T\n\n## 1 Overview (2024)\n\nBody text.\n")
    assert doc.footnotes == ()
    assert [h.title for h in doc.headings] == ["T", "1 Overview (2024)"]


def test_text_page_break_and_note(tmp_path: Path) -> None:
    doc = _read(
        tmp_path,
        "page.txt",
        "壹、前言\n這是一個被分頁切斷的句\n¹ 〈來源〉，2025 年。\n子，在下一頁繼續。¹\n下一段。\n",
    )
    assert doc.text == (
        "壹、前言\n\n這是一個被分頁切斷的句子，在下一頁繼續。¹\n\n下一段。\n\n¹ 〈來源〉，2025 年。"
    )
    assert doc.line_runs == ((0, 1), (6, 2), (17, 4), (29, 5), (35, 3))
    assert doc.line_of(doc.text.index("子，在下一頁")) == 4
    assert [b.kind for b in doc.blocks] == ["body", "footnotes"]


# --- regressions: what is not structure -----------------------------------------------------------


def test_a_paragraph_opening_with_a_number_is_not_a_footnote(tmp_path: Path) -> None:
    doc = _read(
        tmp_path,
        "numbers.txt",
        "壹、前言\n1,500 億美元的 MASGA 計畫於 2025 年 7 月啟動。\n"
        "2.5 兆日圓的基金也在 2025 年成立。\n",
    )
    assert doc.footnotes == ()
    assert [b.kind for b in doc.blocks] == ["body"]
    assert "1,500 億美元" in doc.text and "2.5 兆日圓" in doc.text
    real = _read(tmp_path, "real.txt", "壹、前言\n一句話。¹\n1 〈來源〉，2025 年。\n")
    assert [(n.n, n.text) for n in real.footnotes] == [(1, "〈來源〉，2025 年。")]


def test_markdown_lists_and_emphasis_are_body(tmp_path: Path) -> None:
    doc = _read(
        tmp_path,
        "list.md",
        "# Title\n\n**Note**\n\n"
        "An introduction that is long enough to be an ordinary paragraph.\n\n"
        "* first point\n* second point\n\nIn short\n\n"
        "A closing paragraph that is long enough to be an ordinary paragraph too.\n",
    )
    assert doc.authors == ()
    assert [(h.level, h.title) for h in doc.headings] == [(1, "Title")]  # no guessed subheads
    assert [b.kind for b in doc.blocks] == ["body"]
    # the list stays where it was written
    assert doc.text.index("* first point") < doc.text.index("In short")


def test_markdown_paragraph_is_not_joined_across_a_definition(tmp_path: Path) -> None:
    doc = _read(
        tmp_path,
        "table.md",
        "# T\n\nSee the table below[^1]\n\n[^1]: A source, 2024.\n\n| a | b |\n|---|---|\n",
    )
    assert "See the table below[^1]\n\n| a | b |" in doc.text
    assert doc.line_of(doc.text.index("| a |")) == 7


def test_starred_author_line_and_its_note(tmp_path: Path) -> None:
    doc = _read(
        tmp_path,
        "author.txt",
        "第一章 稀土\n王小明*\n壹、前言\n第一句。\n* 王小明為研究員。\n"
        "第二句。\n* 不是作者註的條列。\n",
    )
    assert doc.authors == ("王小明",)
    assert [doc.text[b.char_start : b.char_end] for b in doc.blocks if b.kind == "author"] == [
        "王小明*\n\n* 王小明為研究員。"
    ]
    assert doc.text.endswith("第二句。\n\n* 不是作者註的條列。")
