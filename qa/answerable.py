"""Does the corpus answer the question? A calibrated guess from the retrieval signals."""

from __future__ import annotations


def judge(dense: dict[int, float], lexical: dict[int, float], question: str) -> tuple[bool, float]:
    """(answerable, confidence in 0..1); provisional: any signal at all counts as answerable."""
    return bool(dense or lexical), 1.0 if (dense or lexical) else 0.0
