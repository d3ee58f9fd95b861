"""What open corpora need: neighbouring chunks joined into one passage, fusion by language pair,
answers from one document in reading order, general quantity rules, scripts told apart."""

from __future__ import annotations

from itertools import pairwise

import pytest

from qa.answer import Candidate, ExtractiveSettings, answer_question, choose
from qa.answerable import QUANTITIES, asked_quantities
from qa.config import Settings
from qa.embed import Embedder
from qa.language import question_language
from qa.retrieve import FusionSettings, Retriever
from qa.scripts import corpus_script, script_of, shares_characters
from qa.service import ingest, open_retriever
from qa.types import Query

LIGHTHOUSE = (
    "# Kestrel Point\n\n"
    "Kestrel Point lighthouse stands on the northern cliff of the bay. "
    "It was first lit in 1872 by the harbour board. "
    "Its lamp was converted to electricity in 1931. "
    "The keepers left the station when it was automated in 1989. "
    "A storm in 2015 cracked the lantern room and flooded the base. "
    "The trust then asked how much the restoration of the lighthouse would cost. "
    "The restoration cost £412,000 and was finished in 2019. "
    "Volunteers now open the tower to visitors on summer weekends. "
    "The light can be seen twenty nautical miles out to sea. "
    "A small museum in the keeper's cottage shows the old lens.\n"
)


@pytest.fixture(scope="module")
def lighthouse(use_embedder: Embedder, tmp_path_factory: pytest.TempPathFactory) -> Retriever:
    """One English document cut into small chunks that share a sentence with their neighbours,
    plus an unrelated one."""
    root = tmp_path_factory.mktemp("lighthouse")
    corpus = root / "corpus"
    corpus.mkdir()
    (corpus / "kestrel.md").write_text(LIGHTHOUSE, "utf-8")
    (corpus / "bees.md").write_text(
        "# Bees\n\nHoney bees dance to tell the hive where flowers are. "
        "A colony can hold fifty thousand bees in summer.\n",
        "utf-8",
    )
    settings = Settings(
        corpus_dir=corpus,
        index_dir=root / "index",
        chunk_max_tokens=40,
        chunk_overlap_sentences=1,
        threads=1,
    )
    ingest(settings, embedder=use_embedder, strict=True)
    return open_retriever(settings, use_embedder)


def test_a_chunk_overlapping_a_better_one_joins_its_passage(lighthouse: Retriever) -> None:
    question = "How much did the Kestrel Point lighthouse restoration cost?"
    result = lighthouse.search(question, top_k=5, mode="lexical")
    chunks = lighthouse.index.chunks
    assert any(len(hit.rows) == 2 for hit in result.hits)
    for hit in result.hits:
        document = lighthouse.index.documents[hit.citation.doc_id]
        assert hit.text == document.text[hit.citation.char_start : hit.citation.char_end]
        spans = [(chunks[r].char_start, chunks[r].char_end) for r in hit.rows]
        assert hit.citation.char_start == min(s for s, _ in spans)
        assert hit.citation.char_end == max(e for _, e in spans)
        assert all(a[1] > b[0] for a, b in pairwise(spans))  # the joined chunks overlap
        assert hit.row in hit.rows
    shown = sorted(
        (h.citation.doc_id, h.citation.char_start, h.citation.char_end) for h in result.hits
    )
    for a, b in pairwise(shown):  # passages never overlap one another
        assert a[0] != b[0] or a[2] <= b[1]
    # The chunk restating the question and its neighbour holding the sum are one passage.
    (restating,) = [h for h in result.hits if "restoration of the lighthouse would" in h.text]
    assert "£412,000" in restating.text


def test_the_answer_states_the_pound_sum_it_is_asked_for(lighthouse: Retriever) -> None:
    answer = answer_question(
        lighthouse, "How much did the Kestrel Point lighthouse restoration cost?"
    )
    assert answer.method == "extractive", answer.text
    assert "£412,000" in answer.text
    assert {r.citation.doc_id for r in answer.references} == {"kestrel"}
    starts = [r.citation.char_start for r in answer.references]
    assert starts == sorted(starts)  # reading order


def _candidate(text: str, doc_id: str, start: int, score: float) -> Candidate:
    return Candidate(text, doc_id, start, start + len(text), "body", 1, score)


