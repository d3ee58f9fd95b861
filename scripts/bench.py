#!/usr/bin/env python
"""Benchmark of issue 17: ingest, memory, per-stage latency, ANN recall and req/s, one table.

Builds synthetic corpora at ``--sizes`` times the bundled corpus in a temporary folder (N copies
of each bundled document, paragraphs shuffled by a seeded RNG, each copy its own file and title),
ingests each with the real pipeline in a child process (so peak RSS is per build), then measures
in one run:

- ingest chunks/s, peak RSS, its growth per chunk between sizes, bytes per chunk on disk (the
  served generation) and server RAM per chunk (a process holding the index minus one holding
  only the model, both after one query encoding);
- hybrid ``Retriever.search`` per-stage latency p50/p95 over the gold questions (all languages),
  idle and with one busy core, beside the raw components timed in the same process: the encoder
  alone, FAISS alone (top 100) and bm25s alone (``get_scores`` plus top-100 selection);
- a ``--vectors`` search-side set derived from the real chunk and sentence vectors of the largest
  index (gaussian noise, renormalised), indexed by the library's chooser (``qa.dense``) or, while
  that does not exist, by HNSW32: build time, bytes/vector, single-query p50/p95, recall@10
  against exact ``IndexFlatIP`` on 200 real question/sentence vectors, exact search p50;
- req/s of ``qa serve`` over the 1x index with ``--clients`` concurrent clients (and with
  ``--workers 2`` when ``qa serve`` has that option).

Serving-side measurements use ``--threads`` (1); builds use every core. Prints one markdown block;
``--json PATH`` writes the same numbers. The machine's load changes the numbers: note it.

    .venv/bin/python scripts/bench.py
    .venv/bin/python scripts/bench.py --sizes 1,10,100,1000 --vectors 1000000 --json bench.json
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import random
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from functools import partial
from multiprocessing import get_context
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadtest import (
    ServerStartError,
    free_port,
    load_questions,
    percentile,
    run_load,
    stop,
    wait_ready,
)

ROOT = Path(__file__).resolve().parents[1]
GOLD = ROOT / "eval" / "gold.jsonl"
STAGES = ("embed", "analyze", "dense", "lexical", "fuse", "assemble", "total")
RAW_K = 100  # raw FAISS and bm25s return this many, as the dense stage's candidate depth
RECALL_QUERIES = 200
MiB = 1024 * 1024
T = TypeVar("T")
Array = npt.NDArray[np.float32]


# --- measuring helpers ---------------------------------------------------------------------------


def proc_status(key: str) -> int:
    """A ``/proc/self/status`` memory line (``VmRSS``, ``VmHWM``) in bytes."""
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def in_child(function: Callable[..., T], *args: Any) -> T:
    """Run ``function(*args)`` in a fresh spawned process: its memory is its own."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


@contextmanager
def busy_core(enabled: bool) -> Iterator[None]:
    """One CPU-bound process spinning for the duration (nothing when not ``enabled``)."""
    if not enabled:
        yield
        return
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)  # let it reach the CPU before measuring
        yield
    finally:
        spinner.kill()
        spinner.wait(timeout=10)


def timed_ms(function: Callable[[], object]) -> float:
    tick = time.perf_counter()
    function()
    return (time.perf_counter() - tick) * 1000


def p50_p95(values: Sequence[float]) -> dict[str, float]:
    return {"p50": percentile(values, 50), "p95": percentile(values, 95)}


# --- synthetic corpora ---------------------------------------------------------------------------


