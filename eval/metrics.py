"""Scoring runs with ranx, and the report values every front end shares.

Every metric value comes from ranx (``evaluate`` and ``compare``); this module only averages
ranx's per-query values over subsets (languages, splits) and arranges the results in the
frozen tree of ``eval.results``. Both the gold set (``eval.gold``) and BEIR datasets
(``eval.beir``) go through :func:`summarize`, so
the text table, the JSON, the TREC run file and the Markdown report look the same for both.
"""

from __future__ import annotations

import math
import statistics
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from eval.results import (
    Comparison,
    Counts,
    FlagStats,
    Latency,
    ModeResult,
    QueryRow,
    Scores,
    Significance,
    SplitResult,
    Summary,
    TopHit,
)
from eval.runs import ModeRun, Query, RunDict

Qrels = dict[str, dict[str, int]]

CURVE_DEPTH = 10
ALPHA = 0.05
STAT_TESTS = ("student", "fisher")


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

    ``metrics`` maps the names we report to ranx metric names (ranx's own names, both on the
    gold set and on BEIR: ``{"hit_rate@5": "hit_rate@5"}``).
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
) -> Scores:
    """Means of ranx's per-query values over ``ids`` (what ranx's own mean is); None if empty."""
    return Scores(
        n=len(ids),
        values={
            name: float(np.mean([per_query[q][name] for q in ids])) if ids else None
            for name in names
        },
    )


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
) -> tuple[Comparison, ...]:
    """Paired significance test (ranx ``compare``) for every pair of modes on ``metrics``.

    ``student`` is ranx's two-sided paired t-test (deterministic); ``fisher`` is its
    randomization test with 1000 permutations, whose p-values vary a little from run to run
    (numba draws the permutations in parallel threads). A p-value ranx cannot compute
    (``ttest_rel`` on identical per-query values, or fewer than two queries) is reported as
    1.0: no evidence of any difference.
    """
    from ranx import Run as RanxRun
    from ranx import compare

    if stat_test not in STAT_TESTS:
        raise ValueError(f"stat_test must be one of {STAT_TESTS}, got {stat_test!r}")
    modes = list(runs)
    if len(modes) < 2 or not qrels:
        return ()
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
                    Comparison(
                        a=a,
                        b=b,
                        metric=name,
                        mean_a=mean_a,
                        mean_b=mean_b,
                        n=len(ids),
                        p_value=p,
                        significant=significant,
                        better=better,
                    )
                )
    return tuple(rows)


def flag_stats(queries: Sequence[Query], flagged: Mapping[str, bool]) -> FlagStats:
    """How the retriever's ``answerable`` flag agrees with the truth (see ``FlagStats``)."""
    unanswerable = [q for q in queries if not q.answerable and q.id in flagged]
    answerable = [q for q in queries if q.answerable and q.id in flagged]
    return FlagStats(
        unanswerable=len(unanswerable),
        unanswerable_flagged=(
            sum(not flagged[q.id] for q in unanswerable) / len(unanswerable)
            if unanswerable
            else None
        ),
        answerable=len(answerable),
        answerable_misflagged=(
            sum(not flagged[q.id] for q in answerable) / len(answerable) if answerable else None
        ),
    )


