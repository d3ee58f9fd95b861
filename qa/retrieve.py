"""Dense, lexical and hybrid retrieval over a loaded ``Index`` -> ranked, citable hits."""

from __future__ import annotations

import difflib
import threading
import time
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from qa.answerable import QUANTITY_PASSAGES, asked_quantities, judge, quantity_in_passages
from qa.chunk import sentence_spans
from qa.crosslingual import Expander
from qa.embed import Embedder
from qa.embed.batching import QueryBatcher
from qa.errors import ConfigError, DocumentNotFoundError, InvalidQueryError
from qa.lexicon import mine_lexicon
from qa.passages import JOIN_WINDOW, Joined, citation_for, context_around
from qa.query import analyze_query
from qa.scripts import Script, corpus_script, has_kana, same_script, shares_characters
from qa.store import Store
from qa.threads import apply as apply_thread_limits
from qa.types import (
    SEARCH_MODES,
    Document,
    Hit,
    Query,
    SearchMode,
    SearchResult,
)

_COMPUTE = threading.Lock()
MAX_QUESTION_CHARS = 2000
MAX_TOP_K = 50
MAX_CONTEXT_SENTENCES = 10


@dataclass(frozen=True)
class DenseSettings:
    """How a passage's dense ranking score is computed from the question's vector."""

    # Score = (1 - s) * chunk similarity + s * best sentence similarity: the model was trained on
    # sentences, and one sentence often carries the whole answer.
    sentence_weight: float = 0.5
    # Ranking score = that similarity - h * the passage's hubness (``qa.hubness``); 0.5 would be
    # CSLS (2 cos - r). Passages close to the whole corpus (section openings, runs of footnote
    # titles) stop coming first for questions they do not answer. The discount is kept small:
    # a larger one also pushes down passages that do answer.
    hubness_weight: float = 0.25


@dataclass(frozen=True)
class FusionSettings:
    """Reciprocal rank fusion: ``sum(weight / (k + rank))`` over the first ``candidates`` of the
    dense and the lexical ranking, the lexical weight chosen by the language pair: the script
    of the question against the script of the corpus (``qa.scripts.corpus_script``).

    Words match words only within one script: BM25 is the sharper signal there (names, rare
    words), the multilingual model decides across scripts. Weights were learned on the dev
    halves of DRCD, XQuAD and JSQuAD (``eval/EXPERIMENTS.md``).
    """

    k: int = 10
    candidates: int = 100
    dense_weight: float = 1.0
    # The question is written in the corpus's script (Chinese over Chinese, Japanese over
    # Japanese, English over English).
    lexical_weight: float = 4.0
    # Latin letters over a CJK corpus, matched through dictionary translations
    # (``qa.crosslingual``): translations of common words are noisy, so the dense ranking leads.
    lexical_weight_translated: float = 0.5
    # Latin letters and no translation over a CJK corpus: its lexical hits are stray Latin names.
    lexical_weight_latin: float = 0.25
    # Japanese over a Chinese corpus: only its kanji can match word for word.
    lexical_weight_kana: float = 0.5

    def lexical_weight_for(self, query: Query, corpus: Script = "han") -> float:
        """The lexical ranking's weight for this question's script against the corpus's."""
        script = query.script
        if same_script(script, corpus):
            return self.lexical_weight
        if script == "kana":
            return self.lexical_weight_kana
        if query.translations:
            return self.lexical_weight_translated
        if script in ("han", "hangul"):
            return self.lexical_weight
        return self.lexical_weight_latin


@dataclass(frozen=True)
class ExpansionSettings:
    """Which extra lexical terms a question gets (``qa.crosslingual``)."""

    # CC-CEDICT translations of English questions and the Traditional forms of Japanese kanji:
    # otherwise neither can match the corpus's Chinese words.
    cross_lingual: bool = True
    # The kana terms (kana bigrams, particles) of a Japanese question over a corpus that is not
    # written in Japanese. In a Chinese corpus they match only Japanese footnote titles, which
    # then outrank the body text the question's kanji and translations find. Over a Japanese
    # corpus a question keeps its kana terms whatever this says.
    kana_terms: bool = False


