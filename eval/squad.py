"""SQuAD-format reading-comprehension sets as open-corpus benchmarks.

Every article of the file becomes one Markdown document (``# title``, then each paragraph as its
own paragraph), every question is asked against the whole corpus, the way a researcher who saved
the articles would ask. Works on any SQuAD-format file: SQuAD, DRCD, XQuAD, JSQuAD (whose
contexts open with ``title [SEP] ``, stripped), CMRC 2018.

Relevance is answer containment (DPR's rule, applied to the text the service shows): a hit is
relevant when it comes from the question's article and its text contains one of the gold answer
strings, whitespace removed; a match after folding both sides to Simplified Chinese (OpenCC
``t2s``) counts too, and so does the answer's converted form when the articles were converted.
The unit judged is the hit itself (its citation anchor), so runs and qrels are TREC files that
any tool can score, and runs of different chunkings can be compared on the union of their qrels.

The documents and the index are built in a cache folder (``QA_EVAL_CACHE``, default
``~/.cache/citeqa/eval``), never in the dataset's folder, keyed by the article file's content and
the conversion: a second run re-embeds nothing, and two cases over the same articles (XQuAD's
Chinese and English questions) share one index.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import time
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from eval.evidence import compact, holds_evidence
from eval.runs import RunDict, read_trec_run, trec_lines
from qa.answer import extractive_answer
from qa.build import ProgressCallback
from qa.config import Settings
from qa.embed import Embedder
from qa.errors import ConfigError, InvalidQueryError
from qa.retrieve import MAX_QUESTION_CHARS, RetrievalSettings, Retriever
from qa.service import ingest, open_embedder, open_retriever
from qa.types import SEARCH_MODES, SearchMode

DEPTH = 10
CONVERSIONS = ("s2twp", "s2t", "t2s")
COMPARE_METRICS = {"R@1": "hit_rate@1", "R@5": "hit_rate@5", "MRR@10": "mrr@10"}
ALPHA = 0.05
ECE_BINS = 10


@dataclass(frozen=True)
class Article:
    doc_id: str
    title: str
    paragraphs: tuple[str, ...]

    def markdown(self) -> str:
        parts = [f"# {' '.join(self.title.split())}"] if self.title.strip() else []
        parts += [" ".join(p.split()) for p in self.paragraphs if p.strip()]
        return "\n\n".join(parts) + "\n"


@dataclass(frozen=True)
class SquadQuestion:
    id: str
    text: str
    doc_id: str
    answers: tuple[str, ...]


@dataclass(frozen=True)
class SquadSet:
    name: str
    articles: tuple[Article, ...]
    questions: tuple[SquadQuestion, ...]
    key: str  # what the corpus is built from: articles file content + conversion


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise ConfigError(f"SQuAD file not found: {path}")
    try:
        data = json.loads(path.read_text("utf-8-sig"))
        return data["data"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a SQuAD-format file (no 'data' list): {exc}") from None


@lru_cache(maxsize=4)
def _opencc(config: str) -> Any:
    from opencc import OpenCC

    return OpenCC(config)


def _strip_title(context: str, title: str) -> str:
    """JSQuAD contexts open with ``title [SEP] ``: the title is the heading, not body text."""
    head, sep, rest = context.partition(" [SEP] ")
    return rest if sep and head.strip() == title.strip() else context


def load_squad(
    path: Path,
    *,
    questions: Path | None = None,
    convert: str | None = None,
    name: str | None = None,
) -> SquadSet:
    """Articles and questions of a SQuAD-format file.

    ``questions`` takes the question texts from another file of the same set by id (XQuAD's
    English questions over its Chinese articles); ids it lacks are dropped. ``convert`` runs the
    articles through OpenCC (``s2twp``: Simplified questions over Traditional articles); each
    answer is then matched in its original and converted forms.
    """
    if convert is not None and convert not in CONVERSIONS:
        raise ConfigError(f"--convert must be one of {', '.join(CONVERSIONS)}, got {convert!r}")
    data = _read_json(path)
    texts: dict[str, str] | None = None
    if questions is not None:
        texts = {
            str(qa["id"]): str(qa["question"])
            for article in _read_json(questions)
            for paragraph in article.get("paragraphs", ())
            for qa in paragraph.get("qas", ())
        }
    convert_text = _opencc(convert).convert if convert else (lambda s: s)
    articles: list[Article] = []
    found: list[SquadQuestion] = []
    for n, article in enumerate(data, start=1):
        title = str(article.get("title") or "").replace("_", " ")
        doc_id = f"{n:04d}"
        paragraphs = []
        for paragraph in article.get("paragraphs", ()):
            paragraphs.append(convert_text(_strip_title(str(paragraph["context"]), title)))
            for qa in paragraph.get("qas", ()):
                if qa.get("is_impossible"):
                    continue
                qid = str(qa["id"])
                text = texts.get(qid) if texts is not None else str(qa["question"])
                answers = [str(a["text"]) for a in qa.get("answers", ()) if str(a["text"]).strip()]
                if not text or not text.strip() or not answers:
                    continue
                forms = answers + ([convert_text(a) for a in answers] if convert else [])
                found.append(SquadQuestion(qid, text.strip(), doc_id, tuple(dict.fromkeys(forms))))
        articles.append(Article(doc_id, convert_text(title), tuple(paragraphs)))
    if not found:
        raise ConfigError(f"{path} holds no answerable questions")
    digest = hashlib.sha256(path.read_bytes() + f"|{convert}".encode()).hexdigest()[:16]
    stem = path.stem + (f"-{convert}" if convert else "")
    return SquadSet(name or stem, tuple(articles), tuple(found), f"{stem}-{digest}")


def cache_root(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("QA_EVAL_CACHE"):
        return Path(env["QA_EVAL_CACHE"]).expanduser()
    base = Path(env.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "citeqa" / "eval"


def materialize(squad: SquadSet, corpus: Path) -> None:
    """One Markdown file per article; unchanged files are left alone (nothing re-embedded),
    files of articles no longer in the set are removed. A folder holding anything other than
    this layout is refused rather than pruned."""
    corpus.mkdir(parents=True, exist_ok=True)
    wanted = {f"{a.doc_id}.md": a for a in squad.articles}
    strangers = [p.name for p in corpus.iterdir() if p.name not in wanted and p.suffix != ".md"]
    if strangers:
        raise ConfigError(f"{corpus} holds files an evaluation did not write: {strangers[:3]}")
    for path in corpus.glob("*.md"):
        if path.name not in wanted:
            path.unlink()
    for name, article in wanted.items():
        path = corpus / name
        text = article.markdown()
        if not path.is_file() or path.read_text("utf-8") != text:
            path.write_text(text, "utf-8")


class QueryVectors:
    """An embedder whose question vectors are kept on disk, keyed by the model and the text:
    every mode and every later run of a set reuses them (the encoder is most of a question's
    cost, and a tuning run changes nothing it computes). Passages go to the model as always."""

    def __init__(self, embedder: Embedder, path: Path) -> None:
        self.embedder, self.path = embedder, path
        self.model_id, self.dimension = embedder.model_id, embedder.dimension
        self._known: dict[str, Any] = {}
        self._fresh = 0
        if path.is_file():
            with np.load(path, allow_pickle=False) as saved:
                if str(saved["model"]) == self.model_id:
                    self._known = dict(zip(saved["texts"].tolist(), saved["vectors"], strict=True))

    def encode_queries(self, texts: list[str]) -> Any:
        missing = [t for t in dict.fromkeys(texts) if t not in self._known]
        if missing:
            for text, vector in zip(missing, self.embedder.encode_queries(missing), strict=True):
                self._known[text] = vector
            self._fresh += len(missing)
        return np.stack([self._known[t] for t in texts])

    def encode_passages(self, texts: list[str]) -> Any:
        return self.embedder.encode_passages(texts)

    def save(self) -> None:
        if not self._fresh:
            return
        texts = list(self._known)
        vectors = np.stack([self._known[t] for t in texts])
        partial = self.path.with_suffix(".partial.npz")
        np.savez(partial, model=self.model_id, texts=np.asarray(texts), vectors=vectors)
        partial.replace(self.path)
        self._fresh = 0


def build(
    squad: SquadSet,
    settings: Settings,
    *,
    embedder: Embedder | None = None,
    cache: Path | None = None,
    progress: ProgressCallback | None = None,
    retrieval: RetrievalSettings | None = None,
) -> Retriever:
    """The set's corpus written and indexed in its cache folder, opened for searching."""
    folder = (cache or cache_root()) / squad.key
    corpus, index = folder / "corpus", folder / "index"
    if index.resolve() == settings.index_dir.resolve():
        raise ConfigError(f"{index} is the project's own index; give the evaluation another cache")
    materialize(squad, corpus)
    own = settings.with_(corpus_dir=corpus, index_dir=index, backend="local")
    embedder = embedder or open_embedder(own, threads=settings.ingest_threads)
    ingest(own, [corpus], embedder=embedder, prune=True, progress=progress)
    remembered = QueryVectors(embedder, folder / "questions.npz")
    return open_retriever(own, remembered, retrieval)


