"""The JSON shape of a search result, shared by ``qa search --json`` and the API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from qa.passages import Passage
from qa.types import Answer, Hit, SearchResult


def search_result_json(result: SearchResult) -> dict[str, Any]:
    return {
        "question": result.question,
        "mode": result.mode,
        "answerable": result.answerable,
        "confidence": round(result.confidence, 4),
        "unstated_quantities": list(result.unstated_quantities),
        "hits": [hit_json(hit) for hit in result.hits],
        "took_ms": round(result.took_ms, 3),
        "timings_ms": result.timings_ms,
    }


def hit_json(hit: Hit) -> dict[str, Any]:
    return {
        "rank": hit.rank,
        "score": hit.score,
        "text": hit.text,
        "scores": hit.scores,
        "citation": asdict(hit.citation),
        "context": asdict(hit.context) if hit.context else None,
    }


def answer_json(answer: Answer) -> dict[str, Any]:
    """An answer with its references; a refusal has none, and its hits are only the closest."""
    result = answer.search
    return {
        "question": answer.question,
        "answerable": answer.answerable,
        "confidence": round(result.confidence, 4),
        "unstated_quantities": list(result.unstated_quantities),
        "language": answer.language,
        "method": answer.method,
        "answer": answer.text,
        "references": [
            {
                "n": r.n,
                "text": r.text,
                "hit_rank": r.hit_rank,
                "citation": asdict(r.citation),
            }
            for r in answer.references
        ],
        "unsupported": list(answer.unsupported),
        "hits": [hit_json(hit) for hit in result.hits],
        "took_ms": round(answer.took_ms, 3),
        "timings_ms": result.timings_ms,
    }


def passage_json(passage: Passage) -> dict[str, Any]:
    c = passage.citation
    return {
        "anchor": passage.anchor,
        "doc_id": c.doc_id,
        "char_start": c.char_start,
        "char_end": c.char_end,
        "text": passage.text,
        "citation": asdict(c),
        "context": asdict(passage.context) if passage.context else None,
    }