def test_answers_keep_to_one_document_and_read_in_document_order() -> None:
    chosen = choose(
        [
            _candidate("因此工程完成了。", "a", 40, 0.9),
            _candidate("另一篇也完成了。", "b", 0, 0.88),  # shares a phrase, other article
            _candidate("工程始於二〇一〇年。", "a", 10, 0.85),
        ],
        ExtractiveSettings(),
    )
    assert [c.text for c in chosen] == ["工程始於二〇一〇年。", "因此工程完成了。"]


def test_fusion_weighs_the_language_pair() -> None:
    fusion = FusionSettings(
        lexical_weight=2.0,
        lexical_weight_translated=0.5,
        lexical_weight_latin=0.25,
        lexical_weight_kana=0.75,
    )
    zh = Query("稀土", scripts=frozenset({"han"}))
    ja = Query("レアアースはどこ", scripts=frozenset({"kana", "han"}))
    en = Query("rare earth", scripts=frozenset({"latin"}))
    en_translated = Query("rare earth", translations=("稀土",), scripts=frozenset({"latin"}))
    assert fusion.lexical_weight_for(zh, "han") == 2.0
    assert fusion.lexical_weight_for(ja, "kana") == 2.0  # Japanese over Japanese: same script
    assert fusion.lexical_weight_for(ja, "han") == 0.75
    assert fusion.lexical_weight_for(en, "latin") == 2.0  # English over English
    assert fusion.lexical_weight_for(en_translated, "han") == 0.5
    assert fusion.lexical_weight_for(en, "han") == 0.25


def test_the_corpus_script_is_read_from_its_text() -> None:
    japanese = "日本の製造業はサプライチェーンの強靱化を進めている。" * 3
    chinese_citing_japanese = "日本政府推動供應鏈安全。" * 20 + "経済安全保障推進法について"
    assert corpus_script([japanese]) == "kana"
    assert corpus_script([chinese_citing_japanese]) == "han"
    assert corpus_script(["Kestrel Point lighthouse stands on the cliff."]) == "latin"
    assert corpus_script(["한국어 문서입니다"]) == "hangul"
    assert corpus_script(["12345 !!!"]) == "other"


def test_only_scripts_without_shared_characters_cross() -> None:
    assert shares_characters("kana", "han") and shares_characters("han", "kana")
    assert shares_characters("latin", "latin")
    assert not shares_characters("latin", "han") and not shares_characters("han", "latin")
    assert not shares_characters("hangul", "han")


def test_the_middle_dot_does_not_make_a_question_japanese() -> None:
    assert script_of("唐納・川普何時就任？") == "han"
    assert question_language("唐納・川普何時就任？") == "zh-Hant"
    assert question_language("トランプはいつ就任した？") == "ja"


def test_a_date_is_not_a_share() -> None:
    percent = next(q for q in QUANTITIES if q.name == "percent")
    assert not percent.stated.search("發布於 2025/05，藥價議題持續發酵")


@pytest.mark.parametrize(
    "passage",
    [
        "The restoration cost £412,000.",
        "It raised 3 million pounds.",
        "The fee is CHF 120.",
        "予算は1万ドルだった。",
        "修復工程花費四十一萬英鎊。",
        "總額為五百萬韓元。",
        "Le coût était de 40 000 euros.",
        "₹300 crore were allocated.",
    ],
)
def test_money_is_recognised_in_every_currency_and_language(passage: str) -> None:
    money = next(q for q in QUANTITIES if q.name == "money")
    assert money.stated.search(passage)


@pytest.mark.parametrize(
    "passage",
    [
        "約有五分之四的居民",
        "three quarters of the vote",
        "過半数の企業",
        "3割の世帯",
        "一半的居民",
    ],
)
def test_shares_written_as_fractions_state_a_percentage(passage: str) -> None:
    percent = next(q for q in QUANTITIES if q.name == "percent")
    assert percent.stated.search(passage)


@pytest.mark.parametrize(
    ("question", "asked"),
    [
        ("What is the default priority value of a job?", ()),
        ("What is the amount of rainfall in July?", ()),
        ("How much did the restoration cost?", ("money",)),
        ("修復工程花了多少錢？", ("money",)),
        ("修复工程花了多少钱？", ("money",)),
        ("修復費用はいくらでしたか？", ("money",)),
        ("約有多少百分比的居民？", ("percent",)),
    ],
)
def test_what_counts_as_a_quantity_question(question: str, asked: tuple[str, ...]) -> None:
    assert tuple(q.name for q in asked_quantities(question)) == asked