@dataclass(frozen=True)
class RetrievalSettings:
    """Every retrieval setting, grouped by the stage it governs. ``qa eval --fusion NAME=VALUE``
    names a setting by its own name, whichever group holds it (``retrieval_settings``)."""

    dense: DenseSettings = DenseSettings()
    fusion: FusionSettings = FusionSettings()
    expansion: ExpansionSettings = ExpansionSettings()

    def with_(self, **changes: Any) -> RetrievalSettings:
        """These settings with some changed, each named by its own name (``k=60``)."""
        groups: dict[str, dict[str, Any]] = {}
        for name, value in changes.items():
            group = _GROUP_OF.get(name)
            if group is None:
                raise ConfigError(f"unknown retrieval setting {name!r}")
            groups.setdefault(group, {})[name] = value
        return replace(self, **{g: replace(getattr(self, g), **c) for g, c in groups.items()})

    def flat(self) -> dict[str, Any]:
        """Every setting by its own name (what a report records)."""
        return {name: getattr(getattr(self, group), name) for name, group in _GROUP_OF.items()}


_GROUP_OF: dict[str, str] = {
    f.name: group
    for group, kind in (
        ("fusion", FusionSettings),
        ("dense", DenseSettings),
        ("expansion", ExpansionSettings),
    )
    for f in fields(kind)
}
_TYPE_OF: dict[str, str] = {
    f.name: str(f.type)  # annotations are strings here (postponed evaluation)
    for kind in (FusionSettings, DenseSettings, ExpansionSettings)
    for f in fields(kind)
}


def retrieval_settings(overrides: Sequence[str]) -> RetrievalSettings:
    """``RetrievalSettings`` with ``name=value`` overrides (``qa eval --fusion``), checked."""
    changes: dict[str, Any] = {}
    for item in overrides:
        name, sep, value = item.partition("=")
        name, value = name.strip(), value.strip()
        if not sep or name not in _TYPE_OF:
            raise ConfigError(
                f"fusion setting must be NAME=VALUE with NAME one of {', '.join(_TYPE_OF)}; "
                f"got {item!r}"
            )
        kind = _TYPE_OF[name]
        try:
            if kind == "bool":
                if value.lower() not in ("true", "false"):
                    raise ValueError
                changes[name] = value.lower() == "true"
            else:
                changes[name] = int(value) if kind == "int" else float(value)
        except ValueError:
            wanted = {"bool": "true or false", "int": "a whole number"}.get(kind, "a number")
            raise ConfigError(f"fusion setting {name} must be {wanted}, got {value!r}") from None
    return RetrievalSettings().with_(**changes)


@dataclass(frozen=True)
class Signals:
    """Each ranking's scores by chunk row, and the fused ranking the hits come from."""

    dense: dict[int, float]  # similarity less the hubness discount: what the ranking used
    lexical: dict[int, float]
    fused: dict[int, float]
    ranked: list[tuple[int, float]]
    best_similarity: float | None  # undiscounted: the scale ``answerable`` is calibrated on