def make_corpus(target: Path, copies: int, seed: int, source_dir: Path = ROOT / "corpus") -> int:
    """``copies`` shuffled copies of each ``.txt`` document of ``source_dir`` (the bundled
    corpus) under ``target``; returns the files.

    A copy keeps the document's head (up to its title line) in place with the title suffixed by
    the copy number, and shuffles every later paragraph (a ``.txt`` line is a paragraph)."""
    from qa.ingest import read_document

    target.mkdir(parents=True)
    rng = random.Random(seed)
    written = 0
    for source in sorted(source_dir.glob("*.txt")):
        title = read_document(source, source_dir).title
        lines = [line for line in source.read_text("utf-8").split("\n") if line.strip()]
        heads = [i for i, line in enumerate(lines[:20]) if title in line]
        cut = heads[-1] + 1 if heads else 0
        for copy in range(1, copies + 1):
            head = [line.replace(title, f"{title} 副本{copy}") for line in lines[:cut]]
            body = lines[cut:]
            rng.shuffle(body)
            name = f"{source.stem}-copy{copy:05d}.txt"
            (target / name).write_text("\n".join(head + body) + "\n", "utf-8")
            written += 1
    return written


# --- children: each runs in its own process ------------------------------------------------------


def child_ingest(corpus: Path, index_dir: Path, threads: int) -> dict[str, Any]:
    from qa.config import Settings
    from qa.index import current_generation
    from qa.service import ingest, open_embedder

    # As `qa ingest` runs: QA_INGEST_THREADS embedding processes (or threads, for a small corpus).
    settings = Settings(corpus_dir=corpus, index_dir=index_dir, threads=1, ingest_threads=threads)
    # Loading the model here is not ingest throughput (worker processes load their own copy
    # inside the timed ingest: that start-up is counted).
    embedder = open_embedder(settings, threads=threads)
    embedder.encode_passages(["warm up", "預熱"])
    started = time.perf_counter()
    outcome = ingest(settings, embedder=embedder, strict=True)
    seconds = time.perf_counter() - started
    generation = current_generation(index_dir)
    if generation is None:
        raise RuntimeError(f"ingest wrote no generation in {index_dir}")
    disk = sum(p.stat().st_size for p in generation.rglob("*") if p.is_file())
    chunks = outcome.build.chunks_total
    return {
        "documents": len(outcome.plan.documents),
        "chunks": chunks,
        "ingest_s": seconds,
        "chunks_per_s": chunks / seconds,
        "peak_rss": proc_status("VmHWM"),
        "disk_bytes": disk,
        "disk_per_chunk": disk / chunks,
    }


def child_embedder_rss(threads: int) -> int:
    from qa.config import Settings
    from qa.service import open_embedder

    embedder = open_embedder(Settings(threads=threads))
    embedder.encode_queries(["warm up"])
    return proc_status("VmRSS")


def bm25s_of(index: Any) -> Any:
    """The raw ``bm25s.BM25`` behind the index's lexical side: the one it wraps, or the same
    files loaded by bm25s itself (its directory is a bm25s save)."""
    wrapped = getattr(index.lexical, "_retriever", None)
    if wrapped is not None:
        return wrapped
    import bm25s

    return bm25s.BM25.load(str(index.path / "lexical"))


