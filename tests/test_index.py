"""Index build/load: manifest, mismatch errors, incremental re-ingest, FAISS vs a NumPy oracle."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from qa.build import build_index
from qa.chunk import ChunkerSettings, sentence_spans
from qa.config import Settings
from qa.embed.hashing import HashingEmbedder
from qa.errors import IndexCorruptError, IndexMismatchError, IndexNotFoundError
from qa.hubness import HUB_NEIGHBOURS, HUB_REFERENCE_CAP, hub_scores
from qa.index import (
    SCHEMA_VERSION,
    Index,
    current_generation,
    load_index,
    read_manifest,
)
from qa.ingest import ingest_paths
from qa.retrieve import Retriever
from qa.service import ingest
from qa.store import sentence_ids
from qa.types import Chunk


def _settings(corpus: Path, index_dir: Path) -> Settings:
    return Settings(corpus_dir=corpus, index_dir=index_dir, embed_model="hash:64", threads=1)


class CountingEmbedder(HashingEmbedder):
    """Hashing embedder that counts how many passages it was asked to embed."""

    def __init__(self) -> None:
        super().__init__(64)
        self.embedded = 0

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        self.embedded += len(texts)
        return super().encode_passages(texts)


def _texts_embedded(chunks: Sequence[Chunk]) -> int:
    """Each chunk is embedded whole, and each of its sentences once (for sentence re-scoring):
    a sentence two overlapping chunks share is embedded for the first of them only."""
    sentences = {
        (c.doc_id, c.char_start + a, c.char_start + b)
        for c in chunks
        for a, b in sentence_spans(c.text)
    }
    return len(chunks) + len(sentences)


def _chunk_vectors(index: Index) -> np.ndarray:
    return np.asarray(index.dense.reconstruct_n(0, index.dense.ntotal))


def test_manifest_records_model_chunker_hashes_counts(small_corpus: Path, tmp_path: Path) -> None:
    settings = _settings(small_corpus, tmp_path / "index")
    outcome = ingest(settings, embedder=HashingEmbedder(64))
    generation = current_generation(settings.index_dir)
    assert generation is not None and generation.name == outcome.build.generation
    manifest = read_manifest(generation)
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert manifest["embed_model"] == "hash:64"
    assert manifest["dimension"] == 64
    assert manifest["chunker"] == ChunkerSettings().as_dict()
    assert set(manifest["documents"]) == {"zh", "en", "sub/ja"}
    raw = (small_corpus / "zh.txt").read_bytes()
    import hashlib

    assert manifest["documents"]["zh"]["content_hash"] == hashlib.sha256(raw).hexdigest()
    assert manifest["counts"] == {"documents": 3, "chunks": outcome.build.chunks_total}
    assert manifest["built_at"].startswith("20")
    stored = {"dense.faiss", "chunks.jsonl", "sentences.npy", "sentence_ranges.npy"}
    assert stored <= set(manifest["files"])
    assert "vectors.npy" not in manifest["files"]  # a chunk vector is stored once, in dense.faiss
    assert manifest["dense"]["kind"] == "flat" and manifest["dense"]["recall_at_10"] == 1.0


def test_incremental_reingest_embeds_only_what_changed(small_corpus: Path, tmp_path: Path) -> None:
    settings = _settings(small_corpus, tmp_path / "index")
    embedder = CountingEmbedder()
    first = ingest(settings, embedder=embedder).build
    assert first.added == ("en", "sub/ja", "zh")
    index = load_index(settings.index_dir, model_id="hash:64", dimension=64)
    assert embedder.embedded == _texts_embedded(index.chunks) and first.chunks_total > 0

    embedder.embedded = 0
    again = ingest(settings, embedder=embedder).build
    assert embedder.embedded == 0 and again.chunks_embedded == 0
    assert again.unchanged == ("en", "sub/ja", "zh") and again.chunks_total == first.chunks_total

    (small_corpus / "en.md").write_text("# Steel\n\nA new sentence about shipbuilding.\n", "utf-8")
    (small_corpus / "new.txt").write_text("新的文件：製藥供應鏈。\n", "utf-8")
    (small_corpus / "sub" / "ja.txt").unlink()
    changed = ingest(settings, embedder=embedder, prune=True).build
    assert changed.changed == ("en",) and changed.added == ("new",)
    assert changed.removed == ("sub/ja",) and changed.unchanged == ("zh",)
    index = load_index(settings.index_dir, model_id="hash:64", dimension=64)
    assert embedder.embedded == _texts_embedded(
        [c for c in index.chunks if c.doc_id in {"en", "new"}]
    )
    assert {c.doc_id for c in index.chunks} == {"zh", "en", "new"}
    assert any("shipbuilding" in c.text for c in index.chunks)
    assert not any("Nippon" in c.text for c in index.chunks)

    embedder.embedded = 0
    rebuilt = ingest(settings, embedder=embedder, rebuild=True).build
    index = load_index(settings.index_dir, model_id="hash:64", dimension=64)
    assert rebuilt.chunks_total > 0 and embedder.embedded == _texts_embedded(index.chunks)


def test_reused_vectors_equal_fresh_ones(small_corpus: Path, tmp_path: Path) -> None:
    settings = _settings(small_corpus, tmp_path / "index")
    ingest(settings, embedder=HashingEmbedder(64))
    ingest(settings, embedder=HashingEmbedder(64))
    index = load_index(settings.index_dir, model_id="hash:64", dimension=64)
    fresh = HashingEmbedder(64).encode_passages([c.text for c in index.chunks])
    np.testing.assert_allclose(_chunk_vectors(index), fresh, rtol=1e-6)


def _fresh_hubness(index: Index) -> np.ndarray:
    spans = [(c.doc_id, c.char_start, c.char_end) for c in index.chunks]
    return hub_scores(spans, index.sentence_vectors, index.sentence_ranges, _chunk_vectors(index))


def test_hubness_is_stored_per_generation_and_computed_for_older_ones(
    small_corpus: Path, tmp_path: Path
) -> None:
    settings = _settings(small_corpus, tmp_path / "index")
    ingest(settings, embedder=HashingEmbedder(64))
    index = load_index(settings.index_dir, model_id="hash:64", dimension=64)
    manifest = index.manifest
    assert manifest["hubness"] == {"neighbours": HUB_NEIGHBOURS, "reference_cap": HUB_REFERENCE_CAP}
    assert "hubness.npy" in manifest["files"]
    stored = np.load(index.path / "hubness.npy")
    np.testing.assert_array_equal(stored, _fresh_hubness(index))
    np.testing.assert_array_equal(index.hubness, stored)
    assert stored.shape == (len(index.chunks),) and np.ptp(stored) > 0

    # A generation written before hubness existed has neither the file nor the manifest entry.
    (index.path / "hubness.npy").unlink()
    del manifest["hubness"], manifest["files"]["hubness.npy"]
    (index.path / "manifest.json").write_text(json.dumps(manifest), "utf-8")
    older = load_index(settings.index_dir, model_id="hash:64", dimension=64)
    np.testing.assert_array_equal(older.hubness, stored)

    # A new document changes every passage's neighbours: nothing is reused from before.
    (small_corpus / "new.txt").write_text("新的文件：製藥供應鏈與稀土。另一句關於造船。\n", "utf-8")
    ingest(settings, embedder=HashingEmbedder(64))
    newer = load_index(settings.index_dir, model_id="hash:64", dimension=64)
    assert len(newer.chunks) > len(index.chunks)
    np.testing.assert_array_equal(newer.hubness, _fresh_hubness(newer))


def test_missing_index_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(IndexNotFoundError, match="qa ingest"):
        load_index(tmp_path, model_id="hash:64", dimension=64)


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("embed_model", "sentence-transformers:other", "embedding model 'sentence-transformers"),
        ("dimension", 768, "embedding dimension 768"),
        ("schema_version", 99, "schema version 99"),
    ],
)
def test_mismatched_index_names_both_sides(
    small_corpus: Path, tmp_path: Path, field: str, value: object, expected: str
) -> None:
    settings = _settings(small_corpus, tmp_path / "index")
    ingest(settings, embedder=HashingEmbedder(64))
    generation = current_generation(settings.index_dir)
    assert generation is not None
    manifest_path = generation / "manifest.json"
    manifest = json.loads(manifest_path.read_text("utf-8"))
    manifest[field] = value
    manifest_path.write_text(json.dumps(manifest), "utf-8")
    with pytest.raises(IndexMismatchError) as caught:
        load_index(settings.index_dir, model_id="hash:64", dimension=64)
    message = str(caught.value)
    assert expected in message
    wanted = {"embed_model": "'hash:64'", "dimension": "64", "schema_version": str(SCHEMA_VERSION)}
    assert wanted[field] in message.split("this service uses")[1]


def test_index_built_with_another_model_is_refused(small_corpus: Path, tmp_path: Path) -> None:
    settings = _settings(small_corpus, tmp_path / "index")
    ingest(settings, embedder=HashingEmbedder(64))
    with pytest.raises(IndexMismatchError, match="'hash:64' but this service uses 'hash:32'"):
        load_index(settings.index_dir, model_id="hash:32", dimension=32)


def test_corrupt_file_is_detected(small_corpus: Path, tmp_path: Path) -> None:
    settings = _settings(small_corpus, tmp_path / "index")
    ingest(settings, embedder=HashingEmbedder(64))
    generation = current_generation(settings.index_dir)
    assert generation is not None
    faiss_file = generation / "dense.faiss"
    faiss_file.write_bytes(faiss_file.read_bytes()[:-10])
    with pytest.raises(IndexCorruptError, match=r"dense\.faiss"):
        load_index(settings.index_dir, model_id="hash:64", dimension=64)


def test_a_failed_build_keeps_the_previous_generation(small_corpus: Path, tmp_path: Path) -> None:
    settings = _settings(small_corpus, tmp_path / "index")
    ingest(settings, embedder=HashingEmbedder(64))
    before = (settings.index_dir / "CURRENT").read_text()

    class Exploding(HashingEmbedder):
        def encode_passages(self, texts: list[str]) -> np.ndarray:
            raise RuntimeError("boom")

    documents = ingest_paths([small_corpus], small_corpus).documents
    with pytest.raises(RuntimeError):
        build_index(
            documents,
            embedder=Exploding(64),
            chunker=ChunkerSettings(),
            index_dir=settings.index_dir,
            rebuild=True,
        )
    assert (settings.index_dir / "CURRENT").read_text() == before
    load_index(settings.index_dir, model_id="hash:64", dimension=64)
    # The staged work waits for the same build to resume; a finished build leaves none behind.
    ingest(settings, embedder=HashingEmbedder(64), rebuild=True)
    assert not list(settings.index_dir.glob(".staging-*"))
    assert (settings.index_dir / "CURRENT").read_text() != before


def test_dense_search_matches_numpy_brute_force(corpus_retriever: Retriever) -> None:
    index = corpus_retriever.index
    vectors = _chunk_vectors(index)
    queries = ["稀土出口管制", "Nippon Steel acquisition", "造船 破冰船", "製薬のサプライチェーン"]
    for question in queries:
        query = corpus_retriever.embedder.encode_queries([question])
        scores, rows = index.dense.search(query, 10)
        oracle = vectors @ query[0]
        expected = np.argsort(-oracle, kind="stable")[:10]
        np.testing.assert_allclose(scores[0], oracle[expected], rtol=1e-4, atol=1e-5)
        assert set(rows[0][:5]) == set(expected[:5])


def test_kept_documents_survive_a_model_change(small_corpus: Path, tmp_path: Path) -> None:
    """A document indexed from elsewhere is re-embedded from its stored text when the model
    changes, not dropped because its file is not in the corpus folder."""
    settings = _settings(small_corpus, tmp_path / "index")
    outside = tmp_path / "outside.txt"
    outside.write_text("外部文件：造船產業的合作。\n", "utf-8")
    ingest(settings, [outside], embedder=HashingEmbedder(64))
    ingest(settings, embedder=HashingEmbedder(64))
    wider = settings.with_(embed_model="hash:32")
    outcome = ingest(wider, embedder=HashingEmbedder(32))
    assert outcome.plan.kept == ("outside",) and outcome.build.removed == ()
    index = load_index(settings.index_dir, model_id="hash:32", dimension=32)
    assert set(index.documents) == {"outside", "zh", "en", "sub/ja"}
    assert any("造船" in c.text for c in index.chunks if c.doc_id == "outside")


def test_unreadable_documents_refuse_to_drop_silently(small_corpus: Path, tmp_path: Path) -> None:
    settings = _settings(small_corpus, tmp_path / "index")
    ingest(settings, embedder=HashingEmbedder(64))
    generation = current_generation(settings.index_dir)
    assert generation is not None
    (generation / "documents.jsonl").write_text("{not json\n", "utf-8")
    with pytest.raises(IndexCorruptError, match="--prune"):
        ingest(settings, embedder=HashingEmbedder(64))
    rebuilt = ingest(settings, embedder=HashingEmbedder(64), prune=True)
    assert {d.doc_id for d in rebuilt.plan.documents} == {"zh", "en", "sub/ja"}
    assert rebuilt.plan.removing == ()


def test_sentence_ids_concatenate_each_rows_range_in_the_order_asked() -> None:
    """Overlapping chunks share sentence rows, a chunk may have none, rows may repeat."""
    ranges = np.array([[0, 3], [2, 5], [5, 5], [5, 7]], dtype=np.int64)
    ids, counts = sentence_ids(ranges, np.array([1, 0, 2, 3, 1], dtype=np.int64))
    assert ids.tolist() == [2, 3, 4, 0, 1, 2, 5, 6, 2, 3, 4]
    assert counts.tolist() == [3, 3, 0, 2, 3]
    empty, none = sentence_ids(ranges, np.array([], dtype=np.int64))
    assert empty.tolist() == [] and none.tolist() == []