class Retriever:
    def __init__(
        self, index: Store, embedder: Embedder, settings: RetrievalSettings | None = None
    ) -> None:
        self.index = index
        self.embedder = embedder
        # Questions asked at once share one encoder batch, computed under _COMPUTE.
        self._questions = QueryBatcher(embedder, lock=_COMPUTE)
        self.settings = settings or RetrievalSettings()
        self._expander: Expander | None = None
        self._expander_lock = threading.Lock()
        self._corpus_script: Script | None = None

    @property
    def corpus_script(self) -> Script:
        """The script the corpus is written in (``qa.scripts.corpus_script``), found once."""
        if self._corpus_script is None:
            self._corpus_script = corpus_script(d.text for d in self.index.documents.values())
        return self._corpus_script

    def warm_up(self) -> None:
        """Build what the first question would otherwise wait for: the dictionary tables and,
        through the Latin-script "warm up", the language identifier (about 0.6 s, once)."""
        analyze_query("warm up", self._expansion())

    def _expansion(self) -> Expander | None:
        """The cross-lingual expander of this index (built on first use), or None when off."""
        if not self.settings.expansion.cross_lingual:
            return None
        with self._expander_lock:
            if self._expander is None:
                lexicon = mine_lexicon(self.index.documents.values())
                self._expander = Expander(self.index.lexical.vocabulary, lexicon=lexicon)
        return self._expander

    def search(
        self,
        question: str,
        *,
        top_k: int = 5,
        mode: SearchMode = "hybrid",
        doc_ids: Sequence[str] | None = None,
        section_prefix: str | None = None,
        context: int = 0,
    ) -> SearchResult:
        started = time.perf_counter()
        question = validate_question(question)
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidQueryError(f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}")
        if mode not in SEARCH_MODES:
            raise InvalidQueryError(f"mode must be one of {', '.join(SEARCH_MODES)}, got {mode!r}")
        if not 0 <= context <= MAX_CONTEXT_SENTENCES:
            raise InvalidQueryError(f"context must be between 0 and {MAX_CONTEXT_SENTENCES}")
        allowed = self._allowed_rows(doc_ids, section_prefix)
        timings: dict[str, float] = {}
        query = self._analyze(question, mode, allowed, timings)
        signals = self._signals(query, mode, top_k, allowed, timings)
        tick = time.perf_counter()
        # The quantity check reads the passages a client is shown: the first QUANTITY_PASSAGES
        # hits after overlapping and repeated chunks are dropped, never a chunk that was dropped.
        # A smaller top_k does not narrow it (the verdict is about the question, so top_k=1 and
        # top_k=5 agree); the extra hits are assembled for the check and not returned.
        judged = self._hits(signals, max(top_k, QUANTITY_PASSAGES), context)
        hits = judged[:top_k]
        timings["assemble"] = (time.perf_counter() - tick) * 1000
        asked = asked_quantities(question)
        quantity_stated = quantity_in_passages(
            asked, (hit.text for hit in judged[:QUANTITY_PASSAGES])
        )
        answerable, confidence = judge(
            self.embedder.model_id,
            signals.best_similarity,
            self._coverage(query, signals.ranked[:3]),
            quantity_stated,
            cross_script=not shares_characters(query.script, self.corpus_script),
        )
        unstated = () if quantity_stated is not False else tuple(q.name for q in asked)
        took_ms = (time.perf_counter() - started) * 1000
        timings["total"] = took_ms
        return SearchResult(
            question=question,
            mode=mode,
            hits=hits,
            took_ms=took_ms,
            answerable=answerable,
            confidence=confidence,
            unstated_quantities=unstated,
            timings_ms={k: round(v, 3) for k, v in timings.items()},
            query=query,
        )

    def sentence_vectors_of(self, passages: Sequence[tuple[Sequence[int], str]]) -> list[Any]:
        """The vectors of each (rows, text) passage's sentences: those the store keeps for its
        chunk rows, fetched in one call for all passages (one Milvus request, not one per
        passage). A passage joining overlapping chunks takes each sentence once, from the first
        chunk that holds it. A passage without rows, or whose text no longer splits into the
        sentences stored, is embedded now."""
        wanted = sorted({row for rows, _ in passages for row in rows})
        stored: dict[int, Any] = {}
        if wanted:
            vectors, counts = self.index.sentence_rows(np.asarray(wanted, dtype=np.int64))
            parts = np.split(vectors, np.cumsum(counts)[:-1])
            stored = dict(zip(wanted, parts, strict=True))
        found = []
        for rows, text in passages:
            spans = sentence_spans(text)
            kept = self._stitched(rows, stored) if rows else None
            if kept is None or len(kept) != len(spans):
                kept = self.embedder.encode_passages([text[a:b] for a, b in spans])
            found.append(kept)
        return found

    def _stitched(self, rows: Sequence[int], stored: dict[int, Any]) -> Any:
        """The stored sentence vectors of chunks that follow each other, each sentence once."""
        if len(rows) == 1:
            return stored[rows[0]]
        seen: set[int] = set()
        picked = []
        for row in sorted(rows, key=lambda r: self.index.chunks[r].char_start):
            chunk = self.index.chunks[row]
            for (start, _), vector in zip(sentence_spans(chunk.text), stored[row], strict=False):
                if chunk.char_start + start not in seen:
                    seen.add(chunk.char_start + start)
                    picked.append(vector)
        return np.stack(picked) if picked else None

    def document(self, doc_id: str) -> Document:
        try:
            return self.index.documents[doc_id]
        except KeyError:
            raise DocumentNotFoundError(doc_id) from None

    def _allowed_rows(
        self, doc_ids: Sequence[str] | None, section_prefix: str | None
    ) -> npt.NDArray[np.int64] | None:
        """The rows a filter allows, sorted; found from each document's run of rows and the
        index's table of distinct sections, never by visiting every chunk."""
        if not doc_ids and not section_prefix:
            return None
        index = self.index
        if doc_ids:
            unknown = sorted(set(doc_ids) - set(index.documents))
            if unknown:
                raise InvalidQueryError(f"unknown doc_ids: {', '.join(unknown)}")
        wanted = sorted(set(doc_ids or ()))
        if wanted:
            runs = [index.chunks.doc_rows.get(doc_id, (0, 0)) for doc_id in wanted]
            rows = np.concatenate(
                [np.arange(0, 0, dtype=np.int64)]
                + [np.arange(first, first + n, dtype=np.int64) for first, n in runs]
            )
            rows.sort()
        else:
            rows = np.arange(len(index.chunks), dtype=np.int64)
        prefix = (section_prefix or "").strip()
        if not prefix:
            return rows
        matching = [
            i for i, name in enumerate(index.chunks.sections) if section_matches(name, prefix)
        ]
        section_of = index.chunks.section_ids[rows]
        allowed = rows[np.isin(section_of, np.asarray(matching, dtype=section_of.dtype))]
        if len(rows) and not len(allowed):  # a filter that can match nothing is a mistake
            names = _section_names(index.chunks.sections[i] for i in np.unique(section_of).tolist())
            listed = "; ".join(_closest(prefix, names, 6)) or "none (no headings)"
            raise InvalidQueryError(
                f"section_prefix {prefix!r} matches no section"
                + (" of the documents in doc_ids" if wanted else "")
                + f"; sections include: {listed}"
            )
        return allowed

    def _analyze(
        self,
        question: str,
        mode: SearchMode,
        allowed: npt.NDArray[np.int64] | None,
        timings: dict[str, float],
    ) -> Query:
        """The question analysed once: its vector when a dense ranking runs over some rows, its
        terms, and its translations when a lexical ranking runs."""
        vector = None
        if mode in ("dense", "hybrid") and self.index.chunks and (allowed is None or len(allowed)):
            # Under _COMPUTE, one BLAS/FAISS user at a time (its threads already fill the
            # cores), with the questions that arrive meanwhile; the wait is part of "embed".
            tick = time.perf_counter()
            vector = self._questions.encode_queries([question])[0]
            timings["embed"] = (time.perf_counter() - tick) * 1000
        tick = time.perf_counter()
        expander = self._expansion() if mode in ("lexical", "hybrid") else None
        query = analyze_query(question, expander, vector)
        timings["analyze"] = (time.perf_counter() - tick) * 1000
        return query

    def _signals(
        self,
        query: Query,
        mode: SearchMode,
        top_k: int,
        allowed: npt.NDArray[np.int64] | None,
        timings: dict[str, float],
    ) -> Signals:
        fusion = self.settings.fusion
        depth = max(top_k * 3, fusion.candidates)
        similarity: dict[int, float] = {}
        lexical: dict[int, float] = {}
        if mode in ("dense", "hybrid"):
            similarity = self._dense(query, depth, allowed, timings)
        hub, weight = self.index.hubness, self.settings.dense.hubness_weight
        dense = {row: score - weight * float(hub[row]) for row, score in similarity.items()}
        if mode in ("lexical", "hybrid"):
            tick = time.perf_counter()
            lexical = self._lexical(query, depth, allowed)
            timings["lexical"] = (time.perf_counter() - tick) * 1000
        tick = time.perf_counter()
        fused = self._fuse(query, dense, lexical) if mode == "hybrid" else {}
        ranked = _by_score({"dense": dense, "lexical": lexical, "hybrid": fused}[mode])
        timings["fuse"] = (time.perf_counter() - tick) * 1000
        best = max(similarity.values()) if similarity else None
        return Signals(dense, lexical, fused, ranked, best)

    def _dense(
        self,
        query: Query,
        depth: int,
        allowed: npt.NDArray[np.int64] | None,
        timings: dict[str, float],
    ) -> dict[int, float]:
        """Blended similarity of the candidates to the question's vector."""
        if query.vector is None:  # no rows to rank
            return {}
        with _COMPUTE:
            apply_thread_limits()
            tick = time.perf_counter()
            found = self.index.dense_top(query.vector, depth, allowed)
            blended = self._with_sentences(found, query.vector)
            timings["dense"] = (time.perf_counter() - tick) * 1000
        return blended

    def _with_sentences(self, found: list[tuple[int, float]], vector: Any) -> dict[int, float]:
        """Blend each candidate's chunk similarity with its best sentence's (all candidates'
        sentence rows gathered and scored in one product)."""
        weight = self.settings.dense.sentence_weight
        if not found or weight == 0:
            return dict(found)
        rows = np.fromiter((row for row, _ in found), dtype=np.int64, count=len(found))
        vectors, counts = self.index.sentence_rows(rows)
        similarity = vectors @ vector
        best = np.full(len(rows), -np.inf, dtype=np.float32)
        np.maximum.at(best, np.repeat(np.arange(len(rows)), counts), similarity)
        return {
            row: (1 - weight) * score + weight * float(top) if count else score
            for (row, score), top, count in zip(found, best.tolist(), counts.tolist(), strict=True)
        }

    def _lexical(
        self, query: Query, depth: int, allowed: npt.NDArray[np.int64] | None
    ) -> dict[int, float]:
        """BM25 scores of the ``depth`` best rows (among ``allowed``), best first."""
        terms = query.terms
        japanese_corpus = self.corpus_script == "kana"
        if query.script == "kana" and not (self.settings.expansion.kana_terms or japanese_corpus):
            terms = tuple(t for t in terms if not has_kana(t))
        return self.index.lexical.top([*terms, *query.translations], depth, allowed)

    def _fuse(
        self, query: Query, dense: dict[int, float], lexical: dict[int, float]
    ) -> dict[int, float]:
        fused: dict[int, float] = {}
        fusion = self.settings.fusion
        lexical_weight = fusion.lexical_weight_for(query, self.corpus_script)
        for weight, ranking in ((fusion.dense_weight, dense), (lexical_weight, lexical)):
            for rank, (row, _) in enumerate(_by_score(ranking), start=1):
                fused[row] = fused.get(row, 0.0) + weight / (fusion.k + rank)
        return fused

    def _coverage(self, query: Query, top: list[tuple[int, float]]) -> float:
        """IDF-weighted share of the question's own terms found together in one top passage
        (not its dictionary translations: common words translate to common Chinese words,
        which would make any English question look answerable)."""
        weights = self.index.lexical.term_weights(query.terms)
        total = sum(w for _, w in weights)
        if not total or not top:
            return 0.0
        present = self.index.lexical.term_ids_of([row for row, _ in top])
        return max(sum(w for t, w in weights if t in terms) / total for terms in present)

    def _hits(self, signals: Signals, top_k: int, context: int) -> tuple[Hit, ...]:
        """Best first. A chunk that overlaps a passage already shown joins it (``qa.passages``:
        the answer is often in the neighbour of the chunk that restates the question); a chunk
        repeating text already shown (a copied file) is dropped. The first ``JOIN_WINDOW``
        chunks are always assembled, so ``top_k`` only cuts the list: hit n is the same
        passage for every ``top_k`` >= n."""
        passages: list[Joined] = []
        seen_texts: set[str] = set()
        for position, (row, score) in enumerate(signals.ranked):
            if len(passages) >= top_k and position >= JOIN_WINDOW:
                break
            chunk = self.index.chunks[row]
            touching = [p for p in passages if p.overlaps(chunk)]
            if touching:  # joins the one passage it overlaps, if that may grow; else dropped
                if position < JOIN_WINDOW and len(touching) == 1 and touching[0].takes(chunk):
                    touching[0].join(row, chunk)
                continue
            if chunk.text in seen_texts:
                continue
            seen_texts.add(chunk.text)
            passages.append(Joined(row, score, chunk))
        hits = []
        for rank, passage in enumerate(passages[:top_k], start=1):
            document = self.index.documents[passage.doc_id]
            start, end = passage.start, passage.end
            scores = {
                "dense": signals.dense.get(passage.row),
                "lexical": signals.lexical.get(passage.row),
                "fused": signals.fused.get(passage.row),
            }
            hits.append(
                Hit(
                    rank=rank,
                    score=passage.score,
                    text=document.text[start:end],
                    citation=citation_for(document, start, end, passage.kind),
                    scores={k: v for k, v in scores.items() if v is not None},
                    context=context_around(document, start, end, context) if context else None,
                    row=passage.row,
                    rows=tuple(passage.rows),
                )
            )
        return tuple(hits)


