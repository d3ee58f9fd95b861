"""Answers composed from a search result, every sentence of them cited to its exact span.

Extractive (the default, no model needed): the candidate sentences are the sentences of the
top passages, the same sentence spans the index stored vectors for. Each is scored by

    score = cos(sentence, question) + follow * cos(previous sentence, question)
            + lexical_weight * covered + quantity_bonus * states_it
            - rank_decay * (passage rank - 1) - footnote_penalty * in_footnotes

where ``covered`` is the IDF-weighted share of the question's terms (and, at half weight, its
dictionary translations) the sentence contains, ``states_it`` is 1 when the question asks for a
quantity (``qa.answerable``) and the sentence states one in that unit, and ``in_footnotes`` is
1 for a sentence of a footnotes block (a source, rarely a statement). A sentence inherits part
of the previous one's similarity because an answer often follows the sentence that restates the
question. Headings and fragments shorter than ``min_chars`` are never chosen. The best sentence
is chosen first; up to two more of the same document join it while they score within
``margin`` of it. The answer reads them in document order, none twice, each followed by its
marker ``[n]``; reference ``n`` carries the sentence's own citation (anchor, span, section,
page, the footnotes it cites).

When the search judged the question unanswerable the answer is a refusal in the question's
language naming the quantity the corpus does not state; the hits are then only the closest
passages and are never cited as if they answered.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qa.answerable import asked_quantities
from qa.chunk import sentence_spans
from qa.language import Language, traditional_form
from qa.lexical import analyze
from qa.passages import citation_for
from qa.refusal import answer_language, closest_text, elapsed_ms, refuse
from qa.types import Answer, Reference, SearchMode, SearchResult

if TYPE_CHECKING:
    from qa.llm import LLMSettings
    from qa.retrieve import Retriever

_VISIBLE = re.compile(r"\w")
_GROUPING = re.compile(r"(?<=\d),(?=\d{3})")


@dataclass(frozen=True)
class ExtractiveSettings:
    passages: int = 5  # how many top passages offer sentences
    max_sentences: int = 3
    lexical_weight: float = 0.5
    quantity_bonus: float = 0.15
    rank_decay: float = 0.03
    margin: float = 0.15  # a further sentence scores at least best - margin
    # Share of the previous sentence's similarity a sentence inherits: the answer often
    # follows the sentence that restates the question ("對台灣而言，日本的經驗亦提供了啟示。").
    follow: float = 0.25
    min_chars: int = 8  # shorter "sentences" are headings, list labels or stray markers
    # Sentences of a footnotes block are mostly bibliography: a source, not a statement.
    footnote_penalty: float = 0.1


def warm_up() -> None:
    """Load what the first answer would otherwise wait for (OpenCC's Simplified -> Traditional
    tables, about 40 ms): the server calls this before it serves."""
    traditional_form("预热")


def answer_question(
    retriever: Retriever,
    question: str,
    *,
    top_k: int = 5,
    mode: SearchMode = "hybrid",
    doc_ids: Sequence[str] | None = None,
    section_prefix: str | None = None,
    context: int = 0,
    settings: ExtractiveSettings | None = None,
) -> Answer:
    """Search, then compose the extractive answer (or the refusal) from the hits."""
    started = time.perf_counter()
    result = retriever.search(
        question,
        top_k=top_k,
        mode=mode,
        doc_ids=doc_ids,
        section_prefix=section_prefix,
        context=context,
    )
    return extractive_answer(retriever, result, settings, started=started)


def extractive_answer(
    retriever: Retriever,
    result: SearchResult,
    settings: ExtractiveSettings | None = None,
    *,
    started: float | None = None,
) -> Answer:
    """The refusal, or the best one to three sentences of the top passages, each cited."""
    if not result.answerable or not result.hits:
        return refuse(result, started)
    settings = settings or ExtractiveSettings()
    candidates = score_sentences(retriever, result, settings)
    chosen = choose(candidates, settings)
    language = answer_language(result)
    documents = retriever.index.documents
    references = tuple(  # citations only for the sentences chosen: they cost a section lookup
        Reference(
            n=n,
            text=c.text,
            citation=citation_for(documents[c.doc_id], c.start, c.end, c.kind),
            hit_rank=c.hit_rank,
            score=c.score,
        )
        for n, c in enumerate(chosen, start=1)
    )
    return Answer(
        question=result.question,
        text=join_sentences([f"{r.text}[{r.n}]" for r in references], language),
        method="extractive",
        language=language,
        references=references,
        search=result,
        took_ms=elapsed_ms(started, result),
    )


def stream_extractive(
    retriever: Retriever, result: SearchResult, settings: ExtractiveSettings | None = None
) -> Iterator[str | Answer]:
    """The answer's text piece by piece (a sentence and its marker at a time), then the
    ``Answer`` itself as the last item: the shape every answer stream has (``qa.generate``)."""
    answer = extractive_answer(retriever, result, settings)
    if answer.method == "refusal":
        yield answer.text
        if answer.search.hits:
            yield closest_text(answer)
    else:
        separator = "" if answer.language != "en" else " "
        for i, reference in enumerate(answer.references):
            yield f"{separator if i else ''}{reference.text}[{reference.n}]"
    yield answer


@dataclass(frozen=True)
class Candidate:
    """A sentence of a top passage: ``document.text[start:end] == text``."""

    text: str
    doc_id: str
    start: int
    end: int
    kind: str  # of its block: body, footnotes, author
    hit_rank: int
    score: float


def score_sentences(
    retriever: Retriever, result: SearchResult, settings: ExtractiveSettings
) -> list[Candidate]:
    """Every sentence of the top passages with its score, best first."""
    index = retriever.index
    query = result.query
    vector = query.vector if query is not None else None
    if vector is None:
        vector = retriever.embedder.encode_queries([result.question])[0]
    terms = _weighted_terms(retriever, result)
    total = sum(w for _, w in terms) or 1.0
    asked = asked_quantities(result.question)
    candidates: list[Candidate] = []
    hits = result.hits[: settings.passages]
    stored = retriever.sentence_vectors_of([(hit.rows, hit.text) for hit in hits])
    for hit, vectors in zip(hits, stored, strict=True):
        offset, kind = hit.citation.char_start, hit.citation.kind
        document = index.documents[hit.citation.doc_id]
        spans = sentence_spans(hit.text)
        similarities = vectors @ np.asarray(vector, dtype=np.float32)
        headings = {h.char_start for h in document.headings}
        previous = 0.0
        for (start, end), own in zip(spans, similarities, strict=True):
            similarity = float(own) + settings.follow * previous
            previous = float(own)
            text = hit.text[start:end]
            absolute = offset + start
            if len(_VISIBLE.findall(text)) < settings.min_chars or absolute in headings:
                continue
            plain = _plain(text)
            covered = sum(w for forms, w in terms if any(f in plain for f in forms)) / total
            states = any(q.stated.search(text) for q in asked)
            score = (
                float(similarity)
                + settings.lexical_weight * covered
                + (settings.quantity_bonus if states else 0.0)
                - settings.rank_decay * (hit.rank - 1)
                - (settings.footnote_penalty if kind == "footnotes" else 0.0)
            )
            candidates.append(
                Candidate(text, document.doc_id, absolute, offset + end, kind, hit.rank, score)
            )
    candidates.sort(key=lambda c: -c.score)
    return candidates


def choose(candidates: Sequence[Candidate], settings: ExtractiveSettings) -> list[Candidate]:
    """The best candidate, then those of the same document within ``margin`` of it, no
    sentence twice, in reading order. Sentences of other documents never join: two articles
    that share a phrase do not make one answer."""
    chosen: list[Candidate] = []
    seen: set[str] = set()
    for candidate in candidates:
        if chosen and candidate.score < chosen[0].score - settings.margin:
            break
        if chosen and candidate.doc_id != chosen[0].doc_id:
            continue
        key = "".join(candidate.text.split())
        if key in seen:
            continue
        seen.add(key)
        chosen.append(candidate)
        if len(chosen) == settings.max_sentences:
            break
    return sorted(chosen, key=lambda c: c.start)


def join_sentences(parts: Sequence[str], language: Language) -> str:
    """Chinese and Japanese sentences run on; others are separated by a space."""
    return ("" if language != "en" else " ").join(parts)


def _weighted_terms(
    retriever: Retriever, result: SearchResult
) -> list[tuple[tuple[str, ...], float]]:
    """The question's analysed terms with their IDF (dictionary translations at half weight),
    each in its Simplified form (the analyzer folds to it) and its Traditional one, so that a
    sentence is matched as written (``_plain``) instead of being folded through OpenCC, which
    costs more than the rest of the answer stage."""
    lexical = retriever.index.lexical
    query = result.query
    terms = query.terms if query is not None else tuple(analyze(result.question))
    weights: dict[str, float] = {}
    for term, weight in lexical.weights_of(terms).items():
        weights[term] = max(weights.get(term, 0.0), weight)
    translations = query.translations if query is not None else ()
    for term, weight in lexical.weights_of(translations).items():
        weights[term] = max(weights.get(term, 0.0), weight / 2)
    return [
        (tuple(dict.fromkeys((term, traditional_form(term)))), weight)
        for term, weight in weights.items()
    ]


def _plain(text: str) -> str:
    """Width and case folded, thousands separators dropped: as the analyzer sees text, less
    the Traditional -> Simplified step."""
    return _GROUPING.sub("", unicodedata.normalize("NFKC", text).lower())


def stream_answer(
    retriever: Retriever, result: SearchResult, llm: LLMSettings | None = None
) -> Iterator[str | Answer]:
    """Text pieces, then the ``Answer``: generative (``qa.generate``) when a model server is
    configured (``qa.llm.llm_settings``), extractive otherwise."""
    if llm is None:
        return stream_extractive(retriever, result)
    from qa.generate import stream_generative

    return stream_generative(retriever, result, llm)


def compose_answer(
    retriever: Retriever,
    result: SearchResult,
    llm: LLMSettings | None = None,
    *,
    started: float | None = None,
) -> Answer:
    """The whole answer at once, generative or extractive as ``stream_answer`` chooses."""
    if llm is None:
        return extractive_answer(retriever, result, started=started)
    from qa.generate import generative_answer

    return generative_answer(retriever, result, llm, started=started)
