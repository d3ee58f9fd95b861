"""Score retrieval with ranx metrics: the public face of the evaluation package.

- ``eval.gold``: the gold set (relevance = evidence containment, splits, baseline)
- ``eval.beir``: BEIR-format datasets, ingested into an index of their own, document-level
- ``eval.runs``: asking the retriever every question; TREC run files, one per mode
- ``eval.metrics``: ranx scoring and significance, arranged by ``summarize``
- ``eval.results``: the report, a tree of frozen values (``Report.to_json`` is the JSON)
- ``eval.report``: terminal table, JSON, Markdown report and the @k curve plot

Metrics carry ranx's names. On the gold set they are ``hit_rate@k`` (share of answerable
questions with a relevant passage in the top k), ``mrr@10`` and ``ndcg@10``; on BEIR
``recall@k`` is ranx's true recall, with ``hit_rate@10`` beside it.
"""

from __future__ import annotations

from collections.abc import Mapping

from eval.beir import evaluate_beir, load_beir
from eval.gold import (
    METRICS,
    GoldQuestion,
    baseline_from_report,
    baseline_regressions,
    evaluate_gold,
    gold_fingerprint,
    load_gold,
    relevant_chunks,
)
from eval.metrics import Qrels, compare_modes
from eval.metrics import score_runs as _score_runs
from eval.report import format_report, json_report, markdown_report, write_report, write_run_files
from eval.results import Report
from eval.runs import MODE_PLACEHOLDER, RunDict, read_trec_run, run_paths, trec_lines

__all__ = [
    "METRICS",
    "MODE_PLACEHOLDER",
    "GoldQuestion",
    "Report",
    "baseline_from_report",
    "baseline_regressions",
    "compare_modes",
    "evaluate_beir",
    "evaluate_gold",
    "format_report",
    "gold_fingerprint",
    "json_report",
    "load_beir",
    "load_gold",
    "markdown_report",
    "read_trec_run",
    "relevant_chunks",
    "run_paths",
    "score_runs",
    "trec_lines",
    "write_report",
    "write_run_files",
]


def score_runs(
    qrels: Qrels, run: RunDict, metrics: Mapping[str, str] = METRICS
) -> dict[str, dict[str, float]]:
    """Per-query ranx values ``{query_id: {metric: value}}`` (gold-set metric names by default)."""
    return _score_runs(qrels, run, metrics)
