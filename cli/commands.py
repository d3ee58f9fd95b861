"""``qa ingest | search | serve | mcp | eval``: the command line over ``qa.service``."""

# A shell beside ``api`` and ``eval``, not in the library: ``qa`` never imports its shells.

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from contextlib import AbstractContextManager, closing, nullcontext
from pathlib import Path
from typing import Any, ClassVar

from eval.squad import CONVERSIONS, SUITE
from qa.config import MAX_WORKERS, Settings
from qa.errors import ConfigError, QAError
from qa.retrieve import MAX_TOP_K, RetrievalSettings, retrieval_settings
from qa.serialize import search_result_json
from qa.service import IngestOutcome, IngestPlan, ingest, open_retriever
from qa.types import SEARCH_MODES


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        if getattr(args, "index", None):
            settings = settings.with_(index_dir=Path(args.index))
        result: int = args.run(args, settings)
        return result
    except QAError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="qa", description=__doc__)
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    p = commands.add_parser(
        "ingest",
        help="add or update documents in the index (never removes others without --prune)",
    )
    p.add_argument("paths", nargs="*", type=Path, help="files or folders (default: QA_CORPUS_DIR)")
    p.add_argument(
        "--prune",
        action="store_true",
        help="also remove indexed documents that are not among PATHS (mirror them exactly)",
    )
    p.add_argument("--index", help="index directory (default: QA_INDEX_DIR or ./index)")
    p.add_argument("--strict", action="store_true", help="fail on the first unreadable file")
    p.add_argument("--rebuild", action="store_true", help="re-embed everything")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="parse, chunk and embed with Ray Data: a local Ray of QA_INGEST_THREADS workers, "
        "or the cluster at ADDRESS (auto, host:6379, ray://host:10001); put it after PATHS",
    )
    p.set_defaults(run=_ingest)

    p = commands.add_parser("search", help="ask a question")
    p.add_argument("question")
    p.add_argument("-k", "--top-k", type=int, default=5, help=f"passages, 1..{MAX_TOP_K}")
    p.add_argument("--mode", choices=SEARCH_MODES, default="hybrid")
    p.add_argument("--json", action="store_true", help="print the API's JSON")
    p.add_argument("--doc-id", action="append", dest="doc_ids", help="only this document (repeat)")
    p.add_argument(
        "--section", help="only passages whose section path, or a heading in it, starts with this"
    )
    p.add_argument("--context", type=int, default=0, help="sentences of context around hits")
    p.add_argument("--index", help="index directory")
    p.set_defaults(run=_search)

    p = commands.add_parser("serve", help="start the HTTP API (builds the index if needed)")
    p.add_argument("--host", help="bind address (default: QA_HOST or 127.0.0.1)")
    p.add_argument("--port", type=int, help="port (default: QA_PORT or 8000)")
    p.add_argument("--index", help="index directory")
    p.add_argument("--no-ingest", action="store_true", help="serve the index as it is")
    p.add_argument(
        "--workers",
        type=_workers,
        help=f"server processes, 1..{MAX_WORKERS}, each loading the index and hot-reloading it "
        "(default: QA_WORKERS or 1)",
    )
    p.set_defaults(run=_serve)

    p = commands.add_parser("mcp", help="serve the MCP tools (search, answer, read) over stdio")
    p.add_argument("--index", help="index directory")
    p.set_defaults(run=_mcp)

    p = commands.add_parser("eval", help="evaluate retrieval on the gold set or a BEIR dataset")
    p.add_argument("--gold", type=Path, help="gold JSONL (default: QA_GOLD_PATH)")
    p.add_argument("--split", choices=("dev", "test", "all"), default="all", help="gold split")
    p.add_argument("--modes", nargs="+", choices=SEARCH_MODES, default=list(SEARCH_MODES))
    p.add_argument("--json", action="store_true", help="print metrics as JSON")
    p.add_argument(
        "--run-out",
        metavar="FILE",
        help="write one TREC run file per mode: {mode} in FILE is replaced by the mode "
        "(runs/{mode}.trec); without it, several modes go to FILE with the mode before its "
        "suffix (run.trec -> run.hybrid.trec)",
    )
    p.add_argument("--report", type=Path, metavar="DIR", help="write report.md + recall_at_k.png")
    p.add_argument(
        "--compare",
        choices=("student", "fisher", "none"),
        default="student",
        help="paired test between modes: student t-test (default), fisher randomization",
    )
    p.add_argument(
        "--write-baseline", type=Path, metavar="FILE", help="store hybrid dev/test metrics"
    )
    p.add_argument("--beir", type=Path, metavar="DIR", help="evaluate a BEIR dataset instead")
    p.add_argument("--beir-split", default="test", help="BEIR qrels file (default: test)")
    p.add_argument("--index-out", type=Path, help="BEIR index directory (default: in --cache)")
    p.add_argument("--work-dir", type=Path, help="BEIR documents (default: in --cache)")
    p.add_argument("--squad", type=Path, metavar="FILE", help="evaluate a SQuAD-format file")
    p.add_argument(
        "--questions", type=Path, metavar="FILE", help="--squad: take questions by id from FILE"
    )
    p.add_argument("--convert", choices=CONVERSIONS, help="--squad: convert articles with OpenCC")
    p.add_argument(
        "--suite", type=Path, metavar="DIR", help="run the dev suite of DIR (shared/benchmarks)"
    )
    p.add_argument("--cases", nargs="+", choices=list(SUITE), help="--suite: only these cases")
    p.add_argument("--limit", type=int, help="--squad/--suite: ask N questions spread evenly")
    p.add_argument(
        "--unanswerable",
        type=int,
        default=200,
        metavar="N",
        help="--squad/--suite: also ask N questions without their article (default 200)",
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="--squad/--suite: write runs, qrels")
    p.add_argument(
        "--against", type=Path, metavar="DIR", help="--squad/--suite: test against saved --out"
    )
    p.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        help="--squad/--suite: documents and indexes "
        "(default: QA_EVAL_CACHE or ~/.cache/citeqa/eval)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--index", help="index directory (gold set)")
    p.add_argument(
        "--fusion",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="override a retrieval setting, e.g. cross_lingual=false or lexical_weight=1.5 "
        "(repeatable; names: the fields of qa.retrieve.RetrievalSettings' groups)",
    )
    p.set_defaults(run=_eval)
    return parser


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    outcome = _run_ingest(
        settings,
        args.paths,
        strict=args.strict,
        rebuild=args.rebuild,
        quiet=args.quiet,
        prune=args.prune,
        ray=args.ray,
    )
    build = outcome.build
    print(
        f"index {build.generation}: {len(outcome.plan.documents)} documents, "
        f"{build.chunks_total} chunks ({build.chunks_embedded} embedded) in {build.seconds:.1f}s; "
        f"added {len(build.added)}, changed {len(build.changed)}, "
        f"removed {len(build.removed)}, unchanged {len(build.unchanged)}, "
        f"kept {len(outcome.plan.kept)}"
    )
    if build.resumed_documents:
        print(f"resumed an interrupted build: {build.resumed_documents} documents already done")
    dense = build.dense
    if dense.get("kind") == "ivf":
        print(
            f"dense index {dense['factory']}: recall@10 {dense['recall_at_10']:.3f} against "
            f"exact search ({dense['recall_queries']} queries, "
            f"nprobe {dense['search_params']['nprobe']} of {dense['search_params']['nlist']} cells)"
        )
    if settings.backend == "milvus":
        where = f"{settings.milvus_uri} as {settings.milvus_collection!r}"
        print(
            f"published {build.generation} to Milvus at {where}"
            if outcome.published
            else f"Milvus at {where} already serves {build.generation}"
        )
    return 1 if outcome.ingest.errors else 0