class Judge:
    """Answer containment, the folded (``t2s``) form of each text computed once."""

    def __init__(self) -> None:
        self._folded: dict[str, str] = {}

    def fold(self, text: str) -> str:
        found = self._folded.get(text)
        if found is None:
            found = _opencc("t2s").convert(compact(text))
            self._folded[text] = found
        return found

    def holds(self, question: SquadQuestion, text: str) -> bool:
        if holds_evidence(question.answers, [text]):
            return True
        folded = self.fold(text)
        return any(self.fold(a) in folded for a in question.answers)


@dataclass
class ModeOutcome:
    """One mode's answers to every question, and what they mean."""

    run: RunDict = field(default_factory=dict)  # {qid: {anchor: 1/rank}}
    relevant: dict[str, list[str]] = field(default_factory=dict)  # relevant anchors seen
    first: dict[str, int | None] = field(default_factory=dict)  # rank of the first relevant hit
    answerable: dict[str, bool] = field(default_factory=dict)
    confidence: dict[str, float] = field(default_factory=dict)
    answer_hit: dict[str, bool] = field(default_factory=dict)
    wrong_article: dict[str, bool] = field(default_factory=dict)
    latency_ms: list[float] = field(default_factory=list)


def ask(
    retriever: Retriever,
    squad: SquadSet,
    mode: SearchMode,
    judge: Judge,
    progress: ProgressCallback | None = None,
) -> ModeOutcome:
    """Search and answer every question in one mode. The answer is composed whatever the
    ``answerable`` flag says (a refusal cites nothing), so answer hits count refusals as
    misses: the flag's cost shows in them."""
    outcome = ModeOutcome()
    asked = squad.questions
    for i, q in enumerate(asked):
        started = time.perf_counter()
        try:
            result = retriever.search(q.text[:MAX_QUESTION_CHARS], top_k=DEPTH, mode=mode)
        except InvalidQueryError:
            outcome.run[q.id] = {}
            outcome.first[q.id] = None
            continue
        outcome.latency_ms.append((time.perf_counter() - started) * 1000)
        ranking: dict[str, float] = {}
        relevant: list[str] = []
        first = None
        for hit in result.hits:
            anchor = hit.citation.anchor
            ranking[anchor] = 1.0 / (len(ranking) + 1)
            if hit.citation.doc_id == q.doc_id and judge.holds(q, hit.text):
                relevant.append(anchor)
                first = first or hit.rank
        outcome.run[q.id] = ranking
        outcome.relevant[q.id] = relevant
        outcome.first[q.id] = first
        outcome.answerable[q.id] = bool(result.answerable)
        outcome.confidence[q.id] = float(result.confidence)
        answer = extractive_answer(retriever, result)
        cited = [r.citation.doc_id for r in answer.references]
        outcome.answer_hit[q.id] = answer.method != "refusal" and judge.holds(q, answer.text)
        outcome.wrong_article[q.id] = any(doc != q.doc_id for doc in cited)
        if progress is not None and ((i + 1) % 50 == 0 or i + 1 == len(asked)):
            progress(f"asking {squad.name} ({mode})", i + 1, len(asked))
    return outcome


