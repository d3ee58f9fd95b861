"""Asking the retriever every evaluation question, and the TREC run file format.

``run_mode`` turns a retriever's answers into a run (``{query: {unit: score}}``) at the unit being
judged: a passage anchor on the gold set, a document id on BEIR.

A TREC run file holds one run: trec_eval and ranx (``Run.from_file(path, kind="trec")``) read
every line of a file into one run and ignore the tag column, so each mode goes to its own file
(``run_paths``), tagged with the mode.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from qa.errors import InvalidQueryError
from qa.retrieve import Retriever
from qa.types import Hit, SearchMode

RunDict = dict[str, dict[str, float]]
SNIPPET_CHARS = 240


@dataclass(frozen=True)
class Query:
    """One evaluation question, whatever the dataset: what was asked and what should be found."""

    id: str
    text: str
    lang: str
    split: str
    answerable: bool
    expected: tuple[str, ...]  # evidence strings (gold) or relevant "doc id: title" (BEIR)
    answer: str = ""
    tags: tuple[str, ...] = ()  # question types (gold: footnote, numeric, cross-lingual, ...)


@dataclass
class ModeRun:
    """What one mode returned for every query, at the unit being judged (passage or document)."""

    mode: str
    run: RunDict = field(default_factory=dict)  # {qid: {unit: 1/rank}}, in rank order
    flagged: dict[str, bool] = field(default_factory=dict)  # SearchResult.answerable
    confidence: dict[str, float] = field(default_factory=dict)
    top_hit: dict[str, tuple[str, str]] = field(default_factory=dict)  # (anchor, snippet)
    latency_ms: list[float] = field(default_factory=list)


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def run_mode(
    retriever: Retriever,
    queries: Sequence[Query],
    mode: SearchMode,
    *,
    top_k: int,
    unit: Callable[[Query, Hit], str],
) -> ModeRun:
    """Ask every query; a unit (passage anchor or document id) is ranked by its best hit.

    A unit's score is ``1 / rank``, its rank being where its first (best-scoring) hit comes in
    the service's order: ranking by score reproduces that order exactly, whatever the scale of
    the raw scores, and ties in raw scores cannot reorder it. ``unit`` names what a hit counts
    as for a query (a passage joining chunks may count as the one that answers it).
    """
    result = ModeRun(mode)
    for query in queries:
        started = time.perf_counter()
        try:
            found = retriever.search(query.text, top_k=top_k, mode=mode)
        except InvalidQueryError:  # e.g. an empty BEIR query: it finds nothing
            result.run[query.id] = {}
            continue
        result.latency_ms.append((time.perf_counter() - started) * 1000)
        ranking: dict[str, float] = {}
        for hit in found.hits:
            key = unit(query, hit)
            if key not in ranking:
                ranking[key] = 1.0 / (len(ranking) + 1)
        result.run[query.id] = ranking
        result.flagged[query.id] = bool(found.answerable)
        result.confidence[query.id] = float(found.confidence)
        if found.hits:
            result.top_hit[query.id] = (found.hits[0].citation.anchor, snippet(found.hits[0].text))
    return result


def trec_lines(run: RunDict, tag: str) -> list[str]:
    """One run's TREC lines ``qid Q0 docid rank score tag``, best first per query.

    Whitespace and ``%`` inside ids are percent-encoded (``read_trec_run`` decodes them; other
    readers see the encoded id), so every line has exactly six fields.
    """
    lines = []
    for qid in sorted(run):
        ordered = sorted(run[qid].items(), key=lambda item: -item[1])
        for rank, (docid, score) in enumerate(ordered, start=1):
            lines.append(
                f"{_trec_token(qid)} Q0 {_trec_token(docid)} {rank} {score:.8g} {_trec_token(tag)}"
            )
    return lines


MODE_PLACEHOLDER = "{mode}"


def run_paths(template: str | Path, modes: Sequence[str]) -> dict[str, Path]:
    """The run file of each mode: ``{mode}`` in ``template`` is replaced by the mode
    (``runs/{mode}.trec``); without it, a single mode writes to ``template`` itself and several
    get the mode inserted before the suffix (``run.trec`` -> ``run.hybrid.trec``, ...)."""
    text = str(template)
    if MODE_PLACEHOLDER in text:
        return {mode: Path(text.replace(MODE_PLACEHOLDER, mode)) for mode in modes}
    path = Path(text)
    if len(modes) == 1:
        return {modes[0]: path}
    return {mode: path.with_name(f"{path.stem}.{mode}{path.suffix}") for mode in modes}


def read_trec_run(path: str | Path) -> dict[str, RunDict]:
    """``{tag: {qid: {docid: score}}}`` from a TREC run file (one tag in files this package
    writes; lines are grouped by tag, so a file that concatenates runs reads back apart)."""
    from urllib.parse import unquote

    runs: dict[str, RunDict] = {}
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 6 or fields[1] != "Q0":
                raise ValueError(f"{path}:{number}: not a TREC run line: {line.rstrip()!r}")
            qid, _, docid, _, score, tag = fields
            runs.setdefault(unquote(tag), {}).setdefault(unquote(qid), {})[unquote(docid)] = float(
                score
            )
    return runs


def _trec_token(value: str) -> str:
    if not value:
        raise ValueError("an empty id cannot be written to a TREC run file")
    return "".join(
        "".join(f"%{b:02X}" for b in ch.encode()) if ch == "%" or ch.isspace() else ch
        for ch in value
    )
