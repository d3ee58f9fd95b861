"""Lexical side: folding, the Chinese-aware analyzer and the BM25 index."""

from __future__ import annotations

import mmap
from pathlib import Path

import numpy as np
import pytest

from qa.errors import IndexCorruptError
from qa.lexical import LexicalBuilder, LexicalIndex, analyze, fold

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
        "chunk_terms.npy",
        "chunk_ptr.npy",
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


# --- LexicalIndex: exact top-k, streamed build, on-disk layout ---------------------------------

WORDS = (
    "稀土 供應鏈 日本 中國 美國 鋼鐵 收購 造船 製藥 原料藥 韌性 出口 管制 南鳥島 海底 泥 "
    "半導體 關稅 國安 資產 Nippon Steel rare earth supply chain tariff 2025 1,600 レアアース 調達"
).split()


def _corpus(n: int, seed: int) -> list[str]:
    """``n`` chunk texts from a small vocabulary: shared terms, repeats, exact duplicates (ties)
    and empty rows, so ranking ties and the empty-row placeholder are exercised."""
    rng = np.random.default_rng(seed)
    texts = []
    for i in range(n):
        if i % 17 == 5:
            texts.append("")
        elif i % 11 == 3 and texts:
            texts.append(texts[-1])  # an exact duplicate: equal scores, lower row first
        else:
            words = rng.choice(WORDS, size=int(rng.integers(1, 25)))
            texts.append("，".join(words) + "。")
    return texts


QUERIES = [
    ["稀土", "供应链"],
    analyze("日本對中國的稀土依賴很高"),
    analyze("Nippon Steel 收購美國鋼鐵"),
    ["稀土", "稀土", "钢铁"],  # a repeated term counts twice
    ["xyzzy", "稀土"],  # an unknown term is skipped
    ["", "\x00"],  # the empty token and the placeholder
    WORDS[:3] + analyze(" ".join(WORDS)),  # many terms, most chunks match
]


def _full_ranking(
    scores: np.ndarray, depth: int, allowed: set[int] | None = None
) -> list[tuple[int, float]]:
    """The straightforward ranking ``top`` must equal: mask, stable argsort, positives only."""
    if allowed is not None:
        scores = np.where(np.isin(np.arange(len(scores)), list(allowed)), scores, 0)
    order = np.argsort(-scores, kind="stable")[:depth]
    return [(int(r), float(scores[r])) for r in order if scores[r] > 0]


@pytest.fixture(scope="module")
def big_texts() -> list[str]:
    return _corpus(400, seed=7)