def ask_unanswerable(
    retriever: Retriever, questions: Sequence[SquadQuestion], judge: Judge
) -> list[tuple[bool, float, bool]]:
    """Each question asked of the corpus without its article (every other document allowed):
    an unanswerable question as real as the answerable ones. Per question: whether it was
    flagged unanswerable, its confidence, and whether the answer still held a gold string
    (another article may state it)."""
    everything = sorted(retriever.index.documents)
    found = []
    for q in questions:
        others = [doc_id for doc_id in everything if doc_id != q.doc_id]
        try:
            result = retriever.search(q.text[:MAX_QUESTION_CHARS], top_k=DEPTH, doc_ids=others)
        except InvalidQueryError:
            continue
        answer = extractive_answer(retriever, result)
        held = answer.method != "refusal" and judge.holds(q, answer.text)
        found.append((not result.answerable, float(result.confidence), held))
    return found


def qrels_of(outcomes: Mapping[str, ModeOutcome]) -> dict[str, dict[str, int]]:
    """The union of every mode's relevant anchors per question."""
    qrels: dict[str, dict[str, int]] = {}
    for outcome in outcomes.values():
        for qid, anchors in outcome.relevant.items():
            for anchor in anchors:
                qrels.setdefault(qid, {})[anchor] = 1
    return qrels


