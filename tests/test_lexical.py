"""Lexical side: folding, the Chinese-aware analyzer and the BM25 index."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.errors import IndexCorruptError
from qa.lexical import LexicalIndex, analyze, fold

# --- fold -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [("稀土供應鏈", "稀土供应链"), ("鋼鐵", "钢铁"), ("經濟安全保障", "经济安全保障")],
)
def test_fold_traditional_and_simplified_agree(traditional: str, simplified: str) -> None:
    assert traditional != simplified
    assert fold(traditional) == fold(simplified) == simplified


def test_fold_width_and_case() -> None:
    assert fold("ＭＡＳＧＡ１２３") == "masga123"
    assert fold("Nippon STEEL") == "nippon steel"
    assert fold("（Ｇ７）") == "(g7)"


@pytest.mark.parametrize(
    ("raw", "folded"),
    [("1,500", "1500"), ("1,500,000", "1500000"), ("１,５００", "1500"), ("1,50", "1,50")],
)
def test_fold_number_grouping(raw: str, folded: str) -> None:
    assert fold(raw) == folded


def test_fold_keeps_non_grouping_commas() -> None:
    assert fold("a,b") == "a,b"
    assert fold("稀土,鋼鐵") == "稀土,钢铁"


# --- analyze ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traditional", "simplified"),
    [
        ("日本對中國的稀土依賴很高", "日本对中国的稀土依赖很高"),
        ("日本製鐵收購美國鋼鐵公司", "日本制铁收购美国钢铁公司"),
        ("南鳥島海底泥含有高濃度的稀土資源", "南鸟岛海底泥含有高浓度的稀土资源"),
    ],
)
def test_analyze_script_invariant(traditional: str, simplified: str) -> None:
    tokens = analyze(traditional)
    assert tokens
    assert tokens == analyze(simplified)


def test_analyze_han_words_and_bigrams() -> None:
    tokens = analyze("稀土供應鏈")
    assert "稀土" in tokens
    assert "供应链" in tokens  # a jieba word, folded to Simplified
    for bigram in ("稀土", "土供", "供应", "应链"):
        assert bigram in tokens
    assert all(t == fold(t) for t in tokens)


def test_analyze_drops_single_han_stop_words() -> None:
    tokens = analyze("日本的稀土")
    assert "的" not in tokens
    assert "日本" in tokens
    assert "稀土" in tokens


def test_analyze_latin_words() -> None:
    tokens = analyze("The Nippon Steel deal and the U.S. Steel merger of 2025")
    assert tokens == ["nippon", "steel", "deal", "u.s", "steel", "merger", "2025"]
    assert analyze("What is it?") == []


def test_analyze_full_width_latin() -> None:
    tokens = analyze("ＭＡＳＧＡ計畫")
    assert tokens[0] == "masga"
    assert tokens == analyze("MASGA计划")


def test_analyze_kana_bigrams() -> None:
    assert analyze("レアアース") == ["レア", "アア", "アー", "ース"]
    assert analyze("の") == ["の"]
    tokens = analyze("レアアースの調達")
    assert "レア" in tokens
    assert "ース" in tokens
    assert "调达" in tokens or "調達" in tokens


def test_analyze_numbers_kept() -> None:
    tokens = analyze("儲存量估計超過1,600萬噸，水深約6000公尺，成長2.5%")
    for number in ("1600", "6000", "2.5%"):
        assert number in tokens
    assert "1,600" not in tokens


def test_analyze_empty_and_punctuation() -> None:
    assert analyze("") == []
    assert analyze("。，！？ ... ---") == []


# --- LexicalIndex -----------------------------------------------------------------------------


TEXTS = [
    "美國鋼鐵公司被日本製鐵收購，金額為141億美元。",
    "日本在南鳥島海底採集泥巴，試圖建立自主的稀土供應鏈。",
    "",
    "製藥產業的供應鏈韌性與原料藥依賴問題。",
    "   ",
    "Nippon Steel completed the U.S. Steel acquisition.",
]


@pytest.fixture(scope="module")
def index() -> LexicalIndex:
    return LexicalIndex.build(TEXTS)


def test_size_counts_every_row(index: LexicalIndex) -> None:
    assert index.size == len(TEXTS)
    assert index.scores("稀土").shape == (len(TEXTS),)


def test_simplified_query_finds_traditional_text(index: LexicalIndex) -> None:
    scores = index.scores("稀土供应链")
    assert scores.dtype == np.float32
    assert int(np.argmax(scores)) == 1
    assert scores[1] > 0
    assert scores[2] == 0 and scores[4] == 0  # empty rows never match

    steel = index.scores("美国钢铁 收购")
    assert int(np.argmax(steel)) == 0

    latin = index.scores("NIPPON steel acquisition")
    assert int(np.argmax(latin)) == 5


def test_row_alignment_after_empty_rows(index: LexicalIndex) -> None:
    # the row after the empty ones is still the pharmaceutical text
    scores = index.scores("原料藥")
    assert int(np.argmax(scores)) == 3
    assert scores[3] > 0
    assert np.count_nonzero(scores) == 1


@pytest.mark.parametrize("query", ["xyzzy plugh", "", "的", "???", "量子電腦"])
def test_unknown_query_gives_zeros(index: LexicalIndex, query: str) -> None:
    scores = index.scores(query)
    assert scores.shape == (len(TEXTS),)
    assert not scores.any()


def test_save_and_load_round_trip(index: LexicalIndex, tmp_path: Path) -> None:
    directory = tmp_path / "lexical"
    directory.mkdir()
    index.save(directory)
    loaded = LexicalIndex.load(directory)
    assert loaded.size == index.size
    for query in ["稀土供应链", "稀土供應鏈", "美國鋼鐵", "Nippon Steel", "xyzzy", "原料藥 韌性"]:
        np.testing.assert_array_equal(loaded.scores(query), index.scores(query))


def test_load_missing_directory_is_corrupt_error(tmp_path: Path) -> None:
    with pytest.raises(IndexCorruptError):
        LexicalIndex.load(tmp_path / "does-not-exist")


@pytest.mark.parametrize(
    "name",
    [
        "params.index.json",
        "vocab.index.json",
        "data.csc.index.npy",
        "indices.csc.index.npy",
        "indptr.csc.index.npy",
    ],
)
def test_load_garbage_file_is_corrupt_error(index: LexicalIndex, tmp_path: Path, name: str) -> None:
    index.save(tmp_path)
    assert (tmp_path / name).exists()
    (tmp_path / name).write_bytes(b"garbage")
    with pytest.raises(IndexCorruptError):
        LexicalIndex.load(tmp_path)


def test_build_with_only_empty_texts() -> None:
    index = LexicalIndex.build(["", "  ", "。"])
    assert index.size == 3
    assert not index.scores("稀土").any()
