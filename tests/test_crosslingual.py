"""qa.crosslingual: English (CC-CEDICT) and Japanese (shinjitai) terms for a Chinese index."""

from __future__ import annotations

import pytest
from conftest import GOLD

from eval.gold import load_gold
from qa import crosslingual
from qa.lexical import analyze

# A small corpus vocabulary, analyzed the way the index analyzes chunks (Traditional in,
# Simplified terms out).
CORPUS = "稀土 稀有 地球 經濟 產業 鋼鐵 海底 商務部 日本 抗生素 出口 管制 記者"


@pytest.fixture(scope="module")
def vocab() -> frozenset[str]:
    return frozenset(analyze(CORPUS))


@pytest.fixture(scope="module")
def expander(vocab: frozenset[str]) -> crosslingual.Expander:
    return crosslingual.Expander(vocab)


def test_rare_earth_is_one_phrase(expander: crosslingual.Expander) -> None:
    terms = expander.expand("rare earth")
    assert "稀土" in terms
    # The phrase wins over its words: no "rare" (稀有) and no "earth" (地球).
    assert "稀有" not in terms
    assert "地球" not in terms


@pytest.mark.parametrize("question", ["rare earths", "Rare-Earth supply", "RARE EARTH"])
def test_plural_hyphen_and_case_are_normalised(
    expander: crosslingual.Expander, question: str
) -> None:
    assert "稀土" in expander.expand(question)


def test_word_order_of_a_phrase_does_not_matter(expander: crosslingual.Expander) -> None:
    # CC-CEDICT glosses 商務部 as "Department of Commerce".
    assert "商务部" in expander.expand("the Commerce Department")


def test_japanese_shinjitai_fold_to_the_index_form(expander: crosslingual.Expander) -> None:
    terms = expander.expand("経済産業省が発表した")
    assert "经济" in terms
    assert crosslingual.shinjitai_to_traditional("経済") == "經濟"


def test_kanji_without_kana_is_not_treated_as_japanese(vocab: frozenset[str]) -> None:
    assert crosslingual.japanese_terms("経済", vocab) == []


@pytest.mark.parametrize("question", ["what is the", "Which of them, and why?", "2026"])
def test_stopwords_and_numbers_produce_nothing(
    expander: crosslingual.Expander, question: str
) -> None:
    assert expander.expand(question) == []


def test_unknown_words_produce_nothing(expander: crosslingual.Expander) -> None:
    assert expander.expand("zzqx flurbish") == []


def test_headwords_outside_the_vocabulary_are_dropped() -> None:
    vocab = frozenset(analyze("稀土"))
    index = crosslingual.build_english_index(vocab)
    assert crosslingual.english_terms("antibiotics", index, vocab) == []
    assert crosslingual.english_terms("rare earth", index, vocab) == ["稀土", "稀土"]


def test_every_term_is_in_the_vocabulary(
    expander: crosslingual.Expander, vocab: frozenset[str]
) -> None:
    question = (
        "Which journalist reported on Japan's export controls of rare earths from the seabed?"
    )
    terms = expander.expand(question)
    assert terms
    assert set(terms) <= vocab


def test_chinese_question_is_left_alone(expander: crosslingual.Expander) -> None:
    assert expander.expand("日本的稀土出口管制") == []
    # English words inside a Chinese question are not translated either.
    assert expander.expand("日本 rare earth 出口管制") == []


def test_sense_parts_are_split_at_semicolons_only() -> None:
    # CC-CEDICT separates synonyms with ";"; a comma is part of one description
    # ("Mt Fuji, Japan"), so "Japan" alone must not lead to 富士山.
    vocab = frozenset(analyze("富士山 日本"))
    index = crosslingual.build_english_index(vocab)
    [japan] = crosslingual.translate_english("Japan", index)
    assert japan.headwords[0] == "日本"
    assert "富士山" not in japan.headwords


@pytest.mark.parametrize(
    ("word", "same_as"),
    [("earths", "earth"), ("studies", "study"), ("shipped", "ship"), ("mining", "mine")],
)
def test_normalisation_is_shared_by_inflections(word: str, same_as: str) -> None:
    assert crosslingual.normalize_word(word) == crosslingual.normalize_word(same_as)


# --- English only: other Latin-script languages are not looked up word by word ------------


@pytest.mark.parametrize(
    "question",
    [
        # German "die", "was" and "hat" are English words with Chinese headwords of their own.
        "Was hat die japanische Regierung gegen die Abhängigkeit von China unternommen?",
        "Quelle est la part du Japon dans les exportations mondiales de terres rares ?",
        "¿Qué medidas tomó Japón para reducir su dependencia de las tierras raras chinas?",
    ],
)
def test_questions_in_other_latin_languages_get_no_dictionary_terms(
    expander: crosslingual.Expander, question: str
) -> None:
    assert not crosslingual.written_in_english(question)
    assert expander.expand(question) == []


def test_the_same_question_in_english_does_get_terms(expander: crosslingual.Expander) -> None:
    question = "What has the Japanese government done about its dependence on rare earths?"
    assert crosslingual.written_in_english(question)
    assert "稀土" in expander.expand(question)


@pytest.mark.parametrize(
    "query", ["rare earth", "Nippon Steel U.S. Steel deal", "Lynas", "JAMSTEC"]
)
def test_short_and_name_only_queries_count_as_english(query: str) -> None:
    """Too little text to tell: the dictionary still applies, as it did before the check."""
    assert crosslingual.written_in_english(query)


def test_every_english_gold_question_counts_as_english() -> None:
    english = [q.question for q in load_gold(GOLD) if q.lang == "en"]
    assert len(english) >= 50
    assert [q for q in english if not crosslingual.written_in_english(q)] == []