def expected_calibration_error(
    confidence: Sequence[float], correct: Sequence[bool], bins: int = ECE_BINS
) -> tuple[float, list[tuple[float, float, int]]]:
    """ECE over equal-width bins, and each non-empty bin's (mean confidence, accuracy, count)."""
    table: list[tuple[float, float, int]] = []
    total = len(confidence)
    ece = 0.0
    for b in range(bins):
        low, high = b / bins, (b + 1) / bins
        members = [
            (c, k)
            for c, k in zip(confidence, correct, strict=True)
            if low <= c < high or (b == bins - 1 and c == 1.0)
        ]
        if not members:
            continue
        mean_c = statistics.fmean(c for c, _ in members)
        accuracy = statistics.fmean(float(k) for _, k in members)
        ece += len(members) / total * abs(mean_c - accuracy)
        table.append((mean_c, accuracy, len(members)))
    return ece, table


@dataclass(frozen=True)
class ModeSummary:
    mode: str
    questions: int
    r1: float
    r5: float
    r10: float
    mrr10: float
    answer_hit: float
    false_refusal: float
    wrong_article: float
    latency_median_ms: float
    ece: float  # answers of every question, answerable and left-out-article ones alike
    unanswerable_caught: float | None = None  # share of left-out-article questions flagged


def summarize(
    squad: SquadSet,
    outcome: ModeOutcome,
    mode: str,
    unanswerable: Sequence[tuple[bool, float, bool]] = (),
) -> ModeSummary:
    ids = [q.id for q in squad.questions if q.id in outcome.run]
    n = len(ids) or 1

    def share(values: Mapping[str, bool]) -> float:
        return sum(bool(values.get(q)) for q in ids) / n

    def at(k: int) -> float:
        return sum(1 for q in ids if (outcome.first.get(q) or DEPTH + 1) <= k) / n

    mrr = sum(1 / r for q in ids if (r := outcome.first.get(q)) and r <= DEPTH) / n
    refused = {q: not outcome.answerable.get(q, True) for q in ids}
    ece, _ = expected_calibration_error(
        [outcome.confidence.get(q, 0.0) for q in ids] + [c for _, c, _ in unanswerable],
        [outcome.answer_hit.get(q, False) for q in ids] + [False for _ in unanswerable],
    )
    caught = sum(f for f, _, _ in unanswerable) / len(unanswerable) if unanswerable else None
    latency = statistics.median(outcome.latency_ms) if outcome.latency_ms else math.nan
    return ModeSummary(
        mode,
        len(ids),
        at(1),
        at(5),
        at(10),
        mrr,
        share(outcome.answer_hit),
        share(refused),
        share(outcome.wrong_article),
        latency,
        ece,
        caught,
    )


