"""Score retrieval on the gold set with ranx metrics, per mode and per question language.

A retrieved passage is relevant when it, or a footnote its citation carries, contains one of
the question's evidence strings (whitespace ignored): the gold set does not depend on chunk ids
or chunk sizes, and a question answered by a footnote is answered by any passage citing it.
``recall@k`` here is the share of answerable questions with a relevant passage in the top k
(ranx ``hit_rate@k``): the question a reader asks is "is the answer among the first k?".
"""

from __future__ import annotations

import json
import statistics
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from qa.retrieve import Retriever
from qa.types import Chunk, Document, SearchMode

DEPTH = 10
METRICS = {
    "recall@1": "hit_rate@1",
    "recall@5": "hit_rate@5",
    "recall@10": "hit_rate@10",
    "mrr@10": "mrr@10",
    "ndcg@10": "ndcg@10",
}


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


def load_gold(path: Path) -> list[GoldQuestion]:
    questions = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
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
                    )
                )
            except (ValueError, KeyError) as exc:
                raise ValueError(f"{path}:{number}: not a gold question: {exc}") from None
    return questions


def _compact(text: str) -> str:
    return "".join(text.split())


def relevant_chunks(
    question: GoldQuestion, chunks: Iterable[Chunk], documents: Mapping[str, Document]
) -> set[str]:
    """Anchors of the chunks whose text or cited footnotes contain an evidence string."""
    needles = [_compact(e) for e in question.evidence if e.strip()]
    relevant = set()
    for chunk in chunks:
        if question.doc_id is not None and chunk.doc_id != question.doc_id:
            continue
        notes = documents[chunk.doc_id].footnotes_for(chunk.footnotes) if chunk.footnotes else ()
        shown = _compact(chunk.text + "".join(note.text for note in notes))
        if any(n in shown for n in needles):
            relevant.add(chunk.anchor)
    return relevant


def score_runs(
    qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]
) -> dict[str, dict[str, float]]:
    """Per-query metric values from ranx: ``{query_id: {metric: value}}``."""
    from ranx import Qrels, Run, evaluate

    ids = sorted(qrels)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba's uint64 -> int64 cast notice inside ranx
        values = evaluate(
            Qrels(qrels),
            Run({q: run.get(q) or {"<none>": 0.0} for q in ids}),
            list(METRICS.values()),
            return_mean=False,
        )
    return {
        q: {name: float(values[ranx_name][i]) for name, ranx_name in METRICS.items()}
        for i, q in enumerate(ids)
    }


def evaluate_gold(
    retriever: Retriever, gold_path: Path, modes: Sequence[SearchMode]
) -> dict[str, Any]:
    questions = load_gold(gold_path)
    answerable = [q for q in questions if q.answerable]
    index = retriever.index
    qrels = {
        q.id: {a: 1 for a in relevant_chunks(q, index.chunks, index.documents)} for q in answerable
    }
    missing = sorted(q for q, rel in qrels.items() if not rel)
    qrels = {q: rel for q, rel in qrels.items() if rel}
    report: dict[str, Any] = {
        "gold": str(gold_path),
        "questions": len(questions),
        "answerable": len(answerable),
        "scored": len(qrels),
        "evidence_not_found": missing,
        "modes": {},
    }
    for mode in modes:
        run: dict[str, dict[str, float]] = {}
        latencies = []
        for question in questions:
            started = time.perf_counter()
            result = retriever.search(question.question, top_k=DEPTH, mode=mode)
            latencies.append((time.perf_counter() - started) * 1000)
            # 1/rank keeps the service's order exactly, whatever its raw score scale.
            run[question.id] = {h.citation.anchor: 1.0 / h.rank for h in result.hits}
        per_query = score_runs(qrels, run)
        by_lang: dict[str, list[str]] = {}
        for q in answerable:
            if q.id in per_query:
                by_lang.setdefault(q.lang, []).append(q.id)
        report["modes"][mode] = {
            "overall": _mean(per_query, list(per_query)),
            "by_lang": {lang: _mean(per_query, ids) for lang, ids in sorted(by_lang.items())},
            "latency_ms": {
                "median": statistics.median(latencies),
                "p95": float(np.percentile(latencies, 95)),
            },
            "misses@5": sorted(q for q, m in per_query.items() if m["recall@5"] == 0),
        }
    return report


def _mean(per_query: dict[str, dict[str, float]], ids: list[str]) -> dict[str, float]:
    means: dict[str, float] = {"n": float(len(ids))}
    for name in METRICS:
        means[name] = float(np.mean([per_query[q][name] for q in ids])) if ids else 0.0
    return means


def format_report(report: dict[str, Any]) -> str:
    names = list(METRICS)
    lines = [
        f"gold set {report['gold']}: {report['questions']} questions, "
        f"{report['answerable']} answerable, {report['scored']} scored",
        "",
        f"{'mode':<8} {'subset':<8} {'n':>3} " + " ".join(f"{n:>9}" for n in names),
    ]
    for mode, result in report["modes"].items():
        rows = [("all", result["overall"]), *result["by_lang"].items()]
        for subset, metrics in rows:
            values = " ".join(f"{metrics[n]:>9.3f}" for n in names)
            lines.append(f"{mode:<8} {subset:<8} {int(metrics['n']):>3} {values}")
    lines += ["", f"{'mode':<8} {'median ms':>10} {'p95 ms':>10}  misses@5"]
    for mode, result in report["modes"].items():
        latency = result["latency_ms"]
        misses = ", ".join(result["misses@5"]) or "-"
        lines.append(f"{mode:<8} {latency['median']:>10.2f} {latency['p95']:>10.2f}  {misses}")
    if report["evidence_not_found"]:
        lines.append("evidence not found in any chunk: " + ", ".join(report["evidence_not_found"]))
    return "\n".join(lines)