@pytest.fixture(scope="module")
def saved(big_texts: list[str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("lexical")
    LexicalIndex.build(big_texts, batch=64).save(directory)
    return directory


def test_build_is_bm25s_bit_for_bit(big_texts: list[str]) -> None:
    import bm25s

    reference = bm25s.BM25()
    reference.index([analyze(t) or ["\x00"] for t in big_texts], show_progress=False)
    index = LexicalIndex.build(big_texts, batch=50)
    assert set(index._vocab) == set(reference.vocab_dict)
    ours, theirs = index._indptr, reference.scores["indptr"]
    for term, column in reference.vocab_dict.items():
        if column >= len(theirs) - 1:
            continue  # bm25s's empty token "" has no column
        mine = index._vocab[term]
        a, b = slice(ours[mine], ours[mine + 1]), slice(theirs[column], theirs[column + 1])
        np.testing.assert_array_equal(index._rows[a], reference.scores["indices"][b])
        np.testing.assert_array_equal(index._data[a], reference.scores["data"][b])
    for terms in QUERIES:
        known = [t for t in terms if t in reference.vocab_dict and t != ""]
        expected = reference.get_scores(known) if known else np.zeros(len(big_texts))
        np.testing.assert_array_equal(index.scores_for_terms(terms), expected)


def test_batch_size_does_not_change_the_index(big_texts: list[str]) -> None:
    one, many = LexicalIndex.build(big_texts), LexicalIndex.build(big_texts, batch=7)
    for name in ("_data", "_rows", "_indptr", "_chunk_terms", "_chunk_ptr"):
        np.testing.assert_array_equal(getattr(one, name), getattr(many, name))
    assert one._vocab == many._vocab


@pytest.mark.parametrize("depth", [1, 3, 10, 100, 1000])
@pytest.mark.parametrize("mmap", [True, False])
@pytest.mark.parametrize("jit_from", [0, 10**9])  # numba's scorer or NumPy's
def test_top_equals_full_ranking(
    saved: Path, depth: int, mmap: bool, jit_from: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("qa.lexical.JIT_FROM_CHUNKS", jit_from)
    index = LexicalIndex.load(saved, mmap=mmap)
    rng = np.random.default_rng(depth)
    subsets: list[set[int] | None] = [
        None,
        set(),
        {0, 5, 399, 400, -1},  # out-of-range rows are ignored
        set(rng.choice(index.size, size=40, replace=False).tolist()),
        set(range(100, 400)),  # most rows: scoring everything is cheaper than probing
    ]
    for terms in QUERIES:
        scores = index.scores_for_terms(terms)
        for allowed in subsets:
            got = list(index.top(terms, depth, allowed).items())
            valid = None if allowed is None else {r for r in allowed if 0 <= r < index.size}
            assert got == _full_ranking(scores, depth, valid), (terms, depth, allowed)
            if allowed is not None:  # the retriever passes rows as an array
                as_array = np.array(sorted(allowed), dtype=np.int64)
                assert list(index.top(terms, depth, as_array).items()) == got


def test_top_breaks_ties_by_lower_row() -> None:
    index = LexicalIndex.build(["稀土 供應鏈"] * 200 + ["鋼鐵"] + ["稀土 供應鏈"] * 100)
    top = index.top(["稀土"], 5)
    assert list(top) == [0, 1, 2, 3, 4]
    assert list(index.top(["稀土"], 2)) == [0, 1]  # through the sampled threshold (n > 64 * 2)
    assert len(set(top.values())) == 1
    assert list(index.top(["稀土"], 3, {250, 7, 200, 3})) == [3, 7, 250]


def test_numba_scorer_agrees_with_numpy(saved: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    index = LexicalIndex.load(saved)
    with_numpy = [index.scores_for_terms(t) for t in QUERIES]  # a small index: NumPy
    monkeypatch.setattr("qa.lexical.JIT_FROM_CHUNKS", 0)
    for terms, expected in zip(QUERIES, with_numpy, strict=True):
        np.testing.assert_array_equal(index.scores_for_terms(terms), expected)
        assert list(index.top(terms, 10).items()) == _full_ranking(expected, 10)


def test_load_maps_compact_arrays(saved: Path) -> None:
    def mapped(array: np.ndarray) -> bool:
        base: object = array
        while base is not None and not isinstance(base, mmap.mmap):
            base = getattr(base, "base", None)
        return base is not None

    index = LexicalIndex.load(saved)
    for array in (index._data, index._rows, index._chunk_terms, index._chunk_ptr):
        assert mapped(array)
    assert index._rows.dtype == index._chunk_terms.dtype == index._chunk_ptr.dtype == np.int32
    assert not mapped(LexicalIndex.load(saved, mmap=False)._data)


def test_index_saved_without_row_arrays_still_loads(saved: Path, tmp_path: Path) -> None:
    """An index written before chunk_terms.npy existed: the row view is derived on load."""
    for path in saved.iterdir():
        if path.name not in ("chunk_terms.npy", "chunk_ptr.npy"):
            (tmp_path / path.name).write_bytes(path.read_bytes())
    old, new = LexicalIndex.load(tmp_path), LexicalIndex.load(saved)
    rows = list(range(0, new.size, 13))
    assert old.term_ids_of(rows) == new.term_ids_of(rows)
    for terms in QUERIES:
        assert old.top(terms, 10) == new.top(terms, 10)


def test_term_ids_of_lists_the_chunk_terms(big_texts: list[str]) -> None:
    index = LexicalIndex.build(big_texts)
    names = {i: t for t, i in index._vocab.items()}
    rows = [5, 0, 399, 1, 5]
    for row, ids in zip(rows, index.term_ids_of(rows), strict=True):
        assert {names[i] for i in ids} == set(analyze(big_texts[row]) or ["\x00"])
    assert index.term_ids_of([]) == []


def test_builder_rejects_chunks_without_tokens() -> None:
    builder = LexicalBuilder()
    with pytest.raises(ValueError):
        builder.add_ids(builder.term_ids(["a", "b"]), np.array([2, 0]))


def test_empty_index_round_trip(tmp_path: Path) -> None:
    builder = LexicalBuilder()
    builder.add_texts([])
    index = builder.finish()
    index.save(tmp_path)
    loaded = LexicalIndex.load(tmp_path)
    assert loaded.size == index.size == 0
    assert loaded.top(["稀土"], 5) == loaded.top(["稀土"], 5, {0}) == {}
    assert loaded.scores_for_terms(["稀土"]).shape == (0,)
