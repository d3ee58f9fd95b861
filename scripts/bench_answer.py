#!/usr/bin/env python
"""Latency of ``POST /v1/answer`` against ``POST /v1/search`` in one run, one client.

Starts ``qa serve --no-ingest`` on a free 127.0.0.1 port over ``--index-dir`` (or attaches to
``--url``), warms both routes up, then asks every gold question ``--rounds`` times, the search
and the answer request back to back (in alternating order), hybrid mode, top 5. Prints the
median and p95 of each route (client-side wall time and the server's own ``took_ms``) and the
ratio of the medians. Exits 1 if any request failed.

    .venv/bin/python scripts/bench_answer.py --index-dir /tmp/bench-index
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loadtest import DEFAULT_GOLD, load_questions, percentile, serve

ROUTES = ("/v1/search", "/v1/answer")


def measure(url: str, questions: Sequence[str], rounds: int) -> dict[str, Any]:
    wall: dict[str, list[float]] = {route: [] for route in ROUTES}
    took: dict[str, list[float]] = {route: [] for route in ROUTES}
    failures = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for route in ROUTES:  # warm-up: models, dictionary tables, the language identifier
            client.post(route, json={"question": "warm up", "top_k": 5})
        for i in range(rounds):
            for j, question in enumerate(questions):
                order = ROUTES if (i + j) % 2 == 0 else ROUTES[::-1]
                for route in order:
                    started = time.perf_counter()
                    response = client.post(route, json={"question": question, "top_k": 5})
                    elapsed = (time.perf_counter() - started) * 1000
                    if response.status_code != 200:
                        failures += 1
                        continue
                    wall[route].append(elapsed)
                    took[route].append(float(response.json()["took_ms"]))
    summary: dict[str, Any] = {"requests": sum(len(v) for v in wall.values()), "failures": failures}
    for route in ROUTES:
        summary[route] = {
            "wall_p50": statistics.median(wall[route]),
            "wall_p95": percentile(wall[route], 95),
            "took_p50": statistics.median(took[route]),
            "took_p95": percentile(took[route], 95),
        }
    search, answer = summary["/v1/search"], summary["/v1/answer"]
    summary["ratio_wall_p50"] = answer["wall_p50"] / search["wall_p50"]
    summary["ratio_took_p50"] = answer["took_p50"] / search["took_p50"]
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    lines = [
        f"requests {summary['requests']}, failures {summary['failures']}",
        f"{'route':12} {'wall p50':>9} {'wall p95':>9} {'took p50':>9} {'took p95':>9}",
    ]
    for route in ROUTES:
        s = summary[route]
        lines.append(
            f"{route:12} {s['wall_p50']:9.2f} {s['wall_p95']:9.2f} "
            f"{s['took_p50']:9.2f} {s['took_p95']:9.2f}"
        )
    lines.append(
        f"answer / search median: {summary['ratio_wall_p50']:.2f}x wall, "
        f"{summary['ratio_took_p50']:.2f}x took_ms"
    )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="attach to this server instead of starting one")
    parser.add_argument("--index-dir", type=Path, default=Path("index"), help="index to serve")
    parser.add_argument("--threads", type=int, default=1, help="QA_THREADS of the server (1)")
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD, help="questions (JSONL)")
    parser.add_argument("--rounds", type=int, default=1, help="passes over the questions (1)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    questions = load_questions(args.gold)
    if args.url:
        summary = measure(args.url, questions, args.rounds)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "server.log"
            with serve(args.index_dir, threads=args.threads, log_path=log) as url:
                summary = measure(url, questions, args.rounds)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 1 if summary["failures"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