def child_queries(
    index_dir: Path, threads: int, rounds: int, busy: bool, dump: Path | None
) -> dict[str, Any]:
    """Server-like RSS, then per-stage latency and the raw components, idle (and busy)."""
    from qa.config import Settings
    from qa.index import Index
    from qa.service import open_retriever

    retriever = open_retriever(Settings(index_dir=index_dir, threads=threads))
    index = retriever.index
    assert isinstance(index, Index)  # the local store: its FAISS index and arrays are timed
    retriever.embedder.encode_queries(["warm up"])
    rss = proc_status("VmRSS")
    retriever.warm_up()
    questions = load_questions(GOLD)
    raw_bm25 = bm25s_of(index)
    vocabulary = raw_bm25.vocab_dict
    vectors = retriever.embedder.encode_queries(questions)
    terms = []
    for question in questions:
        query = retriever.search(question, mode="hybrid").query  # also warms every stage
        analysed = [*query.terms, *query.translations] if query is not None else []
        terms.append([t for t in analysed if t in vocabulary])
    size = len(retriever.index.chunks)
    encode, dense = retriever.embedder.encode_queries, index.dense

    def bm25_alone(known: list[str]) -> None:
        if not known:
            return
        scores = raw_bm25.get_scores(known)
        if size > RAW_K:
            top = np.argpartition(-scores, RAW_K)[:RAW_K]
            top[np.argsort(-scores[top])]
        else:
            np.argsort(-scores)

    def measure() -> dict[str, Any]:
        stages: dict[str, list[float]] = {stage: [] for stage in STAGES}
        raw: dict[str, list[float]] = {"encoder": [], "faiss": [], "bm25s": []}
        for _ in range(rounds):
            for i, question in enumerate(questions):
                timings = retriever.search(question, mode="hybrid").timings_ms
                for stage, ms in timings.items():
                    stages.setdefault(stage, []).append(ms)
                raw["encoder"].append(timed_ms(partial(encode, [question])))
                raw["faiss"].append(timed_ms(partial(dense.search, vectors[i][None], RAW_K)))
                raw["bm25s"].append(timed_ms(partial(bm25_alone, terms[i])))
        return {
            "stages": {k: p50_p95(v) for k, v in stages.items() if v},
            "raw": {k: p50_p95(v) for k, v in raw.items()},
            "samples": len(questions) * rounds,
        }

    result: dict[str, Any] = {"server_rss": rss, "loads": {"idle": measure()}}
    if busy:
        with busy_core(True):
            result["loads"]["busy"] = measure()
    if dump is not None:  # the largest index's real vectors, for the search-side set
        dense = index.dense
        np.save(dump / "chunks.npy", np.asarray(dense.reconstruct_n(0, dense.ntotal), np.float32))
        np.save(dump / "sentences.npy", np.asarray(index.sentence_vectors, np.float32))
        np.save(dump / "questions.npy", np.asarray(vectors, np.float32))
    return result


# --- the search-side set -------------------------------------------------------------------------


def derive_vectors(base: Array, n: int, noise: float, seed: int) -> Array:
    """``n`` unit vectors: the ``base`` rows in turn plus gaussian noise (``noise`` per
    dimension), renormalised. Built block by block to bound the temporary memory."""
    rng = np.random.default_rng(seed)
    out = np.empty((n, base.shape[1]), dtype=np.float32)
    for start in range(0, n, 65536):
        stop_ = min(n, start + 65536)
        block = base[np.arange(start, stop_) % len(base)]
        block = block + rng.standard_normal(block.shape, dtype=np.float32) * noise
        block /= np.linalg.norm(block, axis=1, keepdims=True)
        out[start:stop_] = block
    return out


def exact_top(vectors: Array, queries: Array, k: int) -> npt.NDArray[np.int64]:
    """Brute-force inner-product top ``k`` (the oracle), in blocks of rows."""
    best_scores = np.full((len(queries), 0), -np.inf, dtype=np.float32)
    best_rows = np.zeros((len(queries), 0), dtype=np.int64)
    for start in range(0, len(vectors), 262144):
        scores = queries @ vectors[start : start + 262144].T
        rows = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
        best_scores = np.hstack([best_scores, np.take_along_axis(scores, rows, 1)])
        best_rows = np.hstack([best_rows, rows + start])
    order = np.argsort(-best_scores, axis=1)[:, :k]
    return np.take_along_axis(best_rows, order, 1)


def recall_at(found: npt.NDArray[np.int64], truth: npt.NDArray[np.int64], k: int = 10) -> float:
    if not len(truth):
        return float("nan")
    hits = sum(
        len(set(f[:k].tolist()) & set(t[:k].tolist())) for f, t in zip(found, truth, strict=True)
    )
    return hits / (k * len(truth))


def hnsw_fallback(vectors: Array, probes: Array | None) -> tuple[Any, dict[str, Any]]:
    """HNSW32 with the smallest efSearch reaching recall@10 >= 0.95 on ``probes``: what the
    benchmark builds until ``qa.dense.build_dense`` exists."""
    import faiss

    index = faiss.IndexHNSWFlat(vectors.shape[1], 32, faiss.METRIC_INNER_PRODUCT)
    index.add(vectors)
    recall, ef = None, 64
    if probes is not None and len(probes):
        truth = exact_top(vectors, probes, 10)
        for ef in (16, 32, 64, 128, 256, 512):
            index.hnsw.efSearch = ef
            recall = recall_at(index.search(probes, 10)[1], truth)
            if recall >= 0.95:
                break
    index.hnsw.efSearch = ef
    return index, {
        "kind": "hnsw",
        "factory": "HNSW32,Flat",
        "vectors": len(vectors),
        "recall_at_10": recall,
        "recall_queries": 0 if probes is None else len(probes),
        "search_params": {"efSearch": ef},
    }


