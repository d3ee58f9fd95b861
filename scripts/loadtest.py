#!/usr/bin/env python
"""Bounded load test of ``POST /v1/search`` on 127.0.0.1.

Starts ``qa serve --no-ingest`` on a free local port (or attaches to ``--url``), warms each mode
up with one request, then runs ``--clients`` concurrent clients (asyncio + one httpx connection
pool) for ``--duration`` seconds. Each client picks a question from the gold set and a mode
(hybrid / dense / lexical) at random (seeded), and sends the next request as soon as the previous
one has been answered. No new request starts after the deadline; requests in flight finish.

Prints total requests, errors (non-200 or exception), throughput, p50/p95/p99 latency overall and
per mode, and the server's thread cap (QA_THREADS). Exits 1 if any request errored, 2 if the
server could not be started.

    .venv/bin/python scripts/loadtest.py --index-dir /tmp/lt-index
    .venv/bin/python scripts/loadtest.py --url http://127.0.0.1:8000 --clients 4 --duration 5 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

ROOT = Path(__file__).resolve().parents[1]
MODES = ("hybrid", "dense", "lexical")
DEFAULT_GOLD = ROOT / "eval" / "gold.jsonl"


@dataclass
class Sample:
    mode: str
    ms: float
    ok: bool
    error: str | None = None


@dataclass
class LoadReport:
    clients: int
    duration_s: float  # requested
    elapsed_s: float  # first request start to last response, all clients
    threads: int | None  # QA_THREADS of the server, when known
    samples: list[Sample] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return len(self.samples)

    @property
    def errors(self) -> int:
        return sum(not s.ok for s in self.samples)

    def summary(self) -> dict[str, Any]:
        per_mode = {
            mode: _stats([s for s in self.samples if s.mode == mode], self.elapsed_s)
            for mode in MODES
        }
        error_kinds = Counter(s.error for s in self.samples if not s.ok)
        return {
            "clients": self.clients,
            "duration_s": self.duration_s,
            "elapsed_s": round(self.elapsed_s, 3),
            "server_threads": self.threads,
            **_stats(self.samples, self.elapsed_s),
            "error_kinds": dict(error_kinds.most_common()),
            "modes": per_mode,
        }


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of ``values``; NaN when there are none."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100), at least 1
    return ordered[int(rank) - 1]


def _stats(samples: Sequence[Sample], elapsed_s: float) -> dict[str, Any]:
    latencies = [s.ms for s in samples]

    def ms(value: float) -> float | None:  # None (JSON null) when there were no requests
        return round(value, 2) if latencies else None

    return {
        "requests": len(samples),
        "errors": sum(not s.ok for s in samples),
        "rps": round(len(samples) / elapsed_s, 2) if elapsed_s > 0 else 0.0,
        "p50_ms": ms(percentile(latencies, 50)),
        "p95_ms": ms(percentile(latencies, 95)),
        "p99_ms": ms(percentile(latencies, 99)),
        "max_ms": ms(max(latencies, default=0.0)),
    }


def load_questions(gold: Path = DEFAULT_GOLD) -> list[str]:
    with open(gold, encoding="utf-8") as handle:
        questions = [json.loads(line)["question"] for line in handle if line.strip()]
    if not questions:
        raise SystemExit(f"no questions in {gold}")
    return questions


async def _one(client: httpx.AsyncClient, question: str, mode: str) -> Sample:
    start = time.perf_counter()
    try:
        response = await client.post(
            "/v1/search", json={"question": question, "top_k": 5, "mode": mode}
        )
        ms = (time.perf_counter() - start) * 1000
        if response.status_code != 200:
            return Sample(mode, ms, False, f"HTTP {response.status_code}")
        if not isinstance(response.json().get("hits"), list):
            return Sample(mode, ms, False, "no hits list")
        return Sample(mode, ms, True)
    except (httpx.HTTPError, ValueError) as exc:
        ms = (time.perf_counter() - start) * 1000
        return Sample(mode, ms, False, type(exc).__name__)


async def _run(
    base_url: str,
    *,
    clients: int,
    duration: float,
    questions: Sequence[str],
    modes: Sequence[str],
    seed: int,
    timeout: float,
) -> tuple[list[Sample], float]:
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, limits=limits) as client:
        for mode in modes:  # warm-up, not counted: first calls load lazily initialised state
            await _one(client, questions[0], mode)
        samples: list[Sample] = []
        started = time.perf_counter()
        deadline = started + duration

        async def worker(index: int) -> None:
            rng = random.Random(seed * 1000 + index)
            while time.perf_counter() < deadline:
                samples.append(await _one(client, rng.choice(questions), rng.choice(modes)))

        await asyncio.gather(*(worker(i) for i in range(clients)))
        return samples, time.perf_counter() - started


def run_load(
    base_url: str,
    *,
    clients: int = 16,
    duration: float = 30.0,
    questions: Sequence[str] | None = None,
    modes: Sequence[str] = MODES,
    seed: int = 0,
    timeout: float = 30.0,
    threads: int | None = None,
) -> LoadReport:
    """Run the load test against a server that is already up at ``base_url``."""
    if clients < 1 or duration <= 0:
        raise ValueError("clients must be >= 1 and duration > 0")
    questions = list(questions) if questions is not None else load_questions()
    samples, elapsed = asyncio.run(
        _run(
            base_url,
            clients=clients,
            duration=duration,
            questions=questions,
            modes=modes,
            seed=seed,
            timeout=timeout,
        )
    )
    return LoadReport(clients, duration, elapsed, threads, samples)


# --- starting a server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerStartError(RuntimeError):
    pass


def wait_ready(base_url: str, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """Poll ``/readyz`` until it answers 200; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while True:
        if process is not None and process.poll() is not None:
            raise ServerStartError(f"server exited with code {process.returncode}")
        try:
            response = httpx.get(f"{base_url}/readyz", timeout=2)
            if response.status_code == 200:
                return
            last = f"{response.status_code} {response.text[:300]}"
        except httpx.TransportError as exc:
            last = type(exc).__name__
        if time.monotonic() > deadline:
            raise ServerStartError(f"not ready after {timeout:.0f}s; last /readyz: {last}")
        time.sleep(0.2)


