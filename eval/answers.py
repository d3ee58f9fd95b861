"""Scoring composed answers on the gold set: answer hit rate and refusal rate.

- ``answer_hit_rate``: the share of answerable questions whose answer sentences contain the
  evidence: one evidence string (whitespace ignored) lies inside the text the chosen sentences
  cover in their document (sentences that are adjacent there count as one run of text), or in
  a footnote a chosen sentence cites. A refusal of an answerable question is a miss.
- ``refusal_rate``: the share of unanswerable questions the answer refuses.
- ``sentences``: the mean number of sentences in the answers given (not refusals).

The same evidence rule decides passage relevance in ``eval.gold``; here it is held to the one
to three sentences a reader sees instead of the whole passages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eval.evidence import holds_evidence
from qa.answer import ExtractiveSettings, extractive_answer
from qa.retrieve import Retriever
from qa.types import Answer, Document

if TYPE_CHECKING:  # eval.gold calls this module: no import back at run time
    from eval.gold import GoldQuestion

ANSWER_TOP_K = 5


@dataclass(frozen=True)
class AnswerScores:
    questions: int
    answerable: int
    unanswerable: int
    answer_hit_rate: float | None
    refusal_rate: float | None
    sentences: float | None
    misses: tuple[str, ...]  # answerable questions the answer missed


def answer_contains_evidence(
    question: GoldQuestion, answer: Answer, documents: Mapping[str, Document]
) -> bool:
    """Does the text the answer cites hold one of the question's evidence strings?"""
    if not answer.answerable:
        return False
    texts = []
    spans = sorted(
        (r.citation.doc_id, r.citation.char_start, r.citation.char_end) for r in answer.references
    )
    # Sentences that follow each other in one document are read as one run of text.
    runs: list[tuple[str, int, int]] = []
    for doc_id, start, end in spans:
        last = runs[-1] if runs else None
        if last and last[0] == doc_id and not documents[doc_id].text[last[2] : start].strip():
            runs[-1] = (doc_id, last[1], max(end, last[2]))
        else:
            runs.append((doc_id, start, end))
    texts += [documents[doc_id].text[start:end] for doc_id, start, end in runs]
    texts += [note.text for r in answer.references for note in r.citation.footnotes]
    return holds_evidence(question.evidence, texts)


def answer_gold(
    retriever: Retriever,
    questions: Sequence[GoldQuestion],
    settings: ExtractiveSettings | None = None,
) -> dict[str, Answer]:
    """The extractive answer to every question (hybrid search, top five passages)."""
    answers = {}
    for q in questions:
        result = retriever.search(q.question, top_k=ANSWER_TOP_K)
        answers[q.id] = extractive_answer(retriever, result, settings)
    return answers


def score_answers(
    questions: Sequence[GoldQuestion],
    answers: Mapping[str, Answer],
    documents: Mapping[str, Document],
) -> AnswerScores:
    answerable = [q for q in questions if q.answerable]
    unanswerable = [q for q in questions if not q.answerable]
    hits = [q for q in answerable if answer_contains_evidence(q, answers[q.id], documents)]
    refused = [q for q in unanswerable if not answers[q.id].answerable]
    given = [a for a in (answers[q.id] for q in questions) if a.answerable]
    return AnswerScores(
        questions=len(questions),
        answerable=len(answerable),
        unanswerable=len(unanswerable),
        answer_hit_rate=len(hits) / len(answerable) if answerable else None,
        refusal_rate=len(refused) / len(unanswerable) if unanswerable else None,
        sentences=sum(len(a.references) for a in given) / len(given) if given else None,
        misses=tuple(q.id for q in answerable if q not in hits),
    )


def evaluate_answers(
    retriever: Retriever,
    questions: Sequence[GoldQuestion],
    settings: ExtractiveSettings | None = None,
) -> dict[str, AnswerScores]:
    """Scores per split present in ``questions`` (dev, test) and over all of them."""
    answers = answer_gold(retriever, questions, settings)
    documents = retriever.index.documents
    scopes: dict[str, AnswerScores] = {}
    for split in sorted({q.split for q in questions}):
        subset = [q for q in questions if q.split == split]
        scopes[split] = score_answers(subset, answers, documents)
    scopes["all"] = score_answers(questions, answers, documents)
    return scopes