def validate_question(question: str) -> str:
    stripped = question.strip()
    if not stripped:
        raise InvalidQueryError("question must contain some non-whitespace text")
    # Letters, numbers, punctuation or symbols; not only control, format or combining marks.
    if not any(unicodedata.category(ch)[0] in "LNPS" for ch in stripped):
        raise InvalidQueryError("question must contain some visible text")
    if len(question) > MAX_QUESTION_CHARS:
        raise InvalidQueryError(
            f"question is {len(question)} characters; the limit is {MAX_QUESTION_CHARS}"
        )
    return stripped


def _by_score(scores: dict[int, float]) -> list[tuple[int, float]]:
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


SECTION_SEPARATOR = " > "


def section_matches(section: str, prefix: str) -> bool:
    """``section_prefix`` matching: the whole path (``outer > inner``) starts with ``prefix``, or
    one of its headings does, at any level ("肆" finds "第六章 … > 肆、軍民融合…")."""
    return section.startswith(prefix) or any(
        heading.startswith(prefix) for heading in section.split(SECTION_SEPARATOR)
    )


def _section_names(sections: Iterable[str]) -> list[str]:
    """Each heading of the section paths once, in order of appearance."""
    names = (name for section in sections for name in section.split(SECTION_SEPARATOR))
    return [name for name in dict.fromkeys(names) if name]


def _closest(prefix: str, names: list[str], n: int) -> list[str]:
    """Up to ``n`` names, those most like ``prefix`` first, then in order of appearance."""
    close = difflib.get_close_matches(prefix, names, n=n, cutoff=0.3)
    return [*close, *(name for name in names if name not in close)][:n]