def _announce(plan: IngestPlan) -> None:
    """Say what the build will remove, and what it keeps, before it starts."""
    if plan.removing:
        names = ", ".join(plan.removing)
        print(f"removing {len(plan.removing)} documents (--prune): {names}", file=sys.stderr)
    if plan.kept:
        print(
            f"keeping {len(plan.kept)} indexed documents not found in the paths read "
            "(`qa ingest --prune` removes them)",
            file=sys.stderr,
        )


def _run_ingest(
    settings: Settings,
    paths: Sequence[Path],
    *,
    strict: bool,
    rebuild: bool,
    quiet: bool,
    prune: bool = False,
    ray: str | None = None,
) -> IngestOutcome:
    with closing(_ProgressBar(quiet)) as progress, _ray(ray, settings) as cluster:
        outcome = ingest(
            settings,
            paths,
            strict=strict,
            rebuild=rebuild,
            prune=prune,
            progress=progress,
            announce=_announce,
            read=cluster.read if cluster else None,
            embed=cluster.embed if cluster else None,
        )
    for error in outcome.ingest.errors:
        print(f"error: {error}", file=sys.stderr)
    for skipped in outcome.ingest.skipped:
        print(f"skipped: {skipped}", file=sys.stderr)
    for document in outcome.ingest.documents:  # indexed, but probably not what the file shows
        for warning in document.warnings:
            print(f"warning: {document.source_path}: {warning}", file=sys.stderr)
    return outcome


