"""The evaluation harness on hand-checked fixtures, and the quality floor on the gold set."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import GOLD

from eval.harness import evaluate_gold, format_report, load_gold, relevant_chunks, score_runs
from qa.retrieve import Retriever
from qa.types import Chunk, Document, Footnote

# Measured with `qa eval` on the bundled corpus (see README); only ever raise these.
FLOORS = {"hybrid": {"recall@1": 0.74, "recall@5": 0.89, "recall@10": 0.89, "mrr@10": 0.80}}


def test_metrics_on_a_hand_annotated_run() -> None:
    qrels = {"q1": {"a": 1}, "q2": {"x": 1, "y": 1}, "q3": {"m": 1}}
    run = {
        "q1": {"b": 1.0, "a": 0.5},  # relevant at rank 2
        "q2": {"y": 1.0, "z": 0.5, "x": 1 / 3},  # relevant at ranks 1 and 3
        "q3": {f"n{i}": 1 / i for i in range(1, 12)},  # relevant never retrieved
    }
    values = score_runs(qrels, run)
    assert values["q1"]["recall@1"] == 0.0 and values["q1"]["recall@5"] == 1.0
    assert values["q1"]["mrr@10"] == pytest.approx(0.5)
    assert values["q2"]["recall@1"] == 1.0 and values["q2"]["mrr@10"] == pytest.approx(1.0)
    # DCG = 1 + 1/log2(4) = 1.5; ideal = 1 + 1/log2(3)
    assert values["q2"]["ndcg@10"] == pytest.approx(1.5 / (1 + 1 / 1.5849625), rel=1e-4)
    assert values["q3"] == {
        "recall@1": 0.0,
        "recall@5": 0.0,
        "recall@10": 0.0,
        "mrr@10": 0.0,
        "ndcg@10": 0.0,
    }


def test_relevance_is_evidence_containment(tmp_path: Path) -> None:
    path = tmp_path / "gold.jsonl"
    row = {
        "id": "x",
        "question": "q",
        "lang": "en",
        "answerable": True,
        "answer": "a",
        "doc_id": "d",
        "evidence": ["稀土 依賴"],
        "tags": [],
    }
    path.write_text(json.dumps(row, ensure_ascii=False) + "\n", "utf-8")
    question = load_gold(path)[0]
    chunk = Chunk("d", 0, 0, 8, 1, 2, "", 4, "日本稀土\n依賴高")
    other_doc = Chunk("e", 0, 0, 8, 1, 2, "", 4, "日本稀土依賴高")
    citing = Chunk("d", 1, 9, 20, 3, 3, "", 4, "正文¹", footnotes=(1,))
    plain = Chunk("d", 2, 21, 30, 4, 4, "", 4, "正文")
    note = Footnote(1, "報告說稀土 依賴很高", (), (), 31, 40)
    documents = {
        "d": Document("d", "t", "d.txt", "x" * 40, "h", footnotes=(note,)),
        "e": Document("e", "t", "e.txt", "x" * 8, "h"),
    }
    assert relevant_chunks(question, [chunk, other_doc, citing, plain], documents) == {
        chunk.anchor,
        citing.anchor,
    }


def test_gold_set_is_well_formed() -> None:
    questions = load_gold(GOLD)
    assert len(questions) >= 40 and len({q.id for q in questions}) == len(questions)
    assert {"zh-tw", "zh-cn", "en", "ja"} <= {q.lang for q in questions}
    assert sum(not q.answerable for q in questions) >= 3
    assert sum("footnote" in q.tags for q in questions) >= 3
    assert sum("page-break" in q.tags for q in questions) >= 3
    corpus = {p.stem: p.read_text("utf-8") for p in (GOLD.parents[1] / "corpus").glob("*.txt")}
    for q in questions:
        if q.answerable:
            assert q.evidence and all(e in corpus[str(q.doc_id)] for e in q.evidence), q.id


def test_quality_floor_on_gold_set(corpus_retriever: Retriever) -> None:
    report = evaluate_gold(corpus_retriever, GOLD, ["hybrid", "dense", "lexical"])
    assert report["scored"] == report["answerable"], report["evidence_not_found"]
    for mode, floors in FLOORS.items():
        overall = report["modes"][mode]["overall"]
        for metric, floor in floors.items():
            assert overall[metric] >= floor, (mode, metric, overall[metric])
    table = format_report(report)
    assert "recall@5" in table and "hybrid" in table and "p95" in table
