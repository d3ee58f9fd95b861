"""Running queries, scoring them with ranx, and the report dictionary every front end shares.

Every metric value comes from ranx (``evaluate`` and ``compare``); this module only runs the
retriever, builds qrels and runs, averages ranx's per-query values over subsets (languages,
splits) and arranges the results. Both the gold set (``eval.gold``) and BEIR datasets
(``eval.beir``) go through :func:`summarize`, so the text table, the JSON, the TREC run file
and the Markdown report look the same for both.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from qa.errors import InvalidQueryError
from qa.retrieve import Retriever
from qa.types import Hit, SearchMode

Qrels = dict[str, dict[str, int]]
RunDict = dict[str, dict[str, float]]

CURVE_DEPTH = 10
ALPHA = 0.05
STAT_TESTS = ("student", "fisher")
SNIPPET_CHARS = 240


@dataclass(frozen=True)
class Query:
    """One evaluation question, whatever the dataset: what was asked and what should be found."""

    id: str
    text: str
    lang: str
    split: str
    answerable: bool
    expected: tuple[str, ...]  # evidence strings (gold) or relevant "doc id: title" (BEIR)
    answer: str = ""


@dataclass
class ModeRun:
    """What one mode returned for every query, at the unit being judged (passage or document)."""

    mode: str
    run: RunDict = field(default_factory=dict)  # {qid: {unit: 1/rank}}, in rank order
    flagged: dict[str, bool] = field(default_factory=dict)  # SearchResult.answerable
    confidence: dict[str, float] = field(default_factory=dict)
    top_hit: dict[str, tuple[str, str]] = field(default_factory=dict)  # (anchor, snippet)
    latency_ms: list[float] = field(default_factory=list)


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def run_mode(
    retriever: Retriever,
    queries: Sequence[Query],
    mode: SearchMode,
    *,
    top_k: int,
    unit: Callable[[Hit], str],
) -> ModeRun:
    """Ask every query; a unit (passage anchor or document id) is ranked by its best hit.

    A unit's score is ``1 / rank``, its rank being where its first (best-scoring) hit comes in
    the service's order: ranking by score reproduces that order exactly, whatever the scale of
    the raw scores, and ties in raw scores cannot reorder it.
    """
    result = ModeRun(mode)
    for query in queries:
        started = time.perf_counter()
        try:
            found = retriever.search(query.text, top_k=top_k, mode=mode)
        except InvalidQueryError:  # e.g. an empty BEIR query: it finds nothing
            result.run[query.id] = {}
            continue
        result.latency_ms.append((time.perf_counter() - started) * 1000)
        ranking: dict[str, float] = {}
        for hit in found.hits:
            key = unit(hit)
            if key not in ranking:
                ranking[key] = 1.0 / (len(ranking) + 1)
        result.run[query.id] = ranking
        result.flagged[query.id] = bool(found.answerable)
        result.confidence[query.id] = float(found.confidence)
        if found.hits:
            result.top_hit[query.id] = (found.hits[0].citation.anchor, snippet(found.hits[0].text))
    return result


def _ranx_inputs(qrels: Qrels, run: RunDict) -> tuple[Any, Any, list[str]]:
    from ranx import Qrels as RanxQrels
    from ranx import Run as RanxRun

    ranx_qrels = RanxQrels(qrels)
    ids = [str(q) for q in ranx_qrels.get_query_ids()]  # the order of ranx's results
    # ranx needs every judged query in the run: an empty answer is a run that finds nothing.
    ranx_run = RanxRun({q: run.get(q) or {"<none>": 0.0} for q in ids})
    return ranx_qrels, ranx_run, ids


def score_runs(
    qrels: Qrels, run: RunDict, metrics: Mapping[str, str]
) -> dict[str, dict[str, float]]:
    """Per-query values from ranx ``evaluate``: ``{query_id: {our name: value}}``.

    ``metrics`` maps the names we report to ranx metric names (``"recall@5": "hit_rate@5"``).
    """
    from ranx import evaluate

    if not qrels:
        return {}
    ranx_qrels, ranx_run, ids = _ranx_inputs(qrels, run)
    names = list(dict.fromkeys(metrics.values()))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's uint64 -> int64 cast notice inside ranx
        values = evaluate(ranx_qrels, ranx_run, names, return_mean=False)
    if len(names) == 1:
        values = {names[0]: values}
    return {
        q: {name: float(values[ranx_name][i]) for name, ranx_name in metrics.items()}
        for i, q in enumerate(ids)
    }


def mean_metrics(
    per_query: Mapping[str, Mapping[str, float]], ids: Sequence[str], names: Sequence[str]
) -> dict[str, float | None]:
    """Means of ranx's per-query values over ``ids`` (what ranx's own mean is); None if empty."""
    means: dict[str, float | None] = {"n": float(len(ids))}
    for name in names:
        means[name] = float(np.mean([per_query[q][name] for q in ids])) if ids else None
    return means


def first_relevant_rank(ranking: Mapping[str, float], relevant: Mapping[str, int]) -> int | None:
    ordered = sorted(ranking.items(), key=lambda item: -item[1])
    return next(
        (rank for rank, (u, _) in enumerate(ordered, 1) if relevant.get(u, 0) > 0),
        None,
    )


def compare_modes(
    qrels: Qrels,
    runs: Mapping[str, RunDict],
    metrics: Mapping[str, str],
    *,
    stat_test: str = "student",
    alpha: float = ALPHA,
) -> list[dict[str, Any]]:
    """Paired significance test (ranx ``compare``) for every pair of modes on ``metrics``.

    A p-value ranx cannot compute (``ttest_rel`` on identical per-query values, or fewer than two
    queries) is reported as 1.0: no evidence of any difference.
    """
    from ranx import Run as RanxRun
    from ranx import compare

    if stat_test not in STAT_TESTS:
        raise ValueError(f"stat_test must be one of {STAT_TESTS}, got {stat_test!r}")
    modes = list(runs)
    if len(modes) < 2 or not qrels:
        return []
    ranx_qrels, _, ids = _ranx_inputs(qrels, {})
    ranx_runs = [
        RanxRun({q: runs[m].get(q) or {"<none>": 0.0} for q in ids}, name=m) for m in modes
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compare(
            ranx_qrels,
            ranx_runs,
            list(dict.fromkeys(metrics.values())),
            stat_test=stat_test,
            max_p=alpha,
        )
    rows = []
    for i, a in enumerate(modes):
        for b in modes[i + 1 :]:
            for name, ranx_name in metrics.items():
                p = float(report.comparisons[a, b][ranx_name]["p_value"])
                p = 1.0 if math.isnan(p) else min(max(p, 0.0), 1.0)
                mean_a = float(report.results[a][ranx_name])
                mean_b = float(report.results[b][ranx_name])
                significant = p <= alpha and mean_a != mean_b
                better = (a if mean_a > mean_b else b) if significant else None
                rows.append(
                    {
                        "a": a,
                        "b": b,
                        "metric": name,
                        "mean_a": mean_a,
                        "mean_b": mean_b,
                        "n": len(ids),
                        "p_value": p,
                        "significant": significant,
                        "better": better,
                    }
                )
    return rows


def flag_stats(
    queries: Sequence[Query], flagged: Mapping[str, bool]
) -> dict[str, float | int | None]:
    """How the retriever's ``answerable`` flag agrees with the truth (None when no such query).

    ``unanswerable_flagged``: share of unanswerable questions it flags (answerable=False);
    ``answerable_misflagged``: share of answerable questions it wrongly flags.
    """
    unanswerable = [q for q in queries if not q.answerable and q.id in flagged]
    answerable = [q for q in queries if q.answerable and q.id in flagged]
    return {
        "unanswerable": len(unanswerable),
        "unanswerable_flagged": (
            sum(not flagged[q.id] for q in unanswerable) / len(unanswerable)
            if unanswerable
            else None
        ),
        "answerable": len(answerable),
        "answerable_misflagged": (
            sum(not flagged[q.id] for q in answerable) / len(answerable) if answerable else None
        ),
    }


def latency(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"median": None, "p95": None}
    return {"median": statistics.median(values), "p95": float(np.percentile(values, 95))}


def summarize(
    *,
    kind: str,
    queries: Sequence[Query],
    qrels: Qrels,
    runs: Mapping[str, ModeRun],
    metrics: Mapping[str, str],
    curve_metric: str,
    compare_metrics: Sequence[str],
    scopes: Sequence[str],
    stat_test: str | None = "student",
) -> dict[str, Any]:
    """The report dictionary: metrics per mode, per scope (split) and per language, and more.

    ``scopes`` are split names and/or ``"all"``; the last one is the primary scope, whose values
    also appear as each mode's ``overall`` and ``by_lang`` and drive the recall@k curve.
    """
    primary = scopes[-1]

    def in_scope(scope: str) -> list[Query]:
        return [q for q in queries if scope == "all" or q.split == scope]

    curve = {f"@{k}": f"{curve_metric}@{k}" for k in range(1, CURVE_DEPTH + 1)}
    names = list(metrics)
    modes: dict[str, Any] = {}
    for mode, mode_run in runs.items():
        per_query = score_runs(qrels, mode_run.run, {**metrics, **curve})
        splits: dict[str, Any] = {}
        for scope in scopes:
            scored = [q for q in in_scope(scope) if q.id in per_query]
            by_lang: dict[str, list[str]] = {}
            for q in scored:
                by_lang.setdefault(q.lang, []).append(q.id)
            splits[scope] = {
                "overall": mean_metrics(per_query, [q.id for q in scored], names),
                "by_lang": {
                    lang: mean_metrics(per_query, ids, names)
                    for lang, ids in sorted(by_lang.items())
                },
                "answerable_flag": flag_stats(in_scope(scope), mode_run.flagged),
            }
        primary_ids = [q.id for q in in_scope(primary) if q.id in per_query]
        curve_means = mean_metrics(per_query, primary_ids, list(curve))
        ranks = {q: first_relevant_rank(mode_run.run.get(q, {}), qrels[q]) for q in primary_ids}
        modes[mode] = {
            "overall": splits[primary]["overall"],
            "by_lang": splits[primary]["by_lang"],
            "splits": splits,
            "latency_ms": latency(mode_run.latency_ms),
            "curve": [curve_means[f"@{k}"] for k in range(1, CURVE_DEPTH + 1)],
            "misses@5": sorted(q for q, rank in ranks.items() if rank is None or rank > 5),
        }
    significance: dict[str, Any] = {
        "stat_test": stat_test,
        "alpha": ALPHA,
        "metrics": list(compare_metrics),
        "splits": {},
    }
    if stat_test is not None and len(runs) >= 2:
        for scope in scopes:
            ids = {q.id for q in in_scope(scope)}
            scoped = {q: rel for q, rel in qrels.items() if q in ids}
            significance["splits"][scope] = compare_modes(
                scoped,
                {m: r.run for m, r in runs.items()},
                {name: metrics[name] for name in compare_metrics},
                stat_test=stat_test,
            )
    return {
        "kind": kind,
        "scopes": list(scopes),
        "primary": primary,
        "metrics": dict(metrics),
        "curve_metric": curve_metric,
        "questions": len(queries),
        "answerable": sum(q.answerable for q in queries),
        "scored": sum(q.id in qrels for q in queries),
        "counts": {
            scope: {
                "questions": len(in_scope(scope)),
                "answerable": sum(q.answerable for q in in_scope(scope)),
                "scored": sum(q.id in qrels for q in in_scope(scope)),
            }
            for scope in scopes
        },
        "modes": modes,
        "significance": significance,
        "queries": [_query_row(q, qrels, runs) for q in queries],
    }


def _query_row(query: Query, qrels: Qrels, runs: Mapping[str, ModeRun]) -> dict[str, Any]:
    relevant = qrels.get(query.id)
    return {
        "id": query.id,
        "question": query.text,
        "lang": query.lang,
        "split": query.split,
        "answerable": query.answerable,
        "scored": relevant is not None,
        "expected": list(query.expected),
        "answer": query.answer,
        "first_relevant_rank": {
            m: first_relevant_rank(r.run.get(query.id, {}), relevant) if relevant else None
            for m, r in runs.items()
        },
        "flagged_answerable": {m: r.flagged.get(query.id) for m, r in runs.items()},
        "confidence": {m: r.confidence.get(query.id) for m, r in runs.items()},
        "top_hit": {
            m: {"id": r.top_hit[query.id][0], "text": r.top_hit[query.id][1]}
            for m, r in runs.items()
            if query.id in r.top_hit
        },
    }


def trec_lines(runs: Mapping[str, RunDict]) -> list[str]:
    """TREC run lines ``qid Q0 docid rank score tag``, one tag per mode, best first per query.

    Whitespace and ``%`` inside ids are percent-encoded (``read_trec_run`` decodes them), so
    every line has exactly six fields.
    """
    lines = []
    for tag, run in runs.items():
        for qid in sorted(run):
            ordered = sorted(run[qid].items(), key=lambda item: -item[1])
            for rank, (docid, score) in enumerate(ordered, start=1):
                lines.append(
                    f"{_trec_token(qid)} Q0 {_trec_token(docid)} {rank} {score:.8g} "
                    f"{_trec_token(tag)}"
                )
    return lines


def read_trec_run(path: str | Any) -> dict[str, RunDict]:
    """``{tag: {qid: {docid: score}}}`` from a TREC run file written by ``trec_lines``."""
    from urllib.parse import unquote

    runs: dict[str, RunDict] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 6 or fields[1] != "Q0":
                raise ValueError(f"{path}:{number}: not a TREC run line: {line.rstrip()!r}")
            qid, _, docid, _, score, tag = fields
            runs.setdefault(unquote(tag), {}).setdefault(unquote(qid), {})[unquote(docid)] = float(
                score
            )
    return runs


def _trec_token(value: str) -> str:
    if not value:
        raise ValueError("an empty id cannot be written to a TREC run file")
    return "".join(
        "".join(f"%{b:02X}" for b in ch.encode()) if ch == "%" or ch.isspace() else ch
        for ch in value
    )