@dataclass(frozen=True)
class Significance:
    a: str
    b: str
    metric: str
    mean_a: float
    mean_b: float
    p_value: float

    @property
    def verdict(self) -> str:
        if self.p_value > ALPHA or self.mean_a == self.mean_b:
            return "no significant difference"
        return f"{self.a if self.mean_a > self.mean_b else self.b} better"


def paired_tests(
    qrels: Mapping[str, Mapping[str, int]],
    runs: Mapping[str, RunDict],
    ids: Sequence[str],
    pairs: Sequence[tuple[str, str]],
) -> list[Significance]:
    """ranx ``compare`` (two-sided paired t-test) on R@1, R@5 and MRR@10 for each pair of runs.
    Every question counts, including those no run answered (they score 0)."""
    from ranx import Qrels, Run, compare

    if not pairs:
        return []
    judged = {q: dict(qrels.get(q) or {"<none>": 1}) for q in ids}
    names = sorted({name for pair in pairs for name in pair})
    ranx_runs = [
        Run({q: dict(runs[name].get(q) or {"<empty>": 0.0}) for q in ids}, name=name)
        for name in names
    ]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        report = compare(Qrels(judged), ranx_runs, list(COMPARE_METRICS.values()), max_p=ALPHA)
    found = []
    for a, b in pairs:
        key = (a, b) if (a, b) in report.comparisons else (b, a)
        for label, metric in COMPARE_METRICS.items():
            p = float(report.comparisons[key][metric]["p_value"])
            found.append(
                Significance(
                    a,
                    b,
                    label,
                    float(report.results[a][metric]),
                    float(report.results[b][metric]),
                    1.0 if math.isnan(p) else p,
                )
            )
    return found


@dataclass(frozen=True)
class CaseReport:
    case: str
    articles: int
    chunks: int
    summaries: tuple[ModeSummary, ...]
    tests: tuple[Significance, ...]
    reliability: tuple[tuple[float, float, int], ...]  # hybrid confidence bins
    extra_documents: int  # indexed documents the set does not know

    def to_json(self) -> dict[str, Any]:
        return {
            "case": self.case,
            "articles": self.articles,
            "chunks": self.chunks,
            "extra_documents": self.extra_documents,
            "modes": [asdict(s) for s in self.summaries],
            "tests": [{**asdict(t), "verdict": t.verdict} for t in self.tests],
            "reliability": [
                {"confidence": c, "accuracy": a, "n": n} for c, a, n in self.reliability
            ],
        }


