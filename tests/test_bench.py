"""scripts/bench.py at a tiny size: one run, its markdown tables and its JSON."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from conftest import CORPUS

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench.py"
ARGS = ["--sizes", "1", "--vectors", "20000", "--duration", "2", "--no-busy", "--rounds", "1"]


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any], Path]:
    work = tmp_path_factory.mktemp("bench")
    before = sorted(p.name for p in CORPUS.iterdir())
    done = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            *ARGS,
            *("--source", str(CORPUS), "--workdir", str(work / "w"), "--json", "b.json"),
        ],
        cwd=work,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in CORPUS.iterdir()) == before
    return done.stdout, json.loads((work / "b.json").read_text("utf-8")), work


def _tables(markdown: str) -> list[list[list[str]]]:
    """Each markdown table as rows of cells (separator rows dropped)."""
    tables: list[list[list[str]]] = []
    previous_was_table = False
    for line in markdown.splitlines():
        is_table = line.startswith("|")
        if is_table and not set(line) <= set("|-: "):
            if not previous_was_table:
                tables.append([])
            tables[-1].append([cell.strip() for cell in line.strip("|").split("|")])
        previous_was_table = is_table
    return tables


def test_one_block_with_three_tables(bench_run: tuple[str, dict[str, Any], Path]) -> None:
    stdout, _, _ = bench_run
    assert stdout.startswith("## Benchmark (") and " cores, " in stdout.splitlines()[0]
    assert f"{SCRIPT} {' '.join(ARGS)}" in stdout
    ingest, latency, side = _tables(stdout)
    for table in (ingest, latency, side):  # every row has as many cells as the header
        assert {len(row) for row in table} == {len(table[0])}
    assert ingest[0][:4] == ["corpus", "docs", "chunks", "ingest chunks/s"]
    assert [row[0] for row in ingest[1:]] == ["1x"]
    assert latency[0][1:8] == ["embed", "analyze", "dense", "lexical", "fuse", "assemble", "total"]
    assert latency[0][8:] == ["embed ÷ encoder", "dense ÷ FAISS", "lexical ÷ bm25s"]
    assert [row[0] for row in latency[1:]] == ["1x idle"]  # --no-busy
    names = [row[0] for row in side[1:]]
    assert names[0].startswith("20,000 vectors, ") and "exact `Flat`" in names[1]
    assert all("`qa serve` 1x" in name and "8 clients" in name for name in names[2:])
    assert len(names) in (3, 4)  # a workers=2 row when `qa serve --workers` exists


def test_numbers_are_sane(bench_run: tuple[str, dict[str, Any], Path]) -> None:
    _, result, work = bench_run
    (row,) = result["sizes"]
    assert row["documents"] == 2 and 100 < row["chunks"] < 300
    assert row["chunks_per_s"] > 0 and row["disk_per_chunk"] > 1000
    assert row["peak_rss"] > 100 * 2**20 and row["server_rss"] > result["embedder_rss"] > 0
    idle = row["loads"]["idle"]
    for stage in ("embed", "dense", "lexical", "total"):
        assert 0 < idle["stages"][stage]["p50"] <= idle["stages"][stage]["p95"]
    assert idle["stages"]["total"]["p50"] >= idle["stages"]["embed"]["p50"]
    assert all(raw["p50"] > 0 for raw in idle["raw"].values())
    vectors = result["vectors"]
    assert vectors["vectors"] == 20000 and vectors["bytes_per_vector"] >= 4 * 512
    assert 0 <= vectors["recall_at_10"] <= 1 and vectors["recall_queries"] == 200
    assert 0 < vectors["search"]["p50"] <= vectors["search"]["p95"] and vectors["build_s"] > 0
    assert vectors["exact"]["p50"] > 0
    for served in result["serving"]:
        assert served["rps"] > 0 and served["errors"] == 0 and served["clients"] == 8
    assert result["complete"] is True
    assert list((work / "w").iterdir()) == []  # corpora and indexes are removed


def test_copies_shuffle_paragraphs_under_distinct_names_and_titles(tmp_path: Path) -> None:
    from qa.ingest import ingest_paths

    bench = _bench_module()
    assert bench.make_corpus(tmp_path / "c", 3, seed=1, source_dir=CORPUS) == 6
    documents = ingest_paths([tmp_path / "c"], tmp_path / "c", strict=True).documents
    assert len({d.doc_id for d in documents}) == len({d.title for d in documents}) == 6
    for source in sorted(CORPUS.glob("*.txt")):
        original = Counter(line for line in source.read_text("utf-8").split("\n") if line.strip())
        copies = sorted((tmp_path / "c").glob(f"{source.stem}-copy*.txt"))
        texts = [path.read_text("utf-8") for path in copies]
        assert len(copies) == 3 and len(set(texts)) == 3  # shuffled differently
        for text in texts:  # the same paragraphs but the retitled head
            lines = Counter(line for line in text.split("\n") if line.strip())
            assert sum((original - lines).values()) <= 3
            assert sum(lines.values()) == sum(original.values())
