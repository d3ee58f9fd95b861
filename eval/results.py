"""The evaluation report as a tree of frozen values, and its JSON.

``eval.metrics.summarize`` builds the retrieval part (:class:`Summary`); ``eval.gold`` and
``eval.beir`` wrap it in a :class:`Report` with what they know about the dataset. Every front
end (terminal table, Markdown, TREC runs, baseline) reads these attributes; ``to_json`` gives
the ``qa eval --json`` document. Metric names are ranx's (``hit_rate@5``, ``recall@5``,
``mrr@10``, ...): the name says which ranx metric produced the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from eval.answers import AnswerScores
from eval.runs import RunDict


@dataclass(frozen=True)
class Scores:
    """Means of ranx's per-query values over ``n`` questions (None where ``n`` is 0)."""

    n: int
    values: Mapping[str, float | None]

    def __getitem__(self, metric: str) -> float | None:
        return self.values[metric]

    def to_json(self) -> dict[str, float | None]:
        return {"n": float(self.n), **self.values}


@dataclass(frozen=True)
class FlagStats:
    """How the retriever's ``answerable`` flag agrees with the truth (None when no such query).

    ``unanswerable_flagged``: share of unanswerable questions it flags (answerable=False);
    ``answerable_misflagged``: share of answerable questions it wrongly flags.
    """

    unanswerable: int
    unanswerable_flagged: float | None
    answerable: int
    answerable_misflagged: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Latency:
    median: float | None
    p95: float | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class SplitResult:
    """One mode on one scope (a split, or ``all``)."""

    overall: Scores
    by_lang: Mapping[str, Scores]
    by_tag: Mapping[str, Scores]
    answerable_flag: FlagStats

    def to_json(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_json(),
            "by_lang": {k: v.to_json() for k, v in self.by_lang.items()},
            "by_tag": {k: v.to_json() for k, v in self.by_tag.items()},
            "answerable_flag": self.answerable_flag.to_json(),
        }


@dataclass(frozen=True)
class ModeResult:
    """One search mode: every scope, latency, the curve and the misses of the primary scope."""

    primary: str
    splits: Mapping[str, SplitResult]
    latency_ms: Latency
    curve: tuple[float | None, ...]  # the curve metric at k = 1..CURVE_DEPTH
    misses_at_5: tuple[str, ...]  # primary scope: no relevant unit in the top 5

    @property
    def overall(self) -> Scores:
        return self.splits[self.primary].overall

    @property
    def by_lang(self) -> Mapping[str, Scores]:
        return self.splits[self.primary].by_lang

    def to_json(self) -> dict[str, Any]:
        return {
            "overall": self.overall.to_json(),
            "by_lang": {k: v.to_json() for k, v in self.by_lang.items()},
            "splits": {k: v.to_json() for k, v in self.splits.items()},
            "latency_ms": self.latency_ms.to_json(),
            "curve": list(self.curve),
            "misses@5": list(self.misses_at_5),
        }


@dataclass(frozen=True)
class Comparison:
    """ranx ``compare`` on one metric between modes ``a`` and ``b``."""

    a: str
    b: str
    metric: str
    mean_a: float
    mean_b: float
    n: int
    p_value: float
    significant: bool
    better: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Significance:
    stat_test: str | None
    alpha: float
    metrics: tuple[str, ...]
    splits: Mapping[str, tuple[Comparison, ...]]

    def to_json(self) -> dict[str, Any]:
        return {
            "stat_test": self.stat_test,
            "alpha": self.alpha,
            "metrics": list(self.metrics),
            "splits": {k: [c.to_json() for c in v] for k, v in self.splits.items()},
        }


@dataclass(frozen=True)
class Counts:
    questions: int
    answerable: int
    scored: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TopHit:
    id: str
    text: str


@dataclass(frozen=True)
class QueryRow:
    """One question and what every mode did with it."""

    id: str
    question: str
    lang: str
    split: str
    tags: tuple[str, ...]
    answerable: bool
    scored: bool
    expected: tuple[str, ...]
    answer: str
    first_relevant_rank: Mapping[str, int | None]
    flagged_answerable: Mapping[str, bool | None]
    confidence: Mapping[str, float | None]
    top_hit: Mapping[str, TopHit]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "question": self.question,
            "lang": self.lang,
            "split": self.split,
            "tags": list(self.tags),
            "answerable": self.answerable,
            "scored": self.scored,
            "expected": list(self.expected),
            "answer": self.answer,
            "first_relevant_rank": dict(self.first_relevant_rank),
            "flagged_answerable": dict(self.flagged_answerable),
            "confidence": dict(self.confidence),
            "top_hit": {m: asdict(hit) for m, hit in self.top_hit.items()},
        }


