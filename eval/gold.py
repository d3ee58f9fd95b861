"""The hand-written gold set: loading, passage relevance, evaluation and the stored baseline.

A retrieved passage is relevant when it, or a footnote its citation carries, contains one of
the question's evidence strings (whitespace ignored): the gold set does not depend on chunk ids
or chunk sizes, and a question answered by a footnote is answered by any passage citing it.
The metrics carry ranx's names: ``hit_rate@k`` is the share of answerable questions with a
relevant passage in the top k (the question a reader asks is "is the answer among the first
k?"); it is not ranx ``recall@k``, the share of all relevant passages found.
Every question belongs to the ``dev`` or ``test`` split (a line without ``split`` is ``dev``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.answers import evaluate_answers
from eval.evidence import holds_evidence
from eval.metrics import summarize
from eval.results import GoldSource, Report
from eval.runs import ModeRun, Query, run_mode
from qa.retrieve import Retriever
from qa.types import Chunk, Document, Hit, SearchMode

DEPTH = 10
SPLITS = ("dev", "test")
METRICS = {name: name for name in ("hit_rate@1", "hit_rate@5", "hit_rate@10", "mrr@10", "ndcg@10")}
COMPARE_METRICS = ("mrr@10", "hit_rate@5")
BASELINE_MODE = "hybrid"
BASELINE_METRICS = (
    *METRICS,
    "unanswerable_flagged",
    "answerable_misflagged",
    "answer_hit_rate",
    "refusal_rate",
)
ANSWER_METRICS = ("answer_hit_rate", "refusal_rate")  # from ``eval.answers``
LOWER_IS_BETTER = frozenset({"answerable_misflagged"})
BASELINE_COMMAND = "qa ingest && qa eval --modes hybrid --write-baseline eval/baseline.json"


@dataclass(frozen=True)
class GoldQuestion:
    id: str
    question: str
    lang: str
    answerable: bool
    answer: str
    doc_id: str | None
    evidence: tuple[str, ...]
    tags: tuple[str, ...]
    split: str = "dev"


def load_gold(path: Path) -> list[GoldQuestion]:
    questions = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                split = row.get("split") or "dev"
                if split not in SPLITS:
                    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
                questions.append(
                    GoldQuestion(
                        id=row["id"],
                        question=row["question"],
                        lang=row["lang"],
                        answerable=bool(row["answerable"]),
                        answer=row.get("answer", ""),
                        doc_id=row.get("doc_id"),
                        evidence=tuple(row.get("evidence", ())),
                        tags=tuple(row.get("tags", ())),
                        split=split,
                    )
                )
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path}:{number}: not a gold question: {exc}") from None
    return questions


def gold_fingerprint(questions: Iterable[GoldQuestion]) -> str:
    """Hash of what decides the metrics (not the answer text): a baseline is tied to it."""
    rows = sorted(
        (q.id, q.split, q.lang, q.question, q.answerable, q.doc_id, list(q.evidence))
        for q in questions
    )
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()[:16]


def relevant_chunks(
    question: GoldQuestion, chunks: Iterable[Chunk], documents: Mapping[str, Document]
) -> set[str]:
    """Anchors of the chunks whose text or cited footnotes contain an evidence string."""
    relevant = set()
    for chunk in chunks:
        if question.doc_id is not None and chunk.doc_id != question.doc_id:
            continue
        notes = documents[chunk.doc_id].footnotes_for(chunk.footnotes) if chunk.footnotes else ()
        shown = chunk.text + "".join(note.text for note in notes)
        if holds_evidence(question.evidence, [shown]):
            relevant.add(chunk.anchor)
    return relevant


def evaluate_gold(
    retriever: Retriever,
    gold_path: Path,
    modes: Sequence[SearchMode],
    *,
    split: str = "all",
    stat_test: str | None = "student",
) -> Report:
    """Run the gold questions of ``split`` (dev, test or all) in every mode and score them.

    With ``split="all"`` the report has the dev and test splits as well as all questions.
    """
    if split not in (*SPLITS, "all"):
        raise ValueError(f"split must be dev, test or all, got {split!r}")
    everything = load_gold(gold_path)
    questions = [q for q in everything if split == "all" or q.split == split]
    index = retriever.index
    judged = {
        q.id: relevant_chunks(q, index.chunks, index.documents) for q in questions if q.answerable
    }
    queries = [
        Query(q.id, q.question, q.lang, q.split, q.answerable, q.evidence, q.answer, q.tags)
        for q in questions
    ]
    chunks = index.chunks

    def unit(query: Query, hit: Hit) -> str:
        """A passage counts as its chunk that holds the evidence, if one does (a passage may
        join neighbouring chunks), else as its best chunk: the judgements stay the chunks'."""
        relevant = judged.get(query.id, set())
        best = chunks[hit.row].anchor if hit.row is not None else hit.citation.anchor
        return next((a for a in (chunks[r].anchor for r in hit.rows) if a in relevant), best)

    runs: dict[str, ModeRun] = {
        mode: run_mode(retriever, queries, mode, top_k=DEPTH, unit=unit)
        for mode in dict.fromkeys(modes)
    }
    qrels = {q: dict.fromkeys(sorted(rel), 1) for q, rel in judged.items() if rel}
    summary = summarize(
        kind="gold",
        queries=queries,
        qrels=qrels,
        runs=runs,
        metrics=METRICS,
        curve_metric="hit_rate",
        compare_metrics=COMPARE_METRICS,
        scopes=[*SPLITS, "all"] if split == "all" else [split],
        stat_test=stat_test,
    )
    answers = (
        {
            scope: scores
            for scope, scores in evaluate_answers(retriever, questions).items()
            if scope in summary.scopes
        }
        if BASELINE_MODE in runs
        else {}
    )
    source = GoldSource(
        gold=str(gold_path),
        gold_fingerprint=gold_fingerprint(everything),
        answers=answers,
        evidence_not_found=tuple(sorted(q for q, rel in judged.items() if not rel)),
    )
    return Report(
        source=source,
        split=split,
        embed_model=retriever.embedder.model_id,
        chunks=len(index.chunks),
        summary=summary,
        runs={mode: run.run for mode, run in runs.items()},
        qrels=qrels,
    )