def wait_workers(base_url: str, workers: int, timeout: float) -> None:
    """Poll ``/v1/index`` on fresh connections until ``workers`` distinct processes have answered
    200 (``X-Worker-Pid``), so no worker is still loading when the load starts."""
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while len(seen) < workers:
        if time.monotonic() > deadline:
            raise ServerStartError(f"{len(seen)} of {workers} workers ready after {timeout:.0f}s")
        with contextlib.suppress(httpx.TransportError):
            response = httpx.get(f"{base_url}/v1/index", timeout=2)
            if response.status_code == 200 and "x-worker-pid" in response.headers:
                seen.add(response.headers["x-worker-pid"])
        time.sleep(0.05)


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextlib.contextmanager
def serve(
    index_dir: Path,
    *,
    threads: int,
    log_path: Path,
    workers: int = 1,
    ready_timeout: float = 60.0,
) -> Iterator[str]:
    """``qa serve --no-ingest --workers N`` on a free 127.0.0.1 port; yields its base URL, always
    stops it. With several workers, waits until each one answers."""
    port = free_port()
    env = {
        **os.environ,
        "QA_INDEX_DIR": str(index_dir),
        "QA_THREADS": str(threads),
        "QA_RELOAD_INTERVAL": "0",
    }
    command = [sys.executable, "-m", "cli", "serve", "--no-ingest"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        base_url = f"http://127.0.0.1:{port}"
        wait_ready(base_url, process, ready_timeout)
        wait_workers(base_url, workers, ready_timeout)
        yield base_url
    finally:
        stop(process)


# --- command line -----------------------------------------------------------------------------


def format_report(summary: dict[str, Any], url: str) -> str:
    threads = summary["server_threads"]
    lines = [
        f"server      {url}  (QA_THREADS={threads if threads is not None else 'unknown'}, "
        f"workers {summary.get('server_workers') or 'unknown'})",
        f"load        {summary['clients']} clients for {summary['duration_s']:g}s "
        f"(elapsed {summary['elapsed_s']:.2f}s)",
        f"requests    {summary['requests']}",
        f"errors      {summary['errors']}"
        + (f"  {summary['error_kinds']}" if summary["error_kinds"] else ""),
        f"throughput  {summary['rps']:.1f} req/s",
        "",
        f"{'mode':8} {'requests':>8} {'errors':>6} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}",
    ]
    rows = [("all", summary), *summary["modes"].items()]
    for name, s in rows:
        cells = [s[key] for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms")]
        lines.append(
            f"{name:8} {s['requests']:8d} {s['errors']:6d} {s['rps']:8.1f} "
            + " ".join("       -" if v is None else f"{v:8.2f}" for v in cells)
        )
    return "\n".join(lines)


def _host_is_local(url: str) -> bool:
    return urlsplit(url).hostname in {"127.0.0.1", "localhost", "::1"}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of load (30)")
    parser.add_argument("--url", help="attach to this server instead of starting one")
    parser.add_argument(
        "--index-dir",
        type=Path,
        default=Path(os.environ.get("QA_INDEX_DIR", ROOT / "index")),
        help="index for the server this script starts (QA_INDEX_DIR or ./index)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        help="QA_THREADS for the started server (default: QA_THREADS or 1, the server's); "
        "with --url, only reported",
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="server processes for the started server (1)"
    )
    parser.add_argument("--gold", type=Path, default=DEFAULT_GOLD, help="questions (JSONL)")
    parser.add_argument("--seed", type=int, default=0, help="question/mode choice seed")
    parser.add_argument("--timeout", type=float, default=30.0, help="per-request timeout (s)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if args.clients < 1 or args.duration <= 0:
        parser.error("--clients must be >= 1 and --duration > 0")
    questions = load_questions(args.gold)

    def run(url: str, threads: int | None) -> dict[str, Any]:
        report = run_load(
            url,
            clients=args.clients,
            duration=args.duration,
            questions=questions,
            seed=args.seed,
            timeout=args.timeout,
            threads=threads,
        )
        return {
            "url": url,
            "server_workers": None if args.url else args.workers,
            **report.summary(),
        }

    if args.url:
        if not _host_is_local(args.url):
            parser.error("--url must point at 127.0.0.1 / localhost")
        url = args.url.rstrip("/")
        try:
            wait_ready(url, None, 10)
        except ServerStartError as exc:
            print(f"error: {url}: {exc}", file=sys.stderr)
            return 2
        summary = run(url, args.threads)
    else:
        threads = args.threads or int(os.environ.get("QA_THREADS") or 1)
        if not (args.index_dir / "CURRENT").is_file():
            print(
                f"error: no index in {args.index_dir} (build one with "
                f"`QA_INDEX_DIR={args.index_dir} qa ingest`)",
                file=sys.stderr,
            )
            return 2
        with tempfile.TemporaryDirectory(prefix="qa-loadtest-") as tmp:
            log_path = Path(tmp) / "server.log"
            try:
                with serve(
                    args.index_dir, threads=threads, log_path=log_path, workers=args.workers
                ) as url:
                    summary = run(url, threads)
            except ServerStartError as exc:
                log = log_path.read_text(errors="replace") if log_path.exists() else ""
                print(f"error: {exc}\n{log[-4000:]}", file=sys.stderr)
                return 2
    print(json.dumps(summary, indent=2) if args.json else format_report(summary, summary["url"]))
    return 1 if summary["errors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
