"""Benchmark the lexical index (``qa.lexical``) on synthetic corpora of any size.

Synthetic chunks recombine the sentences of an index's chunks: every sentence is analysed once,
and a new chunk is as many random sentences as a random real chunk has, its term ids
concatenated, so a million chunks cost no analysis. Queries are the gold questions' analysed
terms plus their dictionary translations, as the retriever ranks them (``query.terms +
query.translations``), at the retriever's depth (100).

    .venv/bin/python scripts/bench_lexical.py --index /tmp/lex/index --work /tmp/lex/bench \
        --sizes 100000 1000000

Each size is built in one process and queried in others (mapped and read into memory), so peak
RSS is per phase; latency is wall time with the thread's CPU time beside it. ``--tantivy`` also
measures tantivy on the same chunks, fed our tokens (``pip install tantivy``: not a dependency).
Prints one Markdown table and appends every measurement to ``WORK/results.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from qa.crosslingual import Expander
from qa.lexical import LexicalBuilder, LexicalIndex, analyze
from qa.query import analyze_query

_SENTENCE_END = re.compile(r"(?<=[。！？!?；;])|\n+")
DEPTH = 100


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def prepare(index_dir: Path, gold: Path, work: Path) -> None:
    """Analyse every sentence of the newest generation's chunks once, and the gold questions."""
    generation = max(index_dir.glob("gen-*"))
    sentences: list[list[str]] = []
    per_chunk: list[int] = []
    with open(generation / "chunks.jsonl", encoding="utf-8") as lines:
        for line in lines:
            parts = [s for s in _SENTENCE_END.split(json.loads(line)["text"]) if s.strip()]
            tokens = [t for t in (analyze(s) for s in parts) if t]
            sentences.extend(tokens)
            per_chunk.append(max(len(tokens), 1))
    expander = Expander(LexicalIndex.load(generation / "lexical").vocabulary)
    queries = []
    with open(gold, encoding="utf-8") as lines:
        for line in lines:
            query = analyze_query(json.loads(line)["question"], expander)
            queries.append([*query.terms, *query.translations])
    work.mkdir(parents=True, exist_ok=True)
    payload = {"sentences": sentences, "per_chunk": per_chunk, "queries": queries}
    (work / "source.json").write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")


def build(work: Path, size: int, batch: int = 8192, seed: int = 0) -> dict[str, Any]:
    source = json.loads((work / "source.json").read_text(encoding="utf-8"))
    rng = np.random.default_rng(seed)
    tick = time.perf_counter()
    builder = LexicalBuilder()
    sentence_ids = [builder.term_ids(s) for s in source["sentences"]]
    flat = np.concatenate(sentence_ids)
    sentence_len = np.array([len(s) for s in sentence_ids], dtype=np.int64)
    sentence_start = np.concatenate([[0], np.cumsum(sentence_len)[:-1]])
    per_chunk = np.array(source["per_chunk"], dtype=np.int64)
    generate = 0.0
    for first in range(0, size, batch):
        g = time.perf_counter()
        counts = rng.choice(per_chunk, min(batch, size - first))
        picked = rng.integers(0, len(sentence_ids), int(counts.sum()))
        lengths = sentence_len[picked]
        # positions of every token of every picked sentence, concatenated
        offsets = np.repeat(sentence_start[picked] - np.cumsum(lengths) + lengths, lengths)
        ids = flat[offsets + np.arange(int(lengths.sum()))]
        chunk_lengths = np.add.reduceat(lengths, np.concatenate([[0], np.cumsum(counts)[:-1]]))
        generate += time.perf_counter() - g
        builder.add_ids(ids, chunk_lengths)
    index = builder.finish()
    built = time.perf_counter() - tick
    target = work / f"index-{size}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    tick = time.perf_counter()
    index.save(target)
    saved = time.perf_counter() - tick
    disk = sum(f.stat().st_size for f in target.iterdir())
    return {
        "size": size,
        "entries": int(index._indptr[-1]),
        "build_s": round(built - generate, 2),
        "generate_s": round(generate, 2),
        "save_s": round(saved, 2),
        "build_peak_rss_mib": round(peak_rss_mib()),
        "disk_mib": round(disk / 2**20, 1),
    }


