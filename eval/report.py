"""Presenting an evaluation: the terminal table, the JSON, the TREC run and the Markdown report.

Everything here reads the ``eval.results.Report`` that ``evaluate_gold`` or ``evaluate_beir``
returns; nothing is measured or computed again.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.metrics import CURVE_DEPTH
from eval.results import QueryRow, Report
from eval.runs import run_paths, trec_lines

REPORT_FILE = "report.md"
WORST_LIMIT = 50
QUERY_LIMIT = 2000
FOCUS_MODE = "hybrid"
_TEST_NAMES = {
    "student": "two-sided paired Student's t-test",
    "fisher": "Fisher's randomization test, 1000 permutations (approximate)",
}
_NUMBER = re.compile(r"-|<?-?\d+(\.\d+)?")


def json_report(report: Report) -> str:
    """The report as JSON, without the raw runs (those go to ``--run-out``)."""
    return json.dumps(report.to_json(), ensure_ascii=False, indent=2)


def write_run_files(report: Report, template: str | Path) -> dict[str, tuple[Path, int]]:
    """Write each mode's run to its own TREC run file (``run_paths``; tag = mode): a valid run
    for trec_eval and ranx, and the judgements they are scored on to ``qrels.trec`` beside them
    (key ``qrels``), so that a run can be scored elsewhere. Returns ``{name: (path, lines)}``."""
    written = {}
    if report.qrels:
        first = next(iter(run_paths(template, list(report.runs)).values()))
        qrels = [
            f"{q} 0 {d} {g}"
            for q in sorted(report.qrels)
            for d, g in sorted(report.qrels[q].items())
        ]
        path = first.parent / "qrels.trec"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in qrels), "utf-8")
        written["qrels"] = (path, len(qrels))
    for mode, path in run_paths(template, list(report.runs)).items():
        lines = trec_lines(report.runs[mode], mode)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(line + "\n" for line in lines), "utf-8")
        written[mode] = (path, len(lines))
    return written


def _value(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _p(value: float) -> str:
    return "<0.0001" if value < 0.0001 else f"{value:.4f}"


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> list[str]:
    if markdown:
        cells = [[c.replace("|", "\\|").replace("\n", " ") for c in row] for row in rows]
        out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
        return out + ["| " + " | ".join(row) + " |" for row in cells]
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    left = {i for i in range(len(headers)) if not all(_NUMBER.fullmatch(r[i]) for r in rows)}

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i in left else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), *(line(r) for r in rows)]


def _focus(report: Report) -> str:
    return FOCUS_MODE if FOCUS_MODE in report.modes else next(iter(report.modes))


def _header(report: Report) -> list[str]:
    summary = report.summary
    counts = ", ".join(
        f"{scope} {c.questions}" for scope, c in report.counts.items() if scope != "all"
    )
    if report.kind == "gold":
        gold = report.gold
        head = (
            f"gold set {gold.gold} ({gold.gold_fingerprint}): "
            f"{summary.questions} questions, {summary.answerable} answerable, "
            f"{summary.scored} scored; split {report.split}"
            + (f" ({counts})" if report.split == "all" else "")
        )
        unit = "ranx metrics: hit_rate@k = share of answerable questions with a relevant passage"
        unit += " in the top k; mrr@10, ndcg@10"
    else:
        beir = report.beir
        head = (
            f"BEIR dataset {beir.beir} (qrels {report.split}): "
            f"{beir.documents} documents ({beir.documents_indexed} indexed), "
            f"{summary.scored} judged queries"
        )
        unit = "document level (a document scores as its best passage); recall@k = ranx recall"
        unit += "@k (share of relevant documents found), hit_rate@10 = any relevant in top 10"
    model = f"embedder {report.embed_model}, {report.chunks} chunks"
    return [head, model, unit]


def _sections(report: Report, markdown: bool) -> list[tuple[str, list[str]]]:
    names = list(report.metrics)
    modes = report.modes
    scopes = report.scopes
    primary = report.primary
    sections: list[tuple[str, list[str]]] = []

    rows = [
        [mode, scope, str(result.splits[scope].overall.n)]
        + [_value(result.splits[scope].overall[n]) for n in names]
        for mode, result in modes.items()
        for scope in scopes
    ]
    sections.append(("Overall", _table(["mode", "split", "n", *names], rows, markdown)))

    rows = [
        [mode, lang, scope, str(values.n)] + [_value(values[n]) for n in names]
        for mode, result in modes.items()
        for scope in (scopes if markdown else [primary])
        for lang, values in result.splits[scope].by_lang.items()
    ]
    title = "By language" + ("" if markdown else f" ({primary})")
    if report.kind == "beir":
        title += ", guessed from the script of the query"
    sections.append((title, _table(["mode", "lang", "split", "n", *names], rows, markdown)))

    rows = [
        [mode, tag, primary, str(values.n)] + [_value(values[n]) for n in names]
        for mode, result in modes.items()
        for tag, values in result.splits[primary].by_tag.items()
    ]
    if markdown and rows:  # a question belongs to several types: the rows overlap
        title = "By question type (tag; a question can carry several)"
        sections.append((title, _table(["mode", "tag", "split", "n", *names], rows, markdown)))

    rows = [
        [
            mode,
            _value(result.latency_ms.median, 2),
            _value(result.latency_ms.p95, 2),
            ", ".join(result.misses_at_5[:20]) + (" …" if len(result.misses_at_5) > 20 else "")
            or "-",
        ]
        for mode, result in modes.items()
    ]
    sections.append(
        ("Latency per query (ms)", _table(["mode", "median", "p95", "misses@5"], rows, markdown))
    )

    sig = report.significance
    rows = [
        [
            scope,
            row.metric,
            f"{row.a} vs {row.b}",
            _value(row.mean_a),
            _value(row.mean_b),
            _p(row.p_value),
            row.better or "no significant difference",
        ]
        for scope, comparisons in sig.splits.items()
        for row in comparisons
    ]
    test = _TEST_NAMES.get(sig.stat_test or "", "no test")
    title = f"Significance ({test}, ranx compare, alpha {sig.alpha})"
    headers = ["split", "metric", "modes", "mean a", "mean b", "p-value", "better"]
    if rows:
        body = _table(headers, rows, markdown)
    else:
        needs = "(needs two or more modes and scored questions)"
        body = ["(not requested)" if sig.stat_test is None else needs]
    sections.append((title, body))

    rows = [
        [
            mode,
            scope,
            str(flag.unanswerable),
            _value(flag.unanswerable_flagged),
            str(flag.answerable),
            _value(flag.answerable_misflagged),
        ]
        for mode, result in modes.items()
        for scope in scopes
        for flag in [result.splits[scope].answerable_flag]
        if markdown or mode == _focus(report)
    ]
    headers = ["mode", "split", "unanswerable", "flagged", "answerable", "misflagged"]
    sections.append(("Answerable flag (SearchResult.answerable)", _table(headers, rows, markdown)))
    answers = report.gold.answers if report.kind == "gold" else {}
    rows = [
        [
            scope,
            str(values.answerable),
            _value(values.answer_hit_rate),
            str(values.unanswerable),
            _value(values.refusal_rate),
            _value(values.sentences, 2),
        ]
        for scope, values in answers.items()
    ]
    if rows:
        title = "Answers (extractive, from the top 5 hybrid passages)"
        headers = ["split", "answerable", "answer_hit_rate", "unanswerable", "refusal_rate"]
        sections.append((title, _table([*headers, "sentences"], rows, markdown)))
    return sections


def format_report(report: Report) -> str:
    """The terminal summary of ``qa eval``."""
    lines = _header(report)
    for title, body in _sections(report, markdown=False):
        lines += ["", title, *body]
    missing = report.gold.evidence_not_found if report.kind == "gold" else ()
    if missing:
        lines.append("evidence not found in any chunk: " + ", ".join(missing))
    return "\n".join(lines)


def _worst(report: Report) -> list[QueryRow]:
    focus = _focus(report)
    worst = []
    for q in report.queries:
        rank = q.first_relevant_rank.get(focus)
        if q.answerable and (rank is None or rank > 5):
            worst.append(q)
    return worst


def markdown_report(report: Report, plot: str | None = "") -> str:
    """The report as Markdown; ``plot`` is the @k curve's file ("": ``plot_file``, None: none)."""
    plot = plot_file(report) if plot == "" else plot
    what = "gold set" if report.kind == "gold" else "BEIR dataset"
    lines = [f"# Retrieval evaluation: {what}", "", *(f"- {line}" for line in _header(report))]
    for title, body in _sections(report, markdown=True):
        lines += ["", f"## {title}", "", *body]
        if title == "Overall" and plot:
            name = report.summary.curve_metric
            lines += ["", f"![{name}@k, k=1..{CURVE_DEPTH}, per mode]({plot})"]

    focus, modes = _focus(report), list(report.modes)
    worst = _worst(report)
    lines += [
        "",
        f"## Worst queries: no relevant hit in the top 5 ({focus}), {len(worst)}",
        "",
    ]
    for q in worst[:WORST_LIMIT]:
        ranks = ", ".join(f"{m} {_value(q.first_relevant_rank[m])}" for m in modes)
        top = q.top_hit.get(focus)
        lines += [
            f"### {q.id} ({q.lang}, {q.split})",
            "",
            f"- question: {q.question}",
            *(f"- expected: {e}" for e in q.expected),
            *([f"- answer: {q.answer}"] if q.answer else []),
            f"- first relevant rank: {ranks}"
            + ("" if q.scored else " (evidence not found in any chunk)"),
            f"- top hit ({focus}): " + (f"`{top.id}` {top.text}" if top else "(none)"),
            f"- flagged answerable ({focus}): {_value(q.flagged_answerable.get(focus))}, "
            f"confidence {_value(q.confidence.get(focus))}",
            "",
        ]
    if len(worst) > WORST_LIMIT:
        lines.append(f"({len(worst) - WORST_LIMIT} more in the JSON output)")

    headers = ["id", "lang", "split", "answerable", *(f"rank {m}" for m in modes)]
    headers += [f"flag {focus}", f"confidence {focus}"]
    rows = [
        [q.id, q.lang, q.split, _value(q.answerable)]
        + [_value(q.first_relevant_rank[m]) for m in modes]
        + [_value(q.flagged_answerable.get(focus)), _value(q.confidence.get(focus))]
        for q in report.queries[:QUERY_LIMIT]
    ]
    lines += [
        "",
        "## Per query",
        "",
        "Rank of the first relevant result per mode (- = none in the run); flag = the "
        "retriever's `answerable`.",
        "",
        *_table(headers, rows, markdown=True),
    ]
    if len(report.queries) > QUERY_LIMIT:
        lines.append(f"({len(report.queries) - QUERY_LIMIT} more in the JSON output)")
    return "\n".join(lines) + "\n"


