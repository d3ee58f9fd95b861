#!/usr/bin/env python
"""Ingest throughput of Ray local mode (2 workers) against the single-process build.

Copies the bundled documents (``--source``, default ``corpus/``) into a temporary folder at 1x
and builds scripts/bench.py's synthetic 10x corpus from them, then ingests each corpus with the
real model ``--runs`` times each way, every run in a fresh child process and a fresh index:

- single: ``qa.service.ingest`` with ``QA_INGEST_THREADS`` workers (as ``qa ingest``);
- ray: the same with ``qa.distributed`` (``qa ingest --ray``): a local Ray of that many CPUs,
  files parsed, chunked and embedded by Ray Data. Its wall time includes starting Ray and the
  actors' model loads; ``ray ingest s`` excludes starting Ray.

Prints a markdown table of medians (wall s, chunks/s). The point on two cores is correctness and
overhead, not speed-up.

    .venv/bin/python scripts/bench_ray.py
    .venv/bin/python scripts/bench_ray.py --sizes 1,10 --runs 2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import make_corpus

ROOT = Path(__file__).resolve().parents[1]
BUNDLED = (
    "indsr-2025-ch6-japan-supply-chain-security",
    "nownews-2026-01-14-japan-g7-democratic-rare-earth-chain",
)

_CHILD = """
import json, sys, time
from pathlib import Path
from qa.config import Settings
from qa.service import ingest, open_embedder

corpus, index_dir, threads, mode = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
settings = Settings(corpus_dir=Path(corpus), index_dir=Path(index_dir), threads=1,
                    ingest_threads=threads)
embedder = open_embedder(settings, threads=threads)
embedder.encode_passages(["warm up", "預熱"])
started = time.perf_counter()
if mode == "ray":
    from qa.distributed import ray_ingest
    with ray_ingest(None, workers=threads) as cluster:
        up = time.perf_counter()
        outcome = ingest(settings, embedder=embedder, strict=True, read=cluster.read,
                         embed=cluster.embed)
        ended = time.perf_counter()
else:
    up = started
    outcome = ingest(settings, embedder=embedder, strict=True)
    ended = time.perf_counter()
print(json.dumps({"chunks": outcome.build.chunks_total, "documents": len(outcome.plan.documents),
                  "wall_s": time.perf_counter() - started, "ingest_s": ended - up}))
"""


def make_corpora(work: Path, source: Path, sizes: Sequence[int], seed: int) -> dict[int, Path]:
    """1x: the bundled documents copied as they are; Nx: scripts/bench.py's shuffled copies."""
    corpora: dict[int, Path] = {}
    plain = work / "corpus-1x"
    plain.mkdir(parents=True)
    for doc_id in BUNDLED:
        shutil.copy2(source / f"{doc_id}.txt", plain / f"{doc_id}.txt")
    for size in sizes:
        if size == 1:
            corpora[size] = plain
        else:
            corpora[size] = work / f"corpus-{size}x"
            make_corpus(corpora[size], size, seed + size, plain)
    return corpora


def run_child(corpus: Path, index_dir: Path, threads: int, mode: str) -> dict[str, Any]:
    command = [sys.executable, "-c", _CHILD, str(corpus), str(index_dir), str(threads), mode]
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{mode} ingest of {corpus} failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1,10", help="corpus multiples (default 1,10)")
    parser.add_argument("--runs", type=int, default=2, help="runs per mode and size (median)")
    parser.add_argument("--threads", type=int, default=2, help="workers each way (default 2)")
    parser.add_argument("--seed", type=int, default=17)
    parser.add_argument("--source", type=Path, default=ROOT / "corpus", help="bundled documents")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="qa-bench-ray-") as tmp:
        work = Path(tmp)
        corpora = make_corpora(work, args.source, sizes, args.seed)
        for size in sizes:
            for mode in ("single", "ray"):
                runs = []
                for run in range(args.runs):
                    index_dir = work / f"index-{size}x-{mode}-{run}"
                    started = time.perf_counter()
                    runs.append(run_child(corpora[size], index_dir, args.threads, mode))
                    shutil.rmtree(index_dir)
                    print(
                        f"{size}x {mode} run {run + 1}: {runs[-1]['wall_s']:.1f} s "
                        f"(child {time.perf_counter() - started:.1f} s)",
                        file=sys.stderr,
                    )
                wall = statistics.median(r["wall_s"] for r in runs)
                ingest_s = statistics.median(r["ingest_s"] for r in runs)
                chunks = runs[0]["chunks"]
                rows.append((size, mode, runs[0]["documents"], chunks, wall, ingest_s))
    print(
        f"| corpus | mode ({args.threads} workers) | docs | chunks | wall s | chunks/s "
        f"| ingest s (Ray started) | chunks/s |"
    )
    print("|---|---|--:|--:|--:|--:|--:|--:|")
    for size, mode, docs, chunks, wall, ingest_s in rows:
        print(
            f"| {size}x | {mode} | {docs} | {chunks:,} | {wall:.1f} | {chunks / wall:.1f} "
            f"| {ingest_s:.1f} | {chunks / ingest_s:.1f} |"
        )
    print(
        f"\nmedians of {args.runs} runs; every run a fresh child process and index; the model "
        "is loaded and warmed before the clock starts (Ray's actors load their own inside it)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