@dataclass(frozen=True)
class Summary:
    """What ``eval.metrics.summarize`` measures, the same for the gold set and BEIR."""

    kind: str  # "gold" or "beir"
    scopes: tuple[str, ...]  # split names and/or "all"; the last is the primary scope
    metrics: Mapping[str, str]  # reported name -> ranx name (the same names)
    curve_metric: str  # "hit_rate" (gold) or "recall" (BEIR), at k = 1..CURVE_DEPTH
    questions: int
    answerable: int
    scored: int
    counts: Mapping[str, Counts]
    modes: Mapping[str, ModeResult]
    significance: Significance
    queries: tuple[QueryRow, ...]

    @property
    def primary(self) -> str:
        return self.scopes[-1]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "scopes": list(self.scopes),
            "primary": self.primary,
            "metrics": dict(self.metrics),
            "curve_metric": self.curve_metric,
            "questions": self.questions,
            "answerable": self.answerable,
            "scored": self.scored,
            "counts": {k: v.to_json() for k, v in self.counts.items()},
            "modes": {k: v.to_json() for k, v in self.modes.items()},
            "significance": self.significance.to_json(),
            "queries": [q.to_json() for q in self.queries],
        }


@dataclass(frozen=True)
class GoldSource:
    """The gold set a report measured."""

    gold: str
    gold_fingerprint: str
    answers: Mapping[str, AnswerScores]  # per scope; empty without the hybrid mode
    evidence_not_found: tuple[str, ...]

    def head_json(self) -> dict[str, Any]:
        return {
            "gold": self.gold,
            "gold_fingerprint": self.gold_fingerprint,
            "answers": {k: asdict(v) for k, v in self.answers.items()},
        }

    def tail_json(self) -> dict[str, Any]:
        return {"evidence_not_found": list(self.evidence_not_found)}


@dataclass(frozen=True)
class BeirSource:
    """The BEIR dataset a report measured, and what its own index made of it."""

    beir: str
    index: str
    workdir: str
    documents: int
    documents_indexed: int
    documents_not_indexed: tuple[str, ...]
    ingest_errors: tuple[str, ...]
    queries_total: int
    queries_without_judgements: int
    judged_queries_missing: tuple[str, ...]
    queries_truncated: int

    def head_json(self) -> dict[str, Any]:
        return {"beir": self.beir}

    def tail_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "workdir": self.workdir,
            "documents": self.documents,
            "documents_indexed": self.documents_indexed,
            "documents_not_indexed": list(self.documents_not_indexed),
            "ingest_errors": list(self.ingest_errors),
        }

    def counts_json(self) -> dict[str, Any]:
        return {
            "queries_total": self.queries_total,
            "queries_without_judgements": self.queries_without_judgements,
            "judged_queries_missing": list(self.judged_queries_missing),
            "queries_truncated": self.queries_truncated,
        }


@dataclass(frozen=True)
class Report:
    """One ``qa eval``: the dataset, the index it ran on, the scores and the raw runs."""

    source: GoldSource | BeirSource
    split: str  # gold: dev, test or all; BEIR: the qrels file
    embed_model: str
    chunks: int
    summary: Summary
    runs: Mapping[str, RunDict] = field(repr=False)
    fusion: Mapping[str, Any] | None = None  # retrieval settings overridden by --fusion
    qrels: Mapping[str, Mapping[str, int]] = field(default_factory=dict, repr=False)

    # The summary's fields, read through the report.
    @property
    def kind(self) -> str:
        return self.summary.kind

    @property
    def scopes(self) -> tuple[str, ...]:
        return self.summary.scopes

    @property
    def primary(self) -> str:
        return self.summary.primary

    @property
    def metrics(self) -> Mapping[str, str]:
        return self.summary.metrics

    @property
    def modes(self) -> Mapping[str, ModeResult]:
        return self.summary.modes

    @property
    def counts(self) -> Mapping[str, Counts]:
        return self.summary.counts

    @property
    def significance(self) -> Significance:
        return self.summary.significance

    @property
    def queries(self) -> tuple[QueryRow, ...]:
        return self.summary.queries

    @property
    def gold(self) -> GoldSource:
        if not isinstance(self.source, GoldSource):
            raise ValueError("not a gold-set report")
        return self.source

    @property
    def beir(self) -> BeirSource:
        if not isinstance(self.source, BeirSource):
            raise ValueError("not a BEIR report")
        return self.source

    def with_fusion(self, fusion: Mapping[str, Any]) -> Report:
        return replace(self, fusion=dict(fusion))

    def to_json(self) -> dict[str, Any]:
        """The ``qa eval --json`` document: everything but the raw runs (``--run-out``)."""
        source = self.source
        head: dict[str, Any] = {**source.head_json(), "split": self.split}
        head["embed_model"] = self.embed_model
        if isinstance(source, GoldSource):
            head |= {"chunks": self.chunks, **source.tail_json()}
        else:
            head |= {**source.tail_json(), "chunks": self.chunks, **source.counts_json()}
        document = {**head, **self.summary.to_json()}
        if self.fusion is not None:
            document["fusion"] = dict(self.fusion)
        return document