def write_runs(
    folder: Path, outcomes: Mapping[str, ModeOutcome], qrels: Mapping[str, Mapping[str, int]]
) -> None:
    """``qrels.trec`` and one ``{mode}.trec`` per mode: scoreable by trec_eval or ranx."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"{q} 0 {a} 1" for q in sorted(qrels) for a in sorted(qrels[q])]
    (folder / "qrels.trec").write_text("\n".join(lines) + "\n", "utf-8")
    for mode, outcome in outcomes.items():
        text = "\n".join(trec_lines(outcome.run, mode))
        (folder / f"{mode}.trec").write_text(text + "\n", "utf-8")


def read_saved(folder: Path, mode: str) -> tuple[RunDict, dict[str, dict[str, int]]]:
    """A run written by ``write_runs`` and its qrels, for comparing against."""
    run_path, qrels_path = folder / f"{mode}.trec", folder / "qrels.trec"
    if not run_path.is_file() or not qrels_path.is_file():
        raise ConfigError(f"no saved {mode} run in {folder} (want {run_path.name}, qrels.trec)")
    runs = read_trec_run(run_path)
    qrels: dict[str, dict[str, int]] = {}
    for line in qrels_path.read_text("utf-8").splitlines():
        fields = line.split()
        if len(fields) == 4:
            qrels.setdefault(fields[0], {})[fields[2]] = int(fields[3])
    return next(iter(runs.values()), {}), qrels


def evaluate_squad(
    squad: SquadSet,
    settings: Settings,
    modes: Sequence[SearchMode] = SEARCH_MODES,
    *,
    embedder: Embedder | None = None,
    cache: Path | None = None,
    limit: int | None = None,
    out: Path | None = None,
    against: Path | None = None,
    retrieval: RetrievalSettings | None = None,
    progress: ProgressCallback | None = None,
    retriever: Retriever | None = None,
    unanswerable: int = 200,
) -> CaseReport:
    """Build (or reuse) the set's index, ask every question in every mode, score, test."""
    retriever = retriever or build(
        squad, settings, embedder=embedder, cache=cache, progress=progress, retrieval=retrieval
    )
    questions = squad.questions
    if limit and limit < len(questions):  # an even spread over the file, not its first articles
        step = len(questions) / limit
        questions = tuple(questions[int(i * step)] for i in range(limit))
    squad = SquadSet(squad.name, squad.articles, questions, squad.key)
    judge = Judge()
    if isinstance(retriever.embedder, QueryVectors):  # every mode is then timed without the
        for i in range(0, len(questions), 64):  # encoder, whose cost is the same for all
            retriever.embedder.encode_queries(
                [q.text[:MAX_QUESTION_CHARS] for q in questions[i : i + 64]]
            )
    outcomes: dict[str, ModeOutcome] = {
        m: ask(retriever, squad, m, judge, progress=progress) for m in modes
    }
    left_out: list[tuple[bool, float, bool]] = []
    if unanswerable and "hybrid" in outcomes and len(squad.articles) > 1:
        step = max(len(questions) / unanswerable, 1.0)
        sample = [questions[int(i * step)] for i in range(min(unanswerable, len(questions)))]
        left_out = ask_unanswerable(retriever, sample, judge)
    if isinstance(retriever.embedder, QueryVectors):
        retriever.embedder.save()
    qrels = qrels_of(outcomes)
    runs: dict[str, RunDict] = {m: o.run for m, o in outcomes.items()}
    pairs = [(a, b) for i, a in enumerate(runs) for b in list(runs)[i + 1 :]]
    if against is not None:
        for mode in modes:
            saved_run, saved_qrels = read_saved(against / squad.name, mode)
            runs[f"saved-{mode}"] = saved_run
            for qid, anchors in saved_qrels.items():
                qrels.setdefault(qid, {}).update(anchors)
            pairs.append((mode, f"saved-{mode}"))
    ids = [q.id for q in questions]
    tests = paired_tests(qrels, runs, ids, pairs)
    if out is not None:
        write_runs(out / squad.name, outcomes, qrels_of(outcomes))
    if out is not None:
        plot_reliability(reliability_rows(outcomes, ids, left_out), out / squad.name)
    known = {a.doc_id for a in squad.articles}
    extra = sum(1 for doc_id in retriever.index.documents if doc_id not in known)
    _, reliability = expected_calibration_error(*reliability_rows(outcomes, ids, left_out))
    return CaseReport(
        squad.name,
        len(squad.articles),
        len(retriever.index.chunks),
        tuple(
            summarize(squad, o, m, left_out if m == "hybrid" else ()) for m, o in outcomes.items()
        ),
        tuple(tests),
        tuple(reliability),
        extra,
    )


def reliability_rows(
    outcomes: Mapping[str, ModeOutcome],
    ids: Sequence[str],
    left_out: Sequence[tuple[bool, float, bool]],
) -> tuple[list[float], list[bool]]:
    """Hybrid's (confidence, answer held) for every question, the left-out ones included."""
    main = outcomes.get("hybrid") or next(iter(outcomes.values()))
    confidence = [main.confidence.get(q, 0.0) for q in ids] + [c for _, c, _ in left_out]
    held = [main.answer_hit.get(q, False) for q in ids] + [False for _ in left_out]
    return confidence, held