def build_dense(vectors: Array, probes: Array | None) -> tuple[Any, dict[str, Any], str]:
    """The library's dense index chooser when there is one, else ``hnsw_fallback``."""
    try:
        dense = importlib.import_module("qa.dense")
    except ImportError:
        index, info = hnsw_fallback(vectors, probes)
        return index, info, "scripts/bench.py fallback (no qa.dense)"
    index, chosen = dense.build_dense(vectors, probes=probes)
    info = asdict(chosen) if is_dataclass(chosen) and not isinstance(chosen, type) else dict(chosen)
    return index, info, "qa.dense.build_dense"


def child_vectors(
    dump: Path, n: int, noise: float, seed: int, build_threads: int, threads: int, rounds: int
) -> dict[str, Any]:
    import faiss

    chunks, sentences = np.load(dump / "chunks.npy"), np.load(dump / "sentences.npy")
    questions = np.load(dump / "questions.npy")
    base = np.vstack([chunks, sentences]).astype(np.float32)
    vectors = derive_vectors(base, n, noise, seed)
    # Half the questions (and as many sentences) are the chooser's probes; recall is reported
    # on the other half and other sentences, RECALL_QUERIES in all: held out from the tuning.
    half = RECALL_QUERIES // 2
    picked = np.random.default_rng(seed + 1).permutation(len(sentences))
    probe_q, eval_q = questions[0::2][:half], questions[1::2][:half]
    taken = RECALL_QUERIES - len(probe_q)
    probes = np.vstack([probe_q, sentences[picked[:taken]]])
    eval_s = sentences[picked[taken : taken + RECALL_QUERIES - len(eval_q)]]
    queries = np.vstack([eval_q, eval_s]).astype(np.float32)

    faiss.omp_set_num_threads(build_threads)
    tick = time.perf_counter()
    index, info, chooser = build_dense(vectors, probes)
    build_s = time.perf_counter() - tick
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    del vectors
    path = dump / "ann.faiss"
    faiss.write_index(index, str(path))
    stored = path.stat().st_size
    path.unlink()

    truth, found = exact.search(queries, 10)[1], index.search(queries, 10)[1]
    recall = recall_at(found, truth)
    split = len(eval_q)
    faiss.omp_set_num_threads(threads)
    singles = [q[None] for q in questions]
    for q in singles[:20]:  # warm up
        index.search(q, 10)
    ann_ms = [timed_ms(partial(index.search, q, 10)) for _ in range(rounds) for q in singles]
    exact_ms = [timed_ms(partial(exact.search, q, 10)) for q in singles[:50]]
    return {
        "vectors": int(index.ntotal),
        "base_vectors": len(base),
        "noise": noise,
        "chooser": chooser,
        "info": info,
        "build_s": build_s,
        "bytes_per_vector": stored / index.ntotal,
        "search": p50_p95(ann_ms),
        "exact": p50_p95(exact_ms),
        "recall_at_10": recall,
        "recall_queries": len(queries),
        "recall_questions": recall_at(found[:split], truth[:split]),
        "recall_sentences": recall_at(found[split:], truth[split:]),
        "question_queries": split,
        "peak_rss": proc_status("VmHWM"),
    }


# --- serving -------------------------------------------------------------------------------------


def serve_supports_workers() -> bool:
    found = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return "--workers" in found.stdout


