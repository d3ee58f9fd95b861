"""Evaluate on a BEIR-format dataset: corpus.jsonl, queries.jsonl and qrels/<split>.tsv.

Each corpus document becomes one Markdown file in a working directory (by default in the
evaluation cache, ``eval.squad.cache_root``, never in the dataset's folder) (``# title`` heading,
then the text as one paragraph), which is ingested with the configured embedder into an index
of its own. The title is a level-1 heading, so it becomes the document title and opens the
first passage (headings start the passage they title): it is searchable both ways. The text is
whitespace-flattened into one paragraph so that line-start heuristics of the readers (headings,
footnote definitions, bullets) can only ever see its first characters.

File names are the BEIR ids when these are safe (``[A-Za-z0-9][A-Za-z0-9_-]*``, up to 100
characters, unique ignoring case); any other id gets a sanitised name plus a hash of the id.
``ids.json`` in the working directory maps every file's doc_id back to the exact BEIR ``_id``.

Scoring is at document level: a document's score is its best passage's (the first of its
passages in the service's ranking), so a document with several matching passages counts once.
``recall@k`` is true recall here (ranx ``recall@k``: share of the relevant documents found),
``hit_rate@k`` the share of queries with any relevant document in the top k. The run holds at
most ``MAX_TOP_K`` passages per query, so ``map@100`` is computed over at most that many
documents.
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.metrics import summarize
from eval.results import BeirSource, Report
from eval.runs import ModeRun, Query, run_mode, snippet
from eval.squad import cache_root
from qa.build import ProgressCallback
from qa.config import Settings
from qa.embed import Embedder
from qa.errors import ConfigError
from qa.retrieve import MAX_QUESTION_CHARS, MAX_TOP_K, RetrievalSettings
from qa.scripts import all_letters_latin, scripts_in
from qa.service import ingest, open_embedder, open_retriever
from qa.types import SearchMode

METRICS = {
    name: name
    for name in ("ndcg@10", "recall@1", "recall@5", "recall@10", "hit_rate@10", "mrr@10", "map@100")
}
COMPARE_METRICS = ("ndcg@10", "recall@10")
MAPPING_FILE = "ids.json"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")


@dataclass(frozen=True)
class BeirDataset:
    corpus: dict[str, tuple[str, str]]  # _id -> (title, text)
    queries: dict[str, str]  # _id -> text
    qrels: dict[str, dict[str, int]]  # query-id -> {corpus-id: score > 0}
    split: str


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise ConfigError(f"BEIR dataset file missing: {path}")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    row = json.loads(line)
                    row["_id"] = str(row["_id"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise ConfigError(f"{path}:{number}: not a BEIR record: {exc}") from None
                rows.append(row)
    return rows


def load_beir(root: Path, split: str = "test") -> BeirDataset:
    corpus = {
        r["_id"]: (str(r.get("title") or ""), str(r.get("text") or ""))
        for r in _read_jsonl(root / "corpus.jsonl")
    }
    queries = {r["_id"]: str(r.get("text") or "") for r in _read_jsonl(root / "queries.jsonl")}
    qrels_path = root / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        raise ConfigError(f"BEIR dataset file missing: {qrels_path}")
    qrels: dict[str, dict[str, int]] = {}
    with open(qrels_path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            fields = line.rstrip("\n").split("\t")
            if not line.strip() or (number == 1 and fields[0] == "query-id"):
                continue
            try:
                qid, docid, score = fields[0], fields[1], int(float(fields[2]))
            except (IndexError, ValueError):
                raise ConfigError(
                    f"{qrels_path}:{number}: not 'query-id corpus-id score'"
                ) from None
            if score > 0:  # 0 is a judged non-relevant document
                qrels.setdefault(qid, {})[docid] = score
    return BeirDataset(corpus, queries, qrels, split)


def file_stems(ids: Sequence[str]) -> dict[str, str]:
    """A safe, unique file stem (= index doc_id) for every BEIR id."""
    stems: dict[str, str] = {}
    taken: set[str] = set()
    for beir_id in sorted(ids, key=lambda i: (not _SAFE_ID.fullmatch(i), i)):
        stem = beir_id
        if not _SAFE_ID.fullmatch(beir_id) or stem.casefold() in taken:
            cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", unicodedata.normalize("NFKC", beir_id))
            digest = hashlib.sha256(beir_id.encode()).hexdigest()[:12]
            stem = f"{cleaned.strip('_-')[:60] or 'doc'}~{digest}"
        stems[beir_id] = stem
        taken.add(stem.casefold())
    return stems


def document_markdown(title: str, text: str) -> str:
    title, body = " ".join(title.split()), " ".join(text.split())
    parts = ([f"# {title}"] if title else []) + ([body] if body else [])
    return "\n\n".join(parts) + "\n" if parts else ""


def materialize(dataset: BeirDataset, workdir: Path) -> dict[str, str]:
    """Write the corpus as Markdown files; returns (and saves) ``{doc_id: BEIR _id}``.

    Files are rewritten only when their content changed (so a re-run re-embeds nothing) and
    files an earlier run wrote for documents no longer in the corpus are removed; a non-empty
    directory without ``ids.json`` is refused. Empty documents are skipped.
    """
    listing = workdir / MAPPING_FILE
    if workdir.is_dir() and any(workdir.iterdir()) and not listing.is_file():
        raise ConfigError(
            f"{workdir} is not empty and holds no {MAPPING_FILE}: not a BEIR working directory"
        )
    previous = json.loads(listing.read_text("utf-8")) if listing.is_file() else {}
    workdir.mkdir(parents=True, exist_ok=True)
    stems = file_stems(list(dataset.corpus))
    mapping: dict[str, str] = {}
    for beir_id, (title, text) in dataset.corpus.items():
        content = document_markdown(title, text)
        if not content:
            continue
        path = workdir / f"{stems[beir_id]}.md"
        if not path.is_file() or path.read_text("utf-8") != content:
            path.write_text(content, "utf-8")
        mapping[stems[beir_id]] = beir_id
    for stem in set(previous) - set(mapping):  # only files an earlier run wrote
        (workdir / f"{stem}.md").unlink(missing_ok=True)
    listing.write_text(json.dumps(mapping, ensure_ascii=False, indent=0, sort_keys=True), "utf-8")
    return mapping


def language_label(text: str) -> str:
    """A language label guessed from the script (``qa.scripts``; BEIR has no language field):
    kana is Japanese, then Hangul Korean, then Han Chinese; "latin" when every letter is a
    Latin one."""
    scripts = scripts_in(text)
    for script, label in (("kana", "ja"), ("hangul", "ko"), ("han", "zh")):
        if script in scripts:
            return label
    return "latin" if all_letters_latin(text) else "other"


def evaluate_beir(
    root: Path,
    settings: Settings,
    modes: Sequence[SearchMode],
    *,
    split: str = "test",
    index_dir: Path | None = None,
    workdir: Path | None = None,
    embedder: Embedder | None = None,
    stat_test: str | None = "student",
    progress: ProgressCallback | None = None,
    retrieval: RetrievalSettings | None = None,
    cache: Path | None = None,
) -> Report:
    """Ingest the dataset into its own index and score every judged query at document level."""
    dataset = load_beir(root, split)
    where = str(root.resolve())
    folder = (
        cache_root()
        / "beir"
        / f"{root.resolve().name}-{hashlib.sha256(where.encode()).hexdigest()[:12]}"
    )
    workdir = workdir or folder / "corpus"
    index_dir = index_dir or folder / "index"
    if workdir.resolve() == index_dir.resolve():
        raise ConfigError("the BEIR working directory and index directory must differ")
    if index_dir.resolve() == settings.index_dir.resolve():
        raise ConfigError(f"{index_dir} is the project's index; give BEIR its own --index-out")
    mapping = materialize(dataset, workdir)
    own = settings.with_(corpus_dir=workdir, index_dir=index_dir)
    embedder = embedder or open_embedder(own)
    outcome = ingest(own, [workdir], embedder=embedder, prune=True, progress=progress)
    retriever = open_retriever(own, embedder, retrieval)
    indexed = {mapping[c.doc_id] for c in retriever.index.chunks if c.doc_id in mapping}

    judged = [q for q in sorted(dataset.qrels) if q in dataset.queries]
    queries = []
    for qid in judged:
        text = dataset.queries[qid]
        expected = tuple(
            f"{d}: {snippet(' '.join(dataset.corpus.get(d, ('(not in the corpus)', ''))), 100)}"
            for d in sorted(dataset.qrels[qid])
        )
        queries.append(
            Query(qid, text[:MAX_QUESTION_CHARS], language_label(text), split, True, expected)
        )
    runs: dict[str, ModeRun] = {
        mode: run_mode(
            retriever,
            queries,
            mode,
            top_k=MAX_TOP_K,
            unit=lambda _, h: mapping.get(h.citation.doc_id, h.citation.doc_id),
        )
        for mode in dict.fromkeys(modes)
    }
    qrels = {q: dataset.qrels[q] for q in judged}
    summary = summarize(
        kind="beir",
        queries=queries,
        qrels=qrels,
        runs=runs,
        metrics=METRICS,
        curve_metric="recall",
        compare_metrics=COMPARE_METRICS,
        scopes=[split],
        stat_test=stat_test,
    )
    source = BeirSource(
        beir=str(root),
        index=str(index_dir),
        workdir=str(workdir),
        documents=len(dataset.corpus),
        documents_indexed=len(indexed),
        documents_not_indexed=tuple(sorted(set(dataset.corpus) - indexed)[:100]),
        ingest_errors=tuple(str(e) for e in outcome.ingest.errors),
        queries_total=len(dataset.queries),
        queries_without_judgements=len(set(dataset.queries) - set(dataset.qrels)),
        judged_queries_missing=tuple(sorted(set(dataset.qrels) - set(dataset.queries))[:100]),
        queries_truncated=sum(len(dataset.queries[q]) > MAX_QUESTION_CHARS for q in judged),
    )
    return Report(
        source=source,
        split=split,
        embed_model=embedder.model_id,
        chunks=len(retriever.index.chunks),
        summary=summary,
        runs={mode: run.run for mode, run in runs.items()},
        qrels=qrels,
    )