def baseline_from_report(report: Report, mode: str = BASELINE_MODE) -> dict[str, Any]:
    """The numbers ``tests/test_eval.py`` holds the code to: ``mode`` on the dev and test splits."""
    if report.kind != "gold" or not set(SPLITS) <= set(report.scopes):
        raise ValueError("a baseline needs the gold set evaluated with --split all")
    if mode not in report.modes:
        raise ValueError(f"a baseline needs the {mode} mode")
    gold = report.gold
    splits = {}
    for split in SPLITS:
        values = report.modes[mode].splits[split]
        flag = values.answerable_flag
        answers = gold.answers.get(split)
        splits[split] = {
            "questions": report.counts[split].questions,
            "scored": report.counts[split].scored,
            **{m: _round(values.overall[m]) for m in METRICS},
            "unanswerable_flagged": _round(flag.unanswerable_flagged),
            "answerable_misflagged": _round(flag.answerable_misflagged),
            **{
                m: _round(getattr(answers, m) if answers is not None else None)
                for m in ANSWER_METRICS
                if mode == BASELINE_MODE
            },
        }
    return {
        "about": "hybrid retrieval and extractive answers on the gold set; tests/test_eval.py "
        "fails if a metric falls more than 0.001 below these (answerable_misflagged: rises "
        "above)",
        "command": BASELINE_COMMAND,
        "gold": "eval/gold.jsonl",
        "gold_fingerprint": gold.gold_fingerprint,
        "embed_model": report.embed_model,
        "chunks": report.chunks,
        "mode": mode,
        "tolerance": 0.001,
        "splits": splits,
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def baseline_regressions(
    report: Report, baseline: Mapping[str, Any], tolerance: float = 0.001
) -> list[str]:
    """Every metric of the baseline's mode that got worse than the baseline by more than
    ``tolerance`` (higher is better, except ``answerable_misflagged``)."""
    current = baseline_from_report(report, baseline["mode"])["splits"]
    problems = []
    for split, stored in baseline["splits"].items():
        for metric in BASELINE_METRICS:
            was, now = stored.get(metric), current[split].get(metric)
            if was is None:
                continue
            if now is None:
                problems.append(f"{split} {metric}: {was:.4f} in the baseline, now not measured")
            elif metric in LOWER_IS_BETTER and now > was + tolerance:
                problems.append(f"{split} {metric}: rose from {was:.4f} to {now:.4f}")
            elif metric not in LOWER_IS_BETTER and now < was - tolerance:
                problems.append(f"{split} {metric}: fell from {was:.4f} to {now:.4f}")
    return problems