def query(work: Path, size: int, mmap: bool, repeat: int, naive: bool) -> dict[str, Any]:
    queries = json.loads((work / "source.json").read_text(encoding="utf-8"))["queries"]
    analyze("warm up 预热")  # jieba's dictionary (about 1.5 s) is not the index's load time
    before = peak_rss_mib()
    tick = time.perf_counter()
    index = LexicalIndex.load(work / f"index-{size}", mmap=mmap)
    loaded = time.perf_counter() - tick
    after_load = peak_rss_mib()
    for terms in queries:  # one pass to fault the pages in
        index.top(terms, DEPTH)
    allowed = set(range(size // 3, size // 3 + min(2000, size)))  # a few documents' chunks

    cpu: dict[str, list[float]] = {}

    def timed(run: Callable[[list[str]], object], times: int, name: str) -> tuple[float, float]:
        """Wall-clock p50/p95 in ms; the thread's CPU time goes to ``cpu`` (other processes on
        the machine stretch wall time, not CPU time)."""
        took, used = [], []
        for _ in range(times):
            for terms in queries:
                t, c = time.perf_counter(), time.thread_time()
                run(terms)
                used.append((time.thread_time() - c) * 1000)
                took.append((time.perf_counter() - t) * 1000)
        cpu[name] = [round(float(x), 2) for x in np.percentile(used, [50, 95])]
        p50, p95 = np.percentile(took, [50, 95])
        return round(float(p50), 2), round(float(p95), 2)

    result = {
        "size": size,
        "mmap": mmap,
        "load_s": round(loaded, 3),
        "load_rss_mib": round(after_load - before),
        "top_p50_p95_ms": timed(lambda t: index.top(t, DEPTH), repeat, "top"),
        "filtered_p50_p95_ms": timed(lambda t: index.top(t, DEPTH, allowed), repeat, "filtered"),
    }
    if naive:  # what the retriever did before: every score, a full stable argsort
        result["full_argsort_p50_p95_ms"] = timed(
            lambda t: np.argsort(-index.scores_for_terms(t), kind="stable")[:DEPTH], 1, "full"
        )
    result["cpu_p50_p95_ms"] = cpu
    result["load_average"] = os.getloadavg()[0]
    result["peak_rss_mib"] = round(peak_rss_mib())
    return result


def chunk_batches(
    work: Path, size: int, batch: int = 8192, seed: int = 0
) -> Iterator[list[list[str]]]:
    """The synthetic chunks of ``build`` as lists of token strings, batch by batch."""
    source = json.loads((work / "source.json").read_text(encoding="utf-8"))
    sentences = source["sentences"]
    rng = np.random.default_rng(seed)
    per_chunk = np.array(source["per_chunk"], dtype=np.int64)
    for first in range(0, size, batch):
        counts = rng.choice(per_chunk, min(batch, size - first))
        picked = rng.integers(0, len(sentences), int(counts.sum())).tolist()
        at = 0
        chunks = []
        for count in counts.tolist():
            chunks.append([t for i in picked[at : at + count] for t in sentences[i]])
            at += count
        yield chunks


def tantivy_build(work: Path, size: int) -> dict[str, Any]:
    """The same synthetic chunks in tantivy, fed our tokens through its whitespace tokenizer."""
    import tantivy

    target = work / f"tantivy-{size}"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    builder = tantivy.SchemaBuilder()
    builder.add_text_field("t", tokenizer_name="whitespace", index_option="freq")
    builder.add_integer_field("row", stored=True, fast=True)
    index = tantivy.Index(builder.build(), path=str(target))
    tick = time.perf_counter()
    writer = index.writer(heap_size=512_000_000, num_threads=1)
    row = 0
    for chunks in chunk_batches(work, size):
        for tokens in chunks:
            writer.add_document(tantivy.Document(t=" ".join(tokens), row=row))
            row += 1
    writer.commit()
    writer.wait_merging_threads()
    built = time.perf_counter() - tick
    disk = sum(f.stat().st_size for f in target.rglob("*") if f.is_file())
    return {
        "engine": "tantivy",
        "size": size,
        "build_s": round(built, 2),
        "build_peak_rss_mib": round(peak_rss_mib()),
        "disk_mib": round(disk / 2**20, 1),
    }


def tantivy_query(work: Path, size: int, repeat: int) -> dict[str, Any]:
    import tantivy

    queries = json.loads((work / "source.json").read_text(encoding="utf-8"))["queries"]
    before = peak_rss_mib()
    tick = time.perf_counter()
    index = tantivy.Index.open(str(work / f"tantivy-{size}"))
    searcher = index.searcher()
    loaded = time.perf_counter() - tick
    schema = index.schema

    def run(terms: list[str], rows: bool = False) -> object:
        clauses = [(tantivy.Occur.Should, tantivy.Query.term_query(schema, "t", t)) for t in terms]
        hits = searcher.search(tantivy.Query.boolean_query(clauses), DEPTH).hits
        if rows:
            return [searcher.doc(address)["row"][0] for _, address in hits]
        return hits

    for terms in queries:
        run(terms)
    took, used, with_rows = [], [], []
    for _ in range(repeat):
        for terms in queries:
            t, c = time.perf_counter(), time.thread_time()
            run(terms)
            used.append((time.thread_time() - c) * 1000)
            took.append((time.perf_counter() - t) * 1000)
            t = time.perf_counter()
            run(terms, rows=True)
            with_rows.append((time.perf_counter() - t) * 1000)
    return {
        "engine": "tantivy",
        "size": size,
        "load_s": round(loaded, 3),
        "load_rss_mib": round(peak_rss_mib() - before),
        "top_p50_p95_ms": [round(float(x), 2) for x in np.percentile(took, [50, 95])],
        "with_rows_p50_p95_ms": [round(float(x), 2) for x in np.percentile(with_rows, [50, 95])],
        "cpu_p50_p95_ms": {"top": [round(float(x), 2) for x in np.percentile(used, [50, 95])]},
        "load_average": os.getloadavg()[0],
        "segments": len(searcher.segment_readers())
        if hasattr(searcher, "segment_readers")
        else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=Path("/tmp/lex/index"))
    parser.add_argument("--gold", type=Path, default=Path("eval/gold.jsonl"))
    parser.add_argument("--work", type=Path, default=Path("/tmp/lex/bench"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000])
    parser.add_argument("--repeat", type=int, default=3, help="passes over the queries")
    parser.add_argument("--phase", choices=["all", "prepare", "build", "query"], default="all")
    parser.add_argument("--no-mmap", action="store_true")
    parser.add_argument("--naive", action="store_true", help="also time the full ranking")
    parser.add_argument("--engine", choices=["bm25s", "tantivy"], default="bm25s")
    parser.add_argument("--tantivy", action="store_true", help="also measure tantivy (all)")
    args = parser.parse_args()
    if args.engine == "tantivy":
        if args.phase == "build":
            print(json.dumps(tantivy_build(args.work, args.sizes[0])))
        else:
            print(json.dumps(tantivy_query(args.work, args.sizes[0], args.repeat)))
    elif args.phase == "prepare":
        prepare(args.index, args.gold, args.work)
        print(json.dumps({"prepared": str(args.work / "source.json")}))
    elif args.phase == "build":
        print(json.dumps(build(args.work, args.sizes[0])))
    elif args.phase == "query":
        print(
            json.dumps(query(args.work, args.sizes[0], not args.no_mmap, args.repeat, args.naive))
        )
    else:
        run_all(args)


def run_all(args: argparse.Namespace) -> None:
    def phase(*extra: str) -> dict[str, Any]:
        command = [sys.executable, __file__, "--work", str(args.work), *extra]
        out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        return dict(json.loads(out.strip().splitlines()[-1]))

    if not (args.work / "source.json").exists():
        phase("--phase", "prepare", "--index", str(args.index), "--gold", str(args.gold))
    print(
        "| engine | chunks | build s | build peak RSS MiB | disk MiB | load s (mmap / read) "
        "| RSS after load MiB (mmap / read) | top-100 p50 / p95 ms (CPU) | filtered p50 / p95 ms "
        "(CPU) |"
    )
    print("|---|---:|---:|---:|---:|---|---|---|---|")
    for size in args.sizes:
        sized = ["--sizes", str(size), "--repeat", str(args.repeat)]
        built = phase("--phase", "build", *sized)
        mapped = phase("--phase", "query", *sized, *(["--naive"] if args.naive else []))
        read = phase("--phase", "query", "--no-mmap", *sized)
        rows = [built, mapped, read]
        (p50, p95), (f50, f95) = mapped["top_p50_p95_ms"], mapped["filtered_p50_p95_ms"]
        (c50, c95), (g50, g95) = (
            mapped["cpu_p50_p95_ms"]["top"],
            mapped["cpu_p50_p95_ms"]["filtered"],
        )
        print(
            f"| bm25s | {size:,} | {built['build_s']} | {built['build_peak_rss_mib']} "
            f"| {built['disk_mib']} | {mapped['load_s']} / {read['load_s']} "
            f"| {mapped['load_rss_mib']} / {read['load_rss_mib']} | {p50} / {p95} ({c50} / {c95}) "
            f"| {f50} / {f95} ({g50} / {g95}) |"
        )
        if "full_argsort_p50_p95_ms" in mapped:
            print(f"  (before: every score + full argsort {mapped['full_argsort_p50_p95_ms']} ms)")
        if args.tantivy:
            engine = ["--engine", "tantivy"]
            built = phase("--phase", "build", *sized, *engine)
            mapped = phase("--phase", "query", *sized, *engine)
            rows += [built, mapped]
            p50, p95 = mapped["top_p50_p95_ms"]
            c50, c95 = mapped["cpu_p50_p95_ms"]["top"]
            print(
                f"| tantivy | {size:,} | {built['build_s']} | {built['build_peak_rss_mib']} "
                f"| {built['disk_mib']} | {mapped['load_s']} | {mapped['load_rss_mib']} "
                f"| {p50} / {p95} ({c50} / {c95}) | |"
            )
        with open(args.work / "results.jsonl", "a", encoding="utf-8") as out:
            out.writelines(json.dumps(row) + "\n" for row in rows)


if __name__ == "__main__":
    main()