def serve_load(
    index_dir: Path, workers: int, threads: int, clients: int, duration: float, log: Path
) -> dict[str, Any]:
    """Start ``qa serve`` over ``index_dir``, warm it, drive ``clients`` hybrid clients."""
    port = free_port()
    env = {**os.environ, "QA_INDEX_DIR": str(index_dir), "QA_THREADS": str(threads)}
    env["QA_RELOAD_INTERVAL"] = "0"
    env.pop("QA_API_KEYS", None)
    command = [sys.executable, "-m", "cli", "serve", "--no-ingest", "--host", "127.0.0.1"]
    command += ["--port", str(port)] + (["--workers", str(workers)] if workers > 1 else [])
    with open(log, "wb") as output:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=output, stderr=output)
    url = f"http://127.0.0.1:{port}"
    keys = ("requests", "errors", "rps", "p50_ms", "p95_ms", "p99_ms")
    row: dict[str, Any] = {"workers": workers, "clients": clients}
    try:
        wait_ready(url, process, 180)
        questions = load_questions(GOLD)
        run_load(url, clients=clients, duration=1.0, questions=questions, modes=("hybrid",))
        report = run_load(
            url, clients=clients, duration=duration, questions=questions, modes=("hybrid",)
        )
    except ServerStartError as exc:  # the other measurements stand: report it in the table
        tail = log.read_text("utf-8", errors="replace").strip().splitlines()[-1:] or [""]
        log_tail = tail[0][-300:]
        return row | dict.fromkeys(keys) | {"failed": f"{exc}: {log_tail}"}
    finally:
        stop(process)
    summary = report.summary()
    return row | {k: summary[k] for k in keys}


# --- the table -----------------------------------------------------------------------------------