def _ray(address: str | None, settings: Settings) -> AbstractContextManager[Any]:
    """``--ray``: Ray parses, chunks and embeds (``qa.distributed``); else nothing (None)."""
    if address is None:
        return nullcontext()
    from qa.distributed import ray_ingest

    return ray_ingest(address, workers=settings.ingest_threads)


class _ProgressBar:
    """Progress of each long build phase on stderr, with its rate and time left (a tqdm bar per
    phase: embedding counts characters of text, the others chunks), unless ``quiet``; called
    as ``progress(phase, done, total)``. Short phases (a small corpus) draw nothing."""

    _MINIMUM: ClassVar[dict[str, int]] = {"embedding": 100_000, "asking": 200, "reading": 100}

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.bars: dict[str, Any] = {}

    def __call__(self, phase: str, done: int, total: int) -> None:
        if self.quiet or total < self._MINIMUM.get(phase.split(" ")[0], 20_000):
            return
        bar = self.bars.get(phase)
        if bar is None:
            from tqdm import tqdm

            for other in self.bars.values():
                other.close()
            unit = {"embedding": "char", "asking": "q", "reading": "file"}.get(
                phase.split(" ")[0], "chunk"
            )
            bar = tqdm(total=total, unit=unit, unit_scale=True, desc=phase, file=sys.stderr)
            self.bars[phase] = bar
        bar.update(done - bar.n)

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _eval_squad(args: argparse.Namespace, settings: Settings, retrieval: RetrievalSettings) -> int:
    """``qa eval --squad FILE`` or ``--suite DIR``: open-corpus benchmarks (``eval.squad``)."""
    from eval.squad import evaluate_squad, format_cases, load_squad, suite_case

    if args.squad and args.suite:
        raise ConfigError("give --squad FILE or --suite DIR, not both")
    if args.limit is not None and args.limit < 1:
        raise ConfigError(f"--limit must be at least 1, got {args.limit}")
    if args.squad:
        sets = [load_squad(args.squad, questions=args.questions, convert=args.convert)]
    else:
        sets = [suite_case(args.suite, case) for case in args.cases or SUITE]
    reports = []
    with closing(_ProgressBar(args.quiet)) as progress:
        for squad in sets:
            print(
                f"{squad.name}: {len(squad.articles)} articles, {len(squad.questions)} questions",
                file=sys.stderr,
            )
            reports.append(
                evaluate_squad(
                    squad,
                    settings,
                    args.modes,
                    cache=args.cache,
                    limit=args.limit,
                    out=args.out,
                    against=args.against,
                    unanswerable=args.unanswerable,
                    retrieval=retrieval,
                    progress=progress,
                )
            )
    if args.json:
        print(json.dumps([r.to_json() for r in reports], ensure_ascii=False, indent=2))
    else:
        print(format_cases(reports))
    if args.out:
        print(f"wrote runs and qrels under {args.out}", file=sys.stderr)
    return 0


def _search(args: argparse.Namespace, settings: Settings) -> int:
    result = open_retriever(settings).search(
        args.question,
        top_k=args.top_k,
        mode=args.mode,
        doc_ids=args.doc_ids,
        section_prefix=args.section,
        context=args.context,
    )
    if args.json:
        print(json.dumps(search_result_json(result), ensure_ascii=False, indent=2))
        return 0
    for hit in result.hits:
        c = hit.citation
        print(f"{hit.rank}. [{hit.score:.4f}] {c.anchor}  (lines {c.line_start}-{c.line_end})")
        if c.section:
            print(f"   {c.section}")
        print("   " + " ".join(hit.text.split())[:300])
    verdict = "" if result.answerable else "; the corpus probably does not answer this"
    print(f"({result.took_ms:.1f} ms{verdict})")
    return 0


