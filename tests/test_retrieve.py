"""Retrieval on the bundled corpus with the real model: each mode finds its passages."""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pytest
from conftest import CHAPTER, NEWS

from qa.errors import DocumentNotFoundError, InvalidQueryError
from qa.retrieve import RetrievalSettings, Retriever
from qa.types import INDEXED_KINDS


def _texts(retriever: Retriever, question: str, mode: str, k: int = 5) -> list[str]:
    return [h.text for h in retriever.search(question, top_k=k, mode=mode).hits]  # type: ignore[arg-type]


def test_lexical_finds_exact_terms(corpus_retriever: Retriever) -> None:
    texts = _texts(corpus_retriever, "南鳥島 稀土泥", "lexical", k=3)
    assert all("南鳥島" in t for t in texts)


def test_lexical_folds_simplified_to_traditional(corpus_retriever: Retriever) -> None:
    traditional = corpus_retriever.search("日鐵收購美國鋼鐵", top_k=5, mode="lexical")
    simplified = corpus_retriever.search("日铁收购美国钢铁", top_k=5, mode="lexical")
    assert [h.citation.anchor for h in simplified.hits] == [
        h.citation.anchor for h in traditional.hits
    ]
    assert "日鐵" in simplified.hits[0].text and "鋼鐵" in simplified.hits[0].text


def test_lexical_folds_full_width_latin(corpus_retriever: Retriever) -> None:
    half = corpus_retriever.search("MASGA", top_k=3, mode="lexical")
    full = corpus_retriever.search("ＭＡＳＧＡ", top_k=3, mode="lexical")
    assert half.hits and "MASGA" in half.hits[0].text
    assert [h.citation.anchor for h in full.hits] == [h.citation.anchor for h in half.hits]


def test_dense_answers_english_question_about_chinese_text(corpus_retriever: Retriever) -> None:
    texts = _texts(
        corpus_retriever, "Where is Japan test-mining rare earth mud from the deep sea?", "dense"
    )
    assert any("南鳥島" in t for t in texts)


def test_english_question_matches_chinese_words_through_the_dictionary(
    corpus_retriever: Retriever,
) -> None:
    question = "rare earth recycling subsidy"
    translated = corpus_retriever.search(question, top_k=3, mode="lexical").hits
    assert translated[0].citation.kind == "body"
    assert any("稀土" in h.text for h in translated)
    assert any("回收" in h.text for h in translated)
    # Without the dictionary the words only meet Latin titles in the footnotes.
    plain = Retriever(
        corpus_retriever.index,
        corpus_retriever.embedder,
        RetrievalSettings().with_(cross_lingual=False),
    )
    untranslated = plain.search(question, top_k=3, mode="lexical").hits
    assert untranslated
    assert all(h.citation.kind == "footnotes" for h in untranslated)


def test_hybrid_ranks_known_passages_first(corpus_retriever: Retriever) -> None:
    cases = {
        "日本重稀土進口對中國依賴度有多高？": "依賴度接近 100%",
        "日鐵收購美國鋼鐵公司花了多少錢？": "141 億美元",
        "韩国的MASGA计划规模多大？": "1,500 億美元",
    }
    for question, needle in cases.items():
        texts = _texts(corpus_retriever, question, "hybrid", k=3)
        assert any(needle in t for t in texts), question