def _f(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or value != value else f"{value:,.{digits}f}"


def _ratio(stage: dict[str, Any] | None, raw: dict[str, Any]) -> str:
    if stage is None or not raw["p50"]:
        return "–"
    return f"{stage['p50'] / raw['p50']:.2f} ({raw['p50']:.2f})"


def render(result: dict[str, Any]) -> str:
    lines = [
        f"## Benchmark ({result['date']}, {result['cores']} cores, "
        f"serving threads={result['threads']}, build threads={result['build_threads']})",
        "",
        f"`{result['command']}` (wall time {result['wall_s']:.0f} s)",
        "",
        "| corpus | docs | chunks | ingest chunks/s | peak RSS MiB | Δpeak KiB/chunk "
        "| disk B/chunk | server RSS MiB | server KiB/chunk | Δserver KiB/chunk |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in result["sizes"]:
        lines.append(
            f"| {row['size']}x | {row['documents']} | {row['chunks']:,} | "
            f"{_f(row['chunks_per_s'])} | {_f(row['peak_rss'] / MiB, 0)} | "
            f"{_f(row['rss_growth_per_chunk'] and row['rss_growth_per_chunk'] / 1024)} | "
            f"{_f(row['disk_per_chunk'], 0)} | {_f(row['server_rss'] / MiB, 0)} | "
            f"{_f(row['server_per_chunk'] / 1024)} | "
            f"{_f(row['server_growth_per_chunk'] and row['server_growth_per_chunk'] / 1024)} |"
        )
    lines += [
        "",
        "| hybrid search, ms p50 / p95 | " + " | ".join(STAGES) + " | embed ÷ encoder "
        "| dense ÷ FAISS | lexical ÷ bm25s |",
        "|---|" + "--:|" * (len(STAGES) + 3),
    ]
    for row in result["sizes"]:
        for load, measured in row["loads"].items():
            stages, raw = measured["stages"], measured["raw"]
            cells = [
                f"{s['p50']:.2f} / {s['p95']:.2f}" if (s := stages.get(stage)) else "–"
                for stage in STAGES
            ]
            cells += [
                _ratio(stages.get("embed"), raw["encoder"]),
                _ratio(stages.get("dense"), raw["faiss"]),
                _ratio(stages.get("lexical"), raw["bm25s"]),
            ]
            lines.append(f"| {row['size']}x {load} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| search side and serving | build s | B/vector | p50 ms | p95 ms | recall@10 "
        "| req/s | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    if vec := result.get("vectors"):
        info = vec["info"]
        lines.append(
            f"| {vec['vectors']:,} vectors, {info['kind']} `{info['factory']}` | "
            f"{_f(vec['build_s'])} | {_f(vec['bytes_per_vector'], 0)} | "
            f"{vec['search']['p50']:.2f} | {vec['search']['p95']:.2f} | "
            f"{vec['recall_at_10']:.3f} | – | – |"
        )
        lines.append(
            f"| {vec['vectors']:,} vectors, exact `Flat` (reference) | – | – | "
            f"{vec['exact']['p50']:.2f} | {vec['exact']['p95']:.2f} | 1 | – | – |"
        )
    for row in result["serving"]:
        lines.append(
            f"| `qa serve` {result['serve_size']}x, workers={row['workers']}, "
            f"{row['clients']} clients, hybrid | – | – | {_f(row['p50_ms'], 2)} | "
            f"{_f(row['p95_ms'], 2)} | – | {_f(row['rps'])} | "
            f"{'server failed' if row.get('failed') else row['errors']} |"
        )
    lines += ["", *result["notes"]]
    return "\n".join(lines)


# --- main ----------------------------------------------------------------------------------------


def sizes_arg(text: str) -> list[int]:
    try:
        sizes = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of integers: {text!r}") from None
    if not sizes or sizes[0] < 1:
        raise argparse.ArgumentTypeError("sizes must be positive integers")
    return sizes


def parser() -> argparse.ArgumentParser:
    from qa.config import available_cores

    p = argparse.ArgumentParser(
        description=(__doc__ or "").split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--sizes", type=sizes_arg, default="1,10,100", help="corpus multiples")
    p.add_argument("--vectors", type=int, default=1_000_000, help="search-side set size (0: off)")
    p.add_argument("--noise", type=float, default=0.01, help="per-dimension noise of derived set")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of load per server")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients")
    p.add_argument("--rounds", type=int, default=2, help="passes over the gold questions")
    p.add_argument("--threads", type=int, default=1, help="serving-side threads (QA_THREADS)")
    p.add_argument("--build-threads", type=int, default=available_cores(), help="ingest threads")
    p.add_argument("--no-busy", action="store_true", help="skip the busy-core latency rows")
    p.add_argument("--no-serve", action="store_true", help="skip the req/s rows")
    p.add_argument("--seed", type=int, default=0, help="shuffle and noise seed")
    p.add_argument(
        "--source", type=Path, default=ROOT / "corpus", help="documents to copy (.txt files)"
    )
    p.add_argument("--workdir", type=Path, help="keep corpora and indexes here (default: temp)")
    p.add_argument("--json", type=Path, help="write the results as JSON here (after every step)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from qa.config import available_cores

    args = parser().parse_args(argv)
    if args.vectors < 0 or args.duration <= 0 or args.clients < 1 or args.rounds < 1:
        raise SystemExit("--vectors must be >= 0; --duration, --clients, --rounds positive")
    started = time.perf_counter()
    command = (
        shlex.join([Path(sys.executable).name, *sys.argv])
        if argv is None
        else shlex.join(["scripts/bench.py", *argv])
    )
    result: dict[str, Any] = {
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": command,
        "cores": available_cores(),
        "threads": args.threads,
        "build_threads": args.build_threads,
        "sizes": [],
        "serving": [],
        "serve_size": args.sizes[0],
        "notes": [],
    }
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="qa-bench-", dir=args.workdir) as tmp:
        work = Path(tmp)
        dump = work / "vectors"
        dump.mkdir()
        embedder_rss = result["embedder_rss"] = in_child(child_embedder_rss, args.threads)
        previous: dict[str, Any] | None = None
        for size in args.sizes:
            log(f"{size}x: corpus, ingest")
            make_corpus(work / f"corpus-{size}x", size, args.seed + size, args.source)
            index_dir = work / f"index-{size}x"
            row: dict[str, Any] = {"size": size}
            row |= in_child(child_ingest, work / f"corpus-{size}x", index_dir, args.build_threads)
            log(f"{size}x: {row['chunks']} chunks in {row['ingest_s']:.1f} s; queries")
            largest = size == args.sizes[-1]
            row |= in_child(
                child_queries,
                index_dir,
                args.threads,
                args.rounds,
                not args.no_busy,
                dump if largest and args.vectors else None,
            )
            row["server_per_chunk"] = (row["server_rss"] - embedder_rss) / row["chunks"]
            row["rss_growth_per_chunk"] = slope(previous, row, "peak_rss")
            row["server_growth_per_chunk"] = slope(previous, row, "server_rss")
            result["sizes"].append(row)
            save(args.json, result)
            previous = row
        if args.vectors:
            log(f"{args.vectors:,} derived vectors: build and search")
            result["vectors"] = in_child(
                child_vectors,
                dump,
                args.vectors,
                args.noise,
                args.seed,
                args.build_threads,
                args.threads,
                args.rounds,
            )
            save(args.json, result)
        if not args.no_serve:
            workers = [1, 2] if serve_supports_workers() else [1]
            if workers == [1]:
                result["notes"].append("`qa serve` has no `--workers` option yet: one row.")
            for count in workers:
                log(f"serving, workers={count}")
                index_dir = work / f"index-{args.sizes[0]}x"
                result["serving"].append(
                    serve_load(
                        index_dir,
                        count,
                        args.threads,
                        args.clients,
                        args.duration,
                        work / f"serve-{count}.log",
                    )
                )
                save(args.json, result)
    for row in result["serving"]:
        if row.get("failed"):
            result["notes"].append(f"`qa serve` workers={row['workers']}: {row['failed']}")
    result["wall_s"] = time.perf_counter() - started
    result["notes"] += notes(result)
    result["complete"] = True
    print(render(result))
    save(args.json, result)
    return 0


def save(path: Path | None, result: dict[str, Any]) -> None:
    """Write the results so far (``complete`` is set only at the end): a long run that is
    stopped keeps what it measured."""
    if path is not None:
        partial = path.with_name(path.name + ".tmp")
        text = json.dumps({"complete": False} | result, indent=2, ensure_ascii=False)
        partial.write_text(text + "\n", "utf-8")
        partial.replace(path)


def slope(previous: dict[str, Any] | None, row: dict[str, Any], key: str) -> float | None:
    """Growth of ``key`` per chunk from the ``previous`` size to this one (None for the first)."""
    if previous is None or row["chunks"] <= previous["chunks"]:
        return None
    grown: float = row[key] - previous[key]
    return grown / int(row["chunks"] - previous["chunks"])


def notes(result: dict[str, Any]) -> list[str]:
    lines = [
        "Ingest excludes loading and warming the model. Δ: growth per chunk against the row "
        "above. server RSS: a process holding the index after one query (the model alone: "
        f"{result['embedder_rss'] / MiB:.0f} MiB); server KiB/chunk: (server RSS − model) "
        "÷ chunks. "
        "Ratios: stage p50 ÷ raw p50, raw p50 ms in brackets (FAISS and bm25s: top "
        f"{RAW_K}). Samples per row: "
        + ", ".join(
            f"{r['size']}x {load} {m['samples']}"
            for r in result["sizes"]
            for load, m in r["loads"].items()
        )
        + "."
    ]
    if vec := result.get("vectors"):
        info = vec["info"]
        lines.append(
            f"Search side: {vec['vectors']:,} vectors derived from {vec['base_vectors']:,} real "
            f"chunk and sentence vectors (noise {vec['noise']} per dimension), built by "
            f"{vec['chooser']}, search params {json.dumps(info.get('search_params'))}; recall@10 "
            f"on {vec['recall_queries']} real question/sentence vectors against exact search: "
            f"{_f(vec['recall_questions'], 3)} on the {vec['question_queries']} questions, "
            f"{_f(vec['recall_sentences'], 3)} on the sentences (held out from the chooser's "
            f"{info.get('recall_queries')} probes, build-time estimate "
            f"{_f(info.get('recall_at_10'), 3)}); build peak RSS "
            f"{vec['peak_rss'] / MiB:,.0f} MiB."
        )
    return lines


def log(message: str) -> None:
    print(f"bench: {message}", file=sys.stderr, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
