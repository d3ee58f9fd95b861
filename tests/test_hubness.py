"""Hubness values on hand-built vectors whose answers are known, and on the real corpus."""

from __future__ import annotations

import numpy as np
import pytest

from qa.hubness import Span, hub_scores
from qa.retrieve import Retriever


def _chunk(doc_id: str, start: int, end: int) -> Span:
    return (doc_id, start, end)


def _one_each(count: int) -> np.ndarray:
    """Sentence ranges where chunk i holds sentence row i only."""
    return np.stack([np.arange(count), np.arange(1, count + 1)], axis=1)


def _unit(*rows: list[float]) -> np.ndarray:
    vectors = np.array(rows, dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_mean_over_the_nearest_sentences_of_other_chunks() -> None:
    chunks = [_chunk("a", 0, 10), _chunk("b", 0, 10), _chunk("c", 0, 10)]
    sentences = _unit([1, 0, 0], [0, 1, 0], [0, 0, 1])  # one sentence per chunk
    vectors = _unit([1, 1, 0], [0, 1, 0], [0, 0, 1])
    values = hub_scores(chunks, sentences, _one_each(3), vectors, neighbours=1)
    # a: its own sentence (cos 1/sqrt 2) is left out; b's sentence is as near
    assert values[0] == pytest.approx(1 / np.sqrt(2))
    assert values[1] == pytest.approx(0.0)  # only its own sentence (cos 1) was near: left out
    assert values[2] == pytest.approx(0.0)
    two = hub_scores(chunks, sentences, _one_each(3), vectors, neighbours=2)
    assert two[0] == pytest.approx(1 / (2 * np.sqrt(2)))  # mean of 1/sqrt 2 and 0


def test_a_passage_near_everything_is_the_hub() -> None:
    rng = np.random.default_rng(7)
    topics = _unit(*rng.normal(size=(6, 16)).tolist())
    centre = topics.mean(axis=0)
    vectors = np.vstack([topics, centre / np.linalg.norm(centre)])
    chunks = [_chunk(f"d{i}", 0, 5) for i in range(len(vectors))]
    values = hub_scores(chunks, vectors, _one_each(len(vectors)), vectors, neighbours=3)
    assert int(np.argmax(values)) == 6


def test_overlapping_chunks_and_shared_sentences_are_not_neighbours() -> None:
    # a and b overlap and share sentence s (one row, in both ranges); c is elsewhere.
    chunks = [_chunk("doc", 0, 20), _chunk("doc", 10, 30), _chunk("doc", 40, 50)]
    s, t, u, w = _unit([1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1])
    sentences = np.vstack([t, s, u, w])  # a: t s | b: s u | c: w
    ranges = np.array([[0, 2], [1, 3], [3, 4]])
    vectors = np.vstack([s, s, s])
    values = hub_scores(chunks, sentences, ranges, vectors, neighbours=1)
    # a and b see only c's sentence w (orthogonal); c sees s, counted once, at cosine 1
    assert values[0] == pytest.approx(0.0) and values[1] == pytest.approx(0.0)
    assert values[2] == pytest.approx(1.0)
    both = hub_scores(chunks, sentences, ranges, vectors, neighbours=2)
    assert both[2] == pytest.approx(0.5)  # s once, then t or u at 0: not s twice
    # a chunk with no neighbour left gets 0, one with fewer than K the mean of those left
    lone = hub_scores(chunks[:2], sentences[:3], ranges[:2], vectors[:2], neighbours=2)
    assert lone.tolist() == [0.0, 0.0]


def test_a_large_corpus_is_measured_against_an_evenly_spaced_sample() -> None:
    rng = np.random.default_rng(3)
    vectors = _unit(*rng.normal(size=(200, 16)).tolist())
    chunks = [_chunk(f"d{i}", 0, 5) for i in range(200)]
    pointer = _one_each(200)  # chunk i holds sentence i only
    full = hub_scores(chunks, vectors, pointer, vectors, neighbours=5)
    assert np.array_equal(
        full, hub_scores(chunks, vectors, pointer, vectors, neighbours=5, reference_cap=200)
    )
    sampled = hub_scores(chunks, vectors, pointer, vectors, neighbours=5, reference_cap=100)
    reference = np.linspace(0, 199, 100).astype(int)
    for row in range(200):
        others = [r for r in reference if r != row]
        similarity = np.sort(vectors[others] @ vectors[row])
        assert sampled[row] == pytest.approx(similarity[-5:].mean(), abs=1e-6)
    assert np.all(sampled <= full + 1e-6)  # the nearest 5 of a subset are no nearer


def test_empty_inputs() -> None:
    empty = np.zeros((0, 4), np.float32)
    assert hub_scores([], empty, np.zeros((0, 2)), empty).shape == (0,)
    lone = [_chunk("a", 0, 5)]
    only = _unit([1, 0, 0, 0])
    assert hub_scores(lone, only, _one_each(1), only).tolist() == [0.0]  # no other sentence


def test_corpus_hubs_are_broad_passages(corpus_retriever: Retriever) -> None:
    """On the bundled corpus the most central passages are not the ones any one question is
    about: the stored values match a fresh computation and have a real spread."""
    index = corpus_retriever.index
    vectors = index.dense.reconstruct_n(0, index.dense.ntotal)
    ranges = index.sentence_ranges
    assert int((ranges[1:, 0] < ranges[:-1, 1]).sum()) > 0  # overlapping chunks share rows
    spans = [(c.doc_id, c.char_start, c.char_end) for c in index.chunks]
    fresh = hub_scores(spans, index.sentence_vectors, ranges, vectors)
    np.testing.assert_allclose(index.hubness, fresh, rtol=1e-5, atol=1e-6)
    assert index.hubness.shape == (len(index.chunks),)
    assert 0.05 < float(index.hubness.max() - index.hubness.min()) < 1.0
