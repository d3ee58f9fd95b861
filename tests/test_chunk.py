"""Chunking: exact spans, token budgets, sentence splitting, overlap and section boundaries."""

from __future__ import annotations

import bisect
import hashlib
import itertools
import re
import unicodedata

import pytest
from conftest import CHAPTER, CORPUS, NEWS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qa.chunk import ChunkerSettings, chunk_document, cl100k_base, sentence_spans
from qa.errors import ConfigError
from qa.ingest import ingest_paths
from qa.ingest.structure import find_headings
from qa.types import INDEXED_KINDS, Chunk, Document

FRAGMENTS = [
    "稀土",
    "供應鏈",
    "日本",
    "南鳥島海底泥",
    "經濟安全保障推進法",
    "レアアース",
    "Nippon",
    "Steel",
    "U.S.",
    "MASGA",
    "2.5",
    "14.1",
    "1,500",
    "2025",
    "¹²",
    "「",
    "」",
    "。",
    "！",
    "？",
    "；",
    "，",
    "、",
    "!",
    "?",
    ".",
    ". ",
    ",",
    " ",
    "  ",
    "\u3000",
    "\t",
    "\n",
    "\n\n",
    "\n  \n",
]
HEADING_LINES = ["\n壹、前言\n", "\n貳、稀土供應鏈\n", "\n一、南鳥島\n", "\n第二章 鋼鐵\n"]

texts = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.text(alphabet="稀土鋼鐵造船abcXYZ0123 。.\n", max_size=12),
    ),
    min_size=1,
    max_size=120,
).map("".join)
texts_with_headings = st.lists(
    st.one_of(st.sampled_from(FRAGMENTS), st.sampled_from(HEADING_LINES)),
    min_size=1,
    max_size=150,
).map("".join)

PROPERTY_SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def make_document(text: str, *, headings: bool = False, doc_id: str = "gen") -> Document:
    return Document(
        doc_id=doc_id,
        title="generated",
        source_path=f"{doc_id}.txt",
        text=text,
        content_hash=hashlib.sha256(text.encode()).hexdigest(),
        headings=find_headings(text, markdown=False) if headings else (),
    )


def line_number(text: str, offset: int) -> int:
    return text[:offset].count("\n") + 1


def check_source_line(document: Document, offset: int, line: int, source_lines: list[str]) -> None:
    """``offset`` lies in a paragraph piece that is source line ``line``, verbatim (stripped)."""
    starts = [start for start, _ in document.line_runs]
    run_start, run_line = document.line_runs[bisect.bisect_right(starts, offset) - 1]
    source = source_lines[run_line - 1].strip()
    assert document.text.startswith(source, run_start)
    assert run_start <= offset < run_start + len(source)  # not in a separator
    assert line == run_line == document.line_of(offset)


def check_invariants(
    document: Document,
    chunks: list[Chunk],
    max_tokens: int,
    source_lines: list[str] | None = None,
) -> None:
    """Invariants of any chunking; ``source_lines`` for a document built by ingestion."""
    text = document.text
    encoding = cl100k_base()
    covered = [False] * len(text)
    for expected_ordinal, chunk in enumerate(chunks):
        assert chunk.doc_id == document.doc_id
        assert chunk.ordinal == expected_ordinal
        assert 0 <= chunk.char_start < chunk.char_end <= len(text)
        assert text[chunk.char_start : chunk.char_end] == chunk.text
        assert chunk.text and not chunk.text[0].isspace() and not chunk.text[-1].isspace()
        assert chunk.n_tokens == len(encoding.encode(chunk.text))
        assert chunk.n_tokens <= max_tokens
        if source_lines is None:  # verbatim text: a source line per newline
            assert chunk.line_start == line_number(text, chunk.char_start)
            assert chunk.line_end == line_number(text, chunk.char_end - 1)
        else:
            check_source_line(document, chunk.char_start, chunk.line_start, source_lines)
            check_source_line(document, chunk.char_end - 1, chunk.line_end, source_lines)
        # a chunk stays inside one indexed block and carries its kind
        blocks = [b for b in document.blocks if b.char_start <= chunk.char_start < b.char_end]
        assert len(blocks) == 1 and chunk.char_end <= blocks[0].char_end
        assert chunk.kind == blocks[0].kind and chunk.kind in INDEXED_KINDS
        assert chunk.section == document.section_at(chunk.char_start)
        assert chunk.anchor == f"{document.doc_id}#c{chunk.char_start}-{chunk.char_end}"
        for i in range(chunk.char_start, chunk.char_end):
            covered[i] = True
        # never across a heading: no heading starts strictly inside the chunk
        for heading in document.headings:
            assert not chunk.char_start < heading.char_start < chunk.char_end
    starts = [c.char_start for c in chunks]
    assert starts == sorted(starts)
    ends = [c.char_end for c in chunks]
    assert ends == sorted(ends)
    # every visible character of an indexed block is in a chunk; nothing of the other blocks is
    indexed = [False] * len(text)
    for block in document.blocks:
        if block.kind in INDEXED_KINDS:
            indexed[block.char_start : block.char_end] = [True] * (
                block.char_end - block.char_start
            )
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and indexed[i] > covered[i]]
    assert missing == [], f"uncovered characters at {missing[:10]}"
    leaked = [i for i in range(len(text)) if covered[i] and not indexed[i]]
    assert leaked == [], f"characters of unindexed blocks chunked at {leaked[:10]}"


