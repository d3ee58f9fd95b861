"""The gold set's one matching rule: a text holds the evidence when one of the question's
evidence strings occurs in it, whitespace ignored (so line breaks and spacing in the source or
the chunking never decide). Passage relevance (``eval.gold``) and answer hits
(``eval.answers``) both use it."""

from __future__ import annotations

from collections.abc import Iterable


def holds_evidence(evidence: Iterable[str], texts: Iterable[str]) -> bool:
    """Does any of ``texts`` contain any non-blank evidence string, whitespace ignored?"""
    needles = [compact(e) for e in evidence if e.strip()]
    return bool(needles) and any(n in c for c in map(compact, texts) for n in needles)


def compact(text: str) -> str:
    """``text`` with every whitespace character removed."""
    return "".join(text.split())