def latency(values: Sequence[float]) -> Latency:
    if not values:
        return Latency(median=None, p95=None)
    return Latency(median=statistics.median(values), p95=float(np.percentile(values, 95)))


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
) -> Summary:
    """Metrics per mode, per scope (split), per language and per question tag (when queries
    have tags), significance between modes, and one row per query.

    ``scopes`` are split names and/or ``"all"``; the last one is the primary scope, whose values
    are each mode's ``overall`` and ``by_lang`` and drive the ``curve_metric``@k curve.
    """
    primary = scopes[-1]

    def in_scope(scope: str) -> list[Query]:
        return [q for q in queries if scope == "all" or q.split == scope]

    curve = {f"@{k}": f"{curve_metric}@{k}" for k in range(1, CURVE_DEPTH + 1)}
    names = list(metrics)
    modes: dict[str, ModeResult] = {}
    for mode, mode_run in runs.items():
        per_query = score_runs(qrels, mode_run.run, {**metrics, **curve})
        splits: dict[str, SplitResult] = {}
        for scope in scopes:
            scored = [q for q in in_scope(scope) if q.id in per_query]
            by_lang: dict[str, list[str]] = {}
            by_tag: dict[str, list[str]] = {}
            for q in scored:
                by_lang.setdefault(q.lang, []).append(q.id)
                for tag in q.tags:
                    by_tag.setdefault(tag, []).append(q.id)
            splits[scope] = SplitResult(
                overall=mean_metrics(per_query, [q.id for q in scored], names),
                by_lang={
                    lang: mean_metrics(per_query, ids, names)
                    for lang, ids in sorted(by_lang.items())
                },
                by_tag={
                    tag: mean_metrics(per_query, ids, names) for tag, ids in sorted(by_tag.items())
                },
                answerable_flag=flag_stats(in_scope(scope), mode_run.flagged),
            )
        primary_ids = [q.id for q in in_scope(primary) if q.id in per_query]
        curve_means = mean_metrics(per_query, primary_ids, list(curve))
        ranks = {q: first_relevant_rank(mode_run.run.get(q, {}), qrels[q]) for q in primary_ids}
        modes[mode] = ModeResult(
            primary=primary,
            splits=splits,
            latency_ms=latency(mode_run.latency_ms),
            curve=tuple(curve_means[f"@{k}"] for k in range(1, CURVE_DEPTH + 1)),
            misses_at_5=tuple(sorted(q for q, rank in ranks.items() if rank is None or rank > 5)),
        )
    compared: dict[str, tuple[Comparison, ...]] = {}
    if stat_test is not None and len(runs) >= 2:
        for scope in scopes:
            ids = {q.id for q in in_scope(scope)}
            scoped = {q: rel for q, rel in qrels.items() if q in ids}
            compared[scope] = compare_modes(
                scoped,
                {m: r.run for m, r in runs.items()},
                {name: metrics[name] for name in compare_metrics},
                stat_test=stat_test,
            )
    return Summary(
        kind=kind,
        scopes=tuple(scopes),
        metrics=dict(metrics),
        curve_metric=curve_metric,
        questions=len(queries),
        answerable=sum(q.answerable for q in queries),
        scored=sum(q.id in qrels for q in queries),
        counts={
            scope: Counts(
                questions=len(in_scope(scope)),
                answerable=sum(q.answerable for q in in_scope(scope)),
                scored=sum(q.id in qrels for q in in_scope(scope)),
            )
            for scope in scopes
        },
        modes=modes,
        significance=Significance(
            stat_test=stat_test, alpha=ALPHA, metrics=tuple(compare_metrics), splits=compared
        ),
        queries=tuple(_query_row(q, qrels, runs) for q in queries),
    )


def _query_row(query: Query, qrels: Qrels, runs: Mapping[str, ModeRun]) -> QueryRow:
    relevant = qrels.get(query.id)
    return QueryRow(
        id=query.id,
        question=query.text,
        lang=query.lang,
        split=query.split,
        tags=tuple(query.tags),
        answerable=query.answerable,
        scored=relevant is not None,
        expected=tuple(query.expected),
        answer=query.answer,
        first_relevant_rank={
            m: first_relevant_rank(r.run.get(query.id, {}), relevant) if relevant else None
            for m, r in runs.items()
        },
        flagged_answerable={m: r.flagged.get(query.id) for m, r in runs.items()},
        confidence={m: r.confidence.get(query.id) for m, r in runs.items()},
        top_hit={
            m: TopHit(id=r.top_hit[query.id][0], text=r.top_hit[query.id][1])
            for m, r in runs.items()
            if query.id in r.top_hit
        },
    )