# --- property-based ---------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(text=texts, max_tokens=st.integers(16, 64), overlap=st.integers(0, 2))
def test_chunk_invariants(text: str, max_tokens: int, overlap: int) -> None:
    document = make_document(text)
    chunks = chunk_document(
        document, ChunkerSettings(max_tokens=max_tokens, overlap_sentences=overlap)
    )
    check_invariants(document, chunks, max_tokens)
    if not text.strip():
        assert chunks == []


@PROPERTY_SETTINGS
@given(text=texts_with_headings, max_tokens=st.integers(16, 48), overlap=st.integers(0, 2))
def test_chunk_invariants_with_headings(text: str, max_tokens: int, overlap: int) -> None:
    document = make_document(text, headings=True)
    chunks = chunk_document(
        document, ChunkerSettings(max_tokens=max_tokens, overlap_sentences=overlap)
    )
    check_invariants(document, chunks, max_tokens)
    for previous, current in itertools.pairwise(chunks):
        if previous.section == current.section and overlap == 0:
            assert current.char_start >= previous.char_end
        # progress: every chunk starts later than the one before
        assert current.char_start > previous.char_start


@PROPERTY_SETTINGS
@given(text=texts)
def test_sentence_spans_invariants(text: str) -> None:
    spans = sentence_spans(text)
    previous_end = 0
    for start, end in spans:
        assert previous_end <= start < end <= len(text)
        piece = text[start:end]
        assert not piece[0].isspace() and not piece[-1].isspace()
        assert "\n" not in piece
        previous_end = end
    covered = {i for start, end in spans for i in range(start, end)}
    assert all(i in covered for i, ch in enumerate(text) if not ch.isspace())


# --- sentence splitting -----------------------------------------------------------------------


def sentences(text: str) -> list[str]:
    return [text[start:end] for start, end in sentence_spans(text)]


def test_chinese_sentence_terminators() -> None:
    text = "日本對中國的稀土依賴很高。南鳥島海底泥含有稀土！真的嗎？是的；然後呢"
    assert sentences(text) == [
        "日本對中國的稀土依賴很高。",
        "南鳥島海底泥含有稀土！",
        "真的嗎？",
        "是的；",
        "然後呢",
    ]


def test_closing_quotes_and_footnotes_stay_with_sentence() -> None:
    text = "他說「稀土很重要。」然後離開了。這是事實。¹²接著是下一句！」」最後"
    assert sentences(text) == [
        "他說「稀土很重要。」",
        "然後離開了。",
        "這是事實。¹²",
        "接著是下一句！」」",
        "最後",
    ]


def test_repeated_terminators_stay_together() -> None:
    assert sentences("真的嗎？！不會吧。。。好") == ["真的嗎？！", "不會吧。。。", "好"]


def test_latin_sentences() -> None:
    text = "Prices rose 2.5 percent. U.S.Steel was sold for 14.1 billion. Really? Yes! End"
    assert sentences(text) == [
        "Prices rose 2.5 percent.",
        "U.S.Steel was sold for 14.1 billion.",
        "Really?",
        "Yes!",
        "End",
    ]


