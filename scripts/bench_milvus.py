"""What the Milvus store costs, for the README's sizing table ("Beyond one machine").

For each corpus size (1x = the bundled documents, Nx = ``scripts/bench.py``'s shuffled copies)
it builds a local index with the real model, starts a standalone milvus-lite server process
(``python -m milvus_lite server``: the API reaches it over gRPC as it would a Milvus
deployment), publishes the generation to it, and measures, each in a fresh process:

- what one chunk puts in Milvus: the bytes of its fields as sent (dense vector, BM25 sparse
  vector, text and citation metadata, its share of sentence vectors), and the server's data
  folder on disk per chunk (milvus-lite's own format: not what a Milvus cluster stores);
- what stays in the API process per chunk: RSS growth of loading the generation from Milvus
  against loading the local folder;
- per question: Milvus calls, and hybrid ``Retriever.search`` p50 against the local store
  (milvus-lite is a pure-Python emulator: its latency is not a Milvus cluster's);
- publishing throughput (chunks per second).

    .venv/bin/python scripts/bench_milvus.py [--sizes 1,10] [--questions 40] [--source corpus]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import child_ingest, make_corpus

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_CHILD = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import numpy as np
import qa.milvus
from qa.config import Settings
from qa.service import open_embedder, open_store, open_retriever, publish_generation

def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024

task, index_dir, uri, gold = sys.argv[2], Path(sys.argv[3]), sys.argv[4], sys.argv[5]
n = int(sys.argv[6])
local = Settings(index_dir=index_dir, threads=1)
milvus = local.with_(backend="milvus", milvus_uri=uri, milvus_timeout=60.0)
if task == "publish":
    started = time.perf_counter()
    publish_generation(milvus)
    print(json.dumps({"publish_s": time.perf_counter() - started}))
    raise SystemExit
embedder = open_embedder(local)
embedder.encode_queries(["warm up"])
settings = local if task == "local" else milvus
before = rss()
store = open_store(settings, embedder)
after = rss()
calls = 0
real = qa.milvus._call
def counted(target, action):
    global calls
    calls += 1
    return real(target, action)
qa.milvus._call = counted
retriever = open_retriever(settings, embedder)
questions = [json.loads(line)["question"] for line in open(gold, encoding="utf-8")][:n]
retriever.search(questions[0])
calls, times = 0, []
for question in questions:
    tick = time.perf_counter()
    retriever.search(question, mode="hybrid", top_k=5)
    times.append((time.perf_counter() - tick) * 1000)
print(json.dumps({"chunks": len(store.chunks), "load_rss": after - before,
                  "p50_ms": float(np.median(times)), "calls": calls / len(questions)}))
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _child(task: str, index_dir: Path, uri: str, questions: int) -> dict[str, Any]:
    gold = str(ROOT / "eval" / "gold.jsonl")
    command = [sys.executable, "-c", _CHILD, str(ROOT), task, str(index_dir), uri, gold]
    done = subprocess.run(
        [*command, str(questions)], capture_output=True, text=True, cwd=ROOT, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def payload(index_dir: Path) -> dict[str, float]:
    """Bytes per chunk of the fields sent to Milvus, from the local generation."""
    import numpy as np

    from qa.index import current_generation, iter_jsonl
    from qa.lexical import LexicalIndex

    generation = current_generation(index_dir)
    assert generation is not None
    manifest = json.loads((generation / "manifest.json").read_text("utf-8"))
    dimension = int(manifest["dimension"])
    rows = list(iter_jsonl(generation / "chunks.jsonl"))
    sentences = np.load(generation / "sentences.npy", mmap_mode="r")
    _, _, ptr = LexicalIndex.load(generation / "lexical").postings_by_row()
    n = len(rows)
    text = sum(len(r["text"].encode("utf-8")) for r in rows)
    meta = sum(len(json.dumps({**r, "text": ""}, ensure_ascii=False).encode()) for r in rows)
    documents = (generation / "documents.jsonl").stat().st_size
    return {
        "chunks": n,
        "dense": 4 * dimension,
        "sparse": 8 * int(ptr[-1]) / n,
        "text_meta": (text + meta) / n + 32,  # + row, hubness, sentence run
        "sentences": (4 * dimension + 8) * len(sentences) / n,
        "documents": documents / n,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,10", help="corpus multiples (default 1,10)")
    parser.add_argument("--questions", type=int, default=40, help="gold questions timed")
    parser.add_argument("--source", type=Path, default=ROOT / "corpus", help="documents to copy")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    work = Path(tempfile.mkdtemp(prefix="qa-bench-milvus-"))
    rows = []
    try:
        for size in sizes:
            corpus = work / f"corpus-{size}x"
            if size == 1:
                corpus.mkdir()
                for source in sorted(args.source.glob("*.txt")):
                    shutil.copy2(source, corpus / source.name)
            else:
                make_corpus(corpus, size, 7 + size, args.source)
            index_dir = work / f"index-{size}x"
            child_ingest(corpus, index_dir, 2)
            port = _free_port()
            data = work / f"milvus-{size}x"
            command = [sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data)]
            server = subprocess.Popen(
                [*command, "--host", "127.0.0.1", "--port", str(port)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            uri = f"http://127.0.0.1:{port}"
            try:
                time.sleep(3)
                published = _child("publish", index_dir, uri, 0)
                local = _child("local", index_dir, uri, args.questions)
                milvus = _child("milvus", index_dir, uri, args.questions)
            finally:
                server.terminate()
                server.wait(timeout=30)
            disk = sum(p.stat().st_size for p in data.rglob("*") if p.is_file())
            sent = payload(index_dir)
            n = sent["chunks"]
            rows.append(
                {
                    "size": size,
                    "payload": sent,
                    "disk_per_chunk": disk / n,
                    "publish_chunks_per_s": n / published["publish_s"],
                    "local": local,
                    "milvus": milvus,
                }
            )
            print(json.dumps(rows[-1]), file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(render(rows))
    return 0


def render(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| corpus | chunks | sent to Milvus B/chunk (dense + sparse + text/meta + sentences)"
        " | milvus-lite disk B/chunk | API RSS B/chunk local / Milvus | Milvus calls per question"
        " | hybrid p50 ms local / milvus-lite | publish chunks/s |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for row in rows:
        p = row["payload"]
        total = p["dense"] + p["sparse"] + p["text_meta"] + p["sentences"]
        parts = (
            f"{p['dense']:.0f} + {p['sparse']:.0f} + {p['text_meta']:.0f} + {p['sentences']:.0f}"
        )
        n = p["chunks"]
        lines.append(
            f"| {row['size']}x | {n:,} | {total:,.0f} ({parts}) | {row['disk_per_chunk']:,.0f} | "
            f"{row['local']['load_rss'] / n:,.0f} / {row['milvus']['load_rss'] / n:,.0f} | "
            f"{row['milvus']['calls']:.1f} | "
            f"{row['local']['p50_ms']:.1f} / {row['milvus']['p50_ms']:.1f} | "
            f"{row['publish_chunks_per_s']:.0f} |"
        )
    return "\n".join(lines) + "\n(one run per size; p50 over the timed questions)"


if __name__ == "__main__":
    raise SystemExit(main())