def plot_reliability(rows: tuple[list[float], list[bool]], folder: Path) -> Path:
    """``reliability.png``: accuracy against mean confidence per bin (the diagonal is perfect
    calibration), bin sizes as marker areas; drawn with the Agg backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    ece, table = expected_calibration_error(*rows)
    figure = Figure(figsize=(4.8, 4.8), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    axes.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
    if table:
        total = sum(n for _, _, n in table)
        axes.scatter(
            [c for c, _, _ in table],
            [a for _, a, _ in table],
            s=[20 + 400 * n / total for _, _, n in table],
        )
        axes.plot([c for c, _, _ in table], [a for _, a, _ in table])
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1)
    axes.set_xlabel("confidence (bin mean)")
    axes.set_ylabel("share of answers that hold the answer")
    axes.set_title(f"{folder.name}: ECE {ece:.3f}")
    axes.grid(True, alpha=0.3)
    figure.tight_layout()
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "reliability.png"
    figure.savefig(path, format="png")
    return path


# The dev suite of ``../shared/benchmarks`` (its README): case -> (articles, questions, convert).
SUITE: dict[str, tuple[str, str | None, str | None]] = {
    "drcd": ("drcd/DRCD_dev.json", None, None),
    "xquad-zh": ("xquad/xquad-dev.zh.json", None, None),
    "xquad-en2zh": ("xquad/xquad-dev.zh.json", "xquad/xquad-dev.en.json", None),
    "xquad-zh2hant": ("xquad/xquad-dev.zh.json", None, "s2twp"),
    "jsquad": ("jsquad/valid-v1.3.json", None, None),
}


def suite_case(root: Path, case: str) -> SquadSet:
    if case not in SUITE:
        raise ConfigError(f"unknown case {case!r}; the suite has {', '.join(SUITE)}")
    articles, questions, convert = SUITE[case]
    return load_squad(
        root / articles,
        questions=root / questions if questions else None,
        convert=convert,
        name=case,
    )


def format_cases(reports: Sequence[CaseReport]) -> str:
    """One table for every case and mode, then the paired tests."""
    head = (
        f"{'case':<14} {'mode':<8} {'n':>5} {'R@1':>6} {'R@5':>6} {'R@10':>6} {'MRR@10':>7} "
        f"{'answer':>7} {'refused':>8} {'wrong-art':>9} {'caught':>7} {'ECE':>6} {'ms':>6}"
    )
    lines = [head, "-" * len(head)]
    for report in reports:
        for s in report.summaries:
            caught = "" if s.unanswerable_caught is None else f"{s.unanswerable_caught:.3f}"
            lines.append(
                f"{report.case:<14} {s.mode:<8} {s.questions:>5} {s.r1:>6.3f} {s.r5:>6.3f} "
                f"{s.r10:>6.3f} {s.mrr10:>7.3f} {s.answer_hit:>7.3f} {s.false_refusal:>8.3f} "
                f"{s.wrong_article:>9.3f} {caught:>7} {s.ece:>6.3f} {s.latency_median_ms:>6.1f}"
            )
    lines.append(
        "refused: answerable questions flagged unanswerable; caught: questions asked without "
        "their article that were flagged; ECE over both (hybrid)"
    )
    lines.append("")
    lines.append("paired t-test (ranx compare), p <= 0.05:")
    for report in reports:
        for t in report.tests:
            lines.append(
                f"  {report.case:<14} {t.a} vs {t.b} {t.metric:<7} {t.mean_a:.3f} vs "
                f"{t.mean_b:.3f}  p={t.p_value:.3g}  {t.verdict}"
            )
        if report.extra_documents:
            lines.append(
                f"  warning: {report.case}'s index holds {report.extra_documents} documents "
                "the set does not know"
            )
    return "\n".join(lines)