def test_initials_and_abbreviations_do_not_end_a_sentence() -> None:
    text = (
        "2025 年，美國海軍部長約翰·費蘭（John P. Phelan）直言。日鐵收購 U.S. Steel 一案。"
        "See Vol. 90, No. 103, pp. 12-14 by Smith et al. in Nature. It was Plan B. Next one."
    )
    assert sentences(text) == [
        "2025 年，美國海軍部長約翰·費蘭（John P. Phelan）直言。",
        "日鐵收購 U.S. Steel 一案。",
        "See Vol. 90, No. 103, pp. 12-14 by Smith et al. in Nature.",
        "It was Plan B. Next one.",
    ]


def test_full_stop_at_end_of_line_or_text() -> None:
    assert sentences("First one.\nSecond one.") == ["First one.", "Second one."]
    assert sentences("Version 3.11 ships.") == ["Version 3.11 ships."]


def test_newlines_always_split() -> None:
    text = "第一行沒有句號\n第二行也沒有\n\n  \n  第四行有縮排  \nlatin line"
    assert sentences(text) == ["第一行沒有句號", "第二行也沒有", "第四行有縮排", "latin line"]
    spans = sentence_spans(text)
    assert text[spans[2][0] : spans[2][1]] == "第四行有縮排"


def test_sentence_spans_respect_bounds() -> None:
    text = "前文。中間一句。中間二句。後文。"
    start = text.index("中間一句")
    end = text.index("後文")
    assert [text[a:b] for a, b in sentence_spans(text, start, end)] == ["中間一句。", "中間二句。"]
    assert sentence_spans("", 0) == []
    assert sentence_spans("   \n\n ") == []


# --- long sentences ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sentence",
    [
        "稀土供應鏈安全" * 80,
        " ".join(f"word{i}" for i in range(300)),
        "經濟安全 economic security 2025 " * 40,
    ],
    ids=["cjk", "latin", "mixed"],
)
@pytest.mark.parametrize("max_tokens", [16, 40])
def test_long_sentence_is_cut_within_budget(sentence: str, max_tokens: int) -> None:
    document = make_document(sentence)
    encoding = cl100k_base()
    assert len(encoding.encode(sentence)) > max_tokens
    chunks = chunk_document(document, ChunkerSettings(max_tokens=max_tokens, overlap_sentences=0))
    assert len(chunks) > 1
    check_invariants(document, chunks, max_tokens)
    # pieces tile the sentence in order: only whitespace between consecutive pieces
    assert chunks[0].char_start == 0
    assert chunks[-1].char_end == len(sentence.rstrip())
    for previous, current in itertools.pairwise(chunks):
        assert current.char_start >= previous.char_end
        assert sentence[previous.char_end : current.char_start].strip() == ""
    joined = "".join(c.text for c in chunks)
    assert joined.replace(" ", "") == sentence.replace(" ", "")


# --- overlap ----------------------------------------------------------------------------------


SHORT_SENTENCES = "".join(f"第{i}句話講稀土供應鏈。" for i in range(1, 40))


def test_overlap_one_shares_boundary_sentence() -> None:
    document = make_document(SHORT_SENTENCES)
    chunks = chunk_document(document, ChunkerSettings(max_tokens=48, overlap_sentences=1))
    assert len(chunks) > 3
    check_invariants(document, chunks, 48)
    spans = set(sentence_spans(SHORT_SENTENCES))
    for previous, current in itertools.pairwise(chunks):
        shared = (current.char_start, previous.char_end)
        assert previous.char_start < current.char_start < previous.char_end
        assert shared in spans, SHORT_SENTENCES[shared[0] : shared[1]]
        assert previous.text.endswith(SHORT_SENTENCES[shared[0] : shared[1]])


def test_overlap_zero_does_not_overlap() -> None:
    document = make_document(SHORT_SENTENCES)
    chunks = chunk_document(document, ChunkerSettings(max_tokens=48, overlap_sentences=0))
    assert len(chunks) > 3
    check_invariants(document, chunks, 48)
    for previous, current in itertools.pairwise(chunks):
        assert current.char_start >= previous.char_end
    assert "".join(c.text for c in chunks) == SHORT_SENTENCES