def _workers(raw: str) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{raw!r} is not an integer") from None
    if not 1 <= value <= MAX_WORKERS:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..{MAX_WORKERS}")
    return value


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from api.app import LOG_FORMAT, create_app

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = settings.with_(
        host=args.host or settings.host,
        port=args.port or settings.port,
        workers=args.workers or settings.workers,
    )
    embedded = settings.backend == "milvus" and settings.milvus_uri.endswith(".db")
    if embedded and settings.workers > 1:
        raise ConfigError(
            f"QA_MILVUS_URI={settings.milvus_uri} is an embedded milvus-lite file, which one "
            "process owns; with several workers run a Milvus server (or `python -m milvus_lite "
            "server --data-dir DIR`) and set QA_MILVUS_URI=http://host:port"
        )
    if not args.no_ingest:
        outcome = _run_ingest(settings, [], strict=False, rebuild=False, quiet=False)
        print(
            f"index {outcome.build.generation}: {outcome.build.chunks_total} chunks",
            file=sys.stderr,
        )
    if settings.workers == 1:
        uvicorn.run(create_app(settings), host=settings.host, port=settings.port)
        return 0
    # uvicorn spawns each worker afresh and builds its app from an import string: the settings
    # resolved here (command line over QA_*) reach the workers as their environment.
    os.environ.update(settings.to_env())
    uvicorn.run(
        "api.app:app_from_env",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        timeout_worker_healthcheck=30,  # a worker loading its model on a busy machine is alive
    )
    return 0


def _mcp(args: argparse.Namespace, settings: Settings) -> int:
    from api.mcp_server import serve_stdio

    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    serve_stdio(settings)
    return 0


def _eval(args: argparse.Namespace, settings: Settings) -> int:
    from eval.harness import (
        Report,
        baseline_from_report,
        evaluate_beir,
        evaluate_gold,
        format_report,
        json_report,
        load_gold,
        write_report,
        write_run_files,
    )
    from qa.errors import ConfigError

    stat_test = None if args.compare == "none" else args.compare
    retrieval = retrieval_settings(args.fusion)
    if args.squad or args.suite:
        return _eval_squad(args, settings, retrieval)
    report: Report
    if args.beir:
        if args.write_baseline or args.split != "all":
            raise ConfigError("--write-baseline and --split apply to the gold set, not --beir")
        with closing(_ProgressBar(args.quiet)) as progress:
            report = evaluate_beir(
                args.beir,
                settings,
                args.modes,
                split=args.beir_split,
                index_dir=args.index_out,
                workdir=args.work_dir,
                cache=args.cache,
                stat_test=stat_test,
                progress=progress,
                retrieval=retrieval,
            )
    else:
        if args.write_baseline and (args.split != "all" or "hybrid" not in args.modes):
            raise ConfigError("--write-baseline needs --split all and the hybrid mode")
        if args.write_baseline and args.fusion:
            raise ConfigError("--write-baseline stores the default settings; drop --fusion")
        gold = args.gold or settings.gold_path
        retriever = open_retriever(settings, retrieval=retrieval)
        report = evaluate_gold(retriever, gold, args.modes, split=args.split, stat_test=stat_test)
        named = {q.doc_id for q in load_gold(gold) if q.doc_id}
        others = sorted(set(retriever.index.documents) - named)
        if named and others:
            print(
                f"warning: the index holds {len(others)} documents no gold question names "
                f"({', '.join(others[:3])}{', ...' if len(others) > 3 else ''}): they compete "
                "for every question, so the scores are not the gold set's alone",
                file=sys.stderr,
            )
    if args.fusion:
        report = report.with_fusion(retrieval.flat())
    print(json_report(report) if args.json else format_report(report))
    if args.run_out:
        for mode, (path, lines) in write_run_files(report, args.run_out).items():
            what = "judgement" if mode == "qrels" else f"{mode} run"
            print(f"wrote {lines} {what} lines to {path}", file=sys.stderr)
    if args.report:
        markdown, plot = write_report(report, args.report)
        print(f"wrote {markdown} and {plot}", file=sys.stderr)
    if args.write_baseline:
        baseline = json.dumps(baseline_from_report(report), ensure_ascii=False, indent=2)
        args.write_baseline.write_text(baseline + "\n", "utf-8")
        print(f"wrote {args.write_baseline}", file=sys.stderr)
    return 0
