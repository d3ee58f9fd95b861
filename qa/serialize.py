"""The JSON shape of a search result, shared by ``qa search --json`` and the API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from qa.types import SearchResult


def search_result_json(result: SearchResult) -> dict[str, Any]:
    return {
        "question": result.question,
        "mode": result.mode,
        "answerable": result.answerable,
        "confidence": round(result.confidence, 4),
        "unstated_quantities": list(result.unstated_quantities),
        "hits": [
            {
                "rank": hit.rank,
                "score": hit.score,
                "text": hit.text,
                "scores": hit.scores,
                "citation": asdict(hit.citation),
                "context": asdict(hit.context) if hit.context else None,
            }
            for hit in result.hits
        ],
        "took_ms": round(result.took_ms, 3),
        "timings_ms": result.timings_ms,
    }