def plot_recall_curve(report: Report, path: Path) -> None:
    """The curve metric (hit_rate or recall) @k for k = 1..10, one line per mode, drawn with the
    Agg backend (no display)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6.4, 4.2), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    ks = list(range(1, CURVE_DEPTH + 1))
    for mode, result in report.modes.items():
        curve = [v for v in result.curve if v is not None]
        if len(curve) == len(ks):
            axes.plot(ks, curve, marker="o", label=mode)
    name = report.summary.curve_metric
    axes.set_xlabel("k")
    axes.set_ylabel(f"{name}@k (ranx)")
    axes.set_xticks(ks)
    axes.set_ylim(0, 1.02)
    axes.grid(True, alpha=0.3)
    axes.set_title(f"{name}@k, {report.kind} ({report.primary})")
    if axes.get_legend_handles_labels()[0]:
        axes.legend(loc="lower right")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")


def plot_file(report: Report) -> str:
    """The plot's file name says what it draws: ``hit_rate_at_k.png`` or ``recall_at_k.png``."""
    return f"{report.summary.curve_metric}_at_k.png"


def write_report(report: Report, directory: Path) -> tuple[Path, Path]:
    """``directory/report.md`` and the @k curve beside it (``plot_file``)."""
    directory.mkdir(parents=True, exist_ok=True)
    plot = directory / plot_file(report)
    plot_recall_curve(report, plot)
    markdown = directory / REPORT_FILE
    markdown.write_text(markdown_report(report, plot.name), "utf-8")
    return markdown, plot
