"""The JSON shape of a search result, shared by ``qa search --json`` and the API."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from qa.types import SearchResult


def search_result_json(result: SearchResult) -> dict[str, Any]:
    return {
        "question": result.question,
        "mode": result.mode,
        "hits": [
            {
                "rank": hit.rank,
                "score": hit.score,
                "text": hit.text,
                "scores": hit.scores,
                "citation": asdict(hit.citation),
            }
            for hit in result.hits
        ],
        "took_ms": round(result.took_ms, 3),
    }