def test_overlap_does_not_cross_sections() -> None:
    text = "壹、前言\n" + SHORT_SENTENCES + "\n貳、結論\n" + SHORT_SENTENCES
    document = make_document(text, headings=True)
    chunks = chunk_document(document, ChunkerSettings(max_tokens=48, overlap_sentences=1))
    check_invariants(document, chunks, 48)
    boundary = text.index("貳、結論")
    before = [c for c in chunks if c.char_start < boundary]
    after = [c for c in chunks if c.char_start >= boundary]
    assert before and after
    assert all(c.char_end <= boundary for c in before)
    assert after[0].char_start == boundary
    assert {c.section for c in before} == {"壹、前言"}
    assert {c.section for c in after} == {"貳、結論"}


# --- the real corpus --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def corpus_docs() -> dict[str, Document]:
    report = ingest_paths([CORPUS], CORPUS, strict=True)
    return {d.doc_id: d for d in report.documents}


def corpus_lines(doc_id: str) -> list[str]:
    with open(CORPUS / f"{doc_id}.txt", encoding="utf-8-sig", newline=None) as handle:
        return unicodedata.normalize("NFC", handle.read()).split("\n")


@pytest.mark.parametrize("max_tokens", [256, 64])
def test_real_corpus_chunks(corpus_docs: dict[str, Document], max_tokens: int) -> None:
    chunk_settings = ChunkerSettings() if max_tokens == 256 else ChunkerSettings(max_tokens=64)
    assert chunk_settings.max_tokens == max_tokens
    for doc_id in (CHAPTER, NEWS):
        document = corpus_docs[doc_id]
        chunks = chunk_document(document, chunk_settings)
        assert len(chunks) > 1
        check_invariants(document, chunks, max_tokens, corpus_lines(doc_id))
        assert {c.doc_id for c in chunks} == {doc_id}
        assert {c.kind for c in chunks} == (
            {"body", "footnotes", "author"} if doc_id == CHAPTER else {"body", "author"}
        )


def test_chapter_chunks_never_hold_two_headings(corpus_docs: dict[str, Document]) -> None:
    document = corpus_docs[CHAPTER]
    chunks = chunk_document(document, ChunkerSettings())
    titles = [h.title for h in document.headings if h.level == 2]
    for chunk in chunks:
        assert sum(title in chunk.text for title in titles) <= 1
        assert chunk.section == document.section_at(chunk.char_start)
    rare_earth = [c for c in chunks if c.section.endswith("貳、戰略資源與稀土供應鏈安全")]
    assert rare_earth
    assert rare_earth[0].text.startswith("貳、戰略資源與稀土供應鏈安全")


# --- settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{"max_tokens": 8}, {"max_tokens": 15}, {"max_tokens": 0}, {"overlap_sentences": -1}]
)
def test_bad_settings_raise_config_error(kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError):
        ChunkerSettings(**kwargs)  # type: ignore[arg-type]


def test_minimum_settings_are_accepted() -> None:
    settings_ = ChunkerSettings(max_tokens=16, overlap_sentences=0)
    assert settings_.as_dict()["max_tokens"] == 16


SUPERSCRIPT_DIGITS = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹", "0123456789")


def test_real_corpus_chunks_name_the_notes_they_cite(corpus_docs: dict[str, Document]) -> None:
    document = corpus_docs[CHAPTER]
    chunks = chunk_document(document, ChunkerSettings())
    for chunk in chunks:
        if chunk.kind == "footnotes":  # a definition cites the notes its 同註 N names
            named = [
                n
                for note in document.footnotes
                if note.char_start < chunk.char_end and chunk.char_start < note.char_end
                for n in note.refers_to
            ]
        else:  # body text cites the notes of its superscript markers
            named = [
                int(marker.translate(SUPERSCRIPT_DIGITS))
                for marker in re.findall("[⁰¹²³⁴⁵⁶⁷⁸⁹]+", chunk.text)
            ]
        assert chunk.footnotes == tuple(dict.fromkeys(named)), chunk.text[:40]
    cited = {n for c in chunks if c.kind != "footnotes" for n in c.footnotes}
    assert cited == set(range(1, 48))