def test_hits_carry_scores_sections_and_exact_spans(corpus_retriever: Retriever) -> None:
    result = corpus_retriever.search("製藥供應鏈韌性", top_k=8, mode="hybrid")
    assert [h.rank for h in result.hits] == list(range(1, 9))
    scores = [h.score for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    for hit in result.hits:
        document = corpus_retriever.document(hit.citation.doc_id)
        c = hit.citation
        assert document.text[c.char_start : c.char_end] == hit.text
        assert c.anchor == f"{c.doc_id}#c{c.char_start}-{c.char_end}"
        assert "fused" in hit.scores and hit.scores["fused"] == pytest.approx(hit.score)
        if c.doc_id == CHAPTER and c.char_start > 200:
            assert c.section.startswith("第六章 川普 2.0 時代的日本製造業供應鏈安全重構 > ")
        assert c.section == document.section_at(c.char_start)
        assert (c.line_start, c.line_end) == (
            document.line_of(c.char_start),
            document.line_of(c.char_end - 1),
        )
        assert (c.title, c.authors, c.date) == (document.title, document.authors, document.date)
        assert c.page is None and c.page_end is None
        (block,) = [b for b in document.blocks if b.char_start <= c.char_start < b.char_end]
        assert c.char_end <= block.char_end and c.kind == block.kind in INDEXED_KINDS
        if c.kind != "footnotes":
            cited = tuple(
                dict.fromkeys(n for o, n in document.markers if c.char_start <= o < c.char_end)
            )
            assert c.footnotes == document.footnotes_for(cited)
    assert {h.citation.doc_id for h in result.hits} <= {CHAPTER, NEWS}


def test_footnote_passages_are_found_and_cite_their_cross_references(
    corpus_retriever: Retriever,
) -> None:
    result = corpus_retriever.search("同註 26、註 28", top_k=10, mode="lexical")
    notes = [h for h in result.hits if h.citation.kind == "footnotes"]
    assert notes
    document = corpus_retriever.document(CHAPTER)
    for hit in notes:
        c = hit.citation
        defined = [
            f for f in document.footnotes if f.char_start < c.char_end and c.char_start < f.char_end
        ]
        assert defined
        named = tuple(dict.fromkeys(r for f in defined for r in f.refers_to))
        assert c.footnotes == document.footnotes_for(named)
    assert any({26, 28} <= {f.n for f in h.citation.footnotes} for h in notes)


def test_modes_report_their_own_signal(corpus_retriever: Retriever) -> None:
    dense = corpus_retriever.search("rare earth", top_k=3, mode="dense").hits[0]
    lexical = corpus_retriever.search("稀土", top_k=3, mode="lexical").hits[0]
    assert dense.score == pytest.approx(dense.scores["dense"]) and -1.0 <= dense.score <= 1.0
    assert lexical.score == pytest.approx(lexical.scores["lexical"]) and lexical.score > 0
    assert set(dense.scores) == {"dense"} and set(lexical.scores) == {"lexical"}


def test_dense_score_is_similarity_less_a_share_of_hubness(corpus_retriever: Retriever) -> None:
    index, settings = corpus_retriever.index, corpus_retriever.settings
    dense_settings = settings.dense
    assert dense_settings.hubness_weight > 0
    question = "How does Japan secure rare earths outside China?"
    query = corpus_retriever.embedder.encode_queries([question])[0]
    vectors = index.dense.reconstruct_n(0, index.dense.ntotal)
    hits = corpus_retriever.search(question, top_k=10, mode="dense").hits
    for hit in hits:  # a passage joining chunks carries its best chunk's scores
        row = hit.row
        assert row is not None and row in hit.rows
        start, end = index.sentence_ranges[row]
        own = index.sentence_vectors[start:end].astype(np.float32)
        weight = dense_settings.sentence_weight
        similarity = (1 - weight) * float(vectors[row] @ query) + weight * float(
            (own @ query).max()
        )
        expected = similarity - dense_settings.hubness_weight * float(index.hubness[row])
        assert hit.scores["dense"] == pytest.approx(expected, abs=1e-5)
    # Without the discount the same candidates come back, ranked by similarity alone; the
    # discount reorders them (on this question it does).
    plain = Retriever(index, corpus_retriever.embedder, settings.with_(hubness_weight=0.0))
    undiscounted = plain.search(question, top_k=10, mode="dense").hits
    assert [h.citation.anchor for h in undiscounted] != [h.citation.anchor for h in hits]
    assert all(a.score >= b.score for a, b in pairwise(undiscounted))


@pytest.mark.parametrize(
    ("question", "top_k", "mode", "message"),
    [
        ("", 5, "hybrid", "non-whitespace"),
        (" \n\t ", 5, "hybrid", "non-whitespace"),
        ("稀" * 2001, 5, "hybrid", "limit is 2000"),
        ("稀土", 0, "hybrid", "between 1 and 50"),
        ("稀土", 51, "hybrid", "between 1 and 50"),
        ("稀土", 5, "fuzzy", "mode must be one of"),
    ],
)
def test_invalid_queries_are_rejected(
    corpus_retriever: Retriever, question: str, top_k: int, mode: str, message: str
) -> None:
    with pytest.raises(InvalidQueryError, match=message):
        corpus_retriever.search(question, top_k=top_k, mode=mode)  # type: ignore[arg-type]


def test_unknown_document(corpus_retriever: Retriever) -> None:
    with pytest.raises(DocumentNotFoundError, match="nope"):
        corpus_retriever.document("nope")


def test_question_with_no_known_terms_still_answers_densely(corpus_retriever: Retriever) -> None:
    result = corpus_retriever.search("zzzqqq xyzzy", top_k=3, mode="hybrid")
    assert len(result.hits) == 3
    assert all("lexical" not in h.scores for h in result.hits)


@pytest.mark.parametrize(
    ("question", "script", "language"),
    [
        ("経済産業省はレアアースの備蓄をどう進めていますか？", "kana", "ja"),
        ("rare earth recycling subsidy", "latin", "en"),
        ("日本對中國稀土的依賴有多高？", "han", "zh-Hant"),
    ],
)
def test_the_question_is_analysed_once(
    corpus_retriever: Retriever,
    monkeypatch: pytest.MonkeyPatch,
    question: str,
    script: str,
    language: str,
) -> None:
    """Search analyses the question once (``qa.query.analyze_query``): lexical scoring, the
    cross-lingual expansion, the answerable coverage and the extractive answer read its terms,
    script and language from ``SearchResult.query`` instead of the text."""
    import sys

    from qa import lexical, query, scripts
    from qa.answer import extractive_answer

    seen: list[str] = []

    def counted(original: Any) -> Any:
        def wrapper(text: str, *args: Any, **kwargs: Any) -> Any:
            seen.append(f"{original.__name__}:{text}")
            return original(text, *args, **kwargs)

        return wrapper

    for original in (lexical.analyze, scripts.scripts_in):
        for name, module in list(sys.modules.items()):
            if name.startswith("qa") and getattr(module, original.__name__, None) is original:
                monkeypatch.setattr(module, original.__name__, counted(original))
    result = corpus_retriever.search(question, mode="hybrid")
    extractive_answer(corpus_retriever, result)
    assert seen.count(f"analyze:{question}") == 1
    assert seen.count(f"scripts_in:{question}") == 1
    analysed = result.query
    assert analysed is not None and analysed.vector is not None
    assert analysed.terms == tuple(lexical.analyze(question))
    assert (analysed.script, analysed.language) == (script, language)
    assert analysed == query.analyze_query(question, corpus_retriever._expansion())
