"""Which writing systems a text uses: the one definition of the character ranges.

Every module that asks "is this Chinese, Japanese, Korean or Latin script?" builds its patterns
from the ranges here, so a character counts as the same script for the lexical analyzer, the
cross-lingual expansion, the fusion weights, the answer's language and the ingest line joiner.

* ``HAN``: CJK unified ideographs, extension A and the compatibility ideographs. Only the Basic
  Multilingual Plane: the analyzer's tokens and the index built from them are defined on it.
* ``KANA``: hiragana, katakana and the katakana phonetic extensions. Kana means Japanese, the
  middle dot ・ excepted (``KANA_LETTERS``): Chinese text writes it too.
* ``HANGUL``: precomposed Hangul syllables (how Korean text is written; not the jamo).
* ``LATIN``: the basic Latin letters, ASCII and fullwidth. A question "written in Latin letters"
  has one of these; accented letters come with basic ones in every Latin-script language.
* ``WIDE``: East Asian text that runs on without spaces: every Han, kana and Hangul range above
  plus CJK radicals, punctuation, bopomofo and the fullwidth forms. Two lines of it join with no
  space between them (HTML and PDF ingest).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from typing import Literal

_HAN_MAIN = "\u3400-\u4dbf\u4e00-\u9fff"  # extension A, unified ideographs
_HAN_COMPAT = "\uf900-\ufaff"
_FULLWIDTH = "\uff00-\uffef"  # halfwidth and fullwidth forms
# CJK radicals, punctuation, kana, bopomofo, Han extension A, Yijing symbols, unified ideographs.
_CJK_BLOCKS = "\u2e80-\u9fff"

HAN = _HAN_MAIN + _HAN_COMPAT
KANA = "\u3040-\u30ff\u31f0-\u31ff"
# The kana that say "Japanese": every kana but the middle dot U+30FB, which Chinese text also
# writes between the parts of a foreign name (唐納·川普 is often typed 唐納・川普).
KANA_LETTERS = "\u3040-\u30fa\u30fc-\u30ff\u31f0-\u31ff"
# Katakana letters and the prolonged sound mark (no middle dot): the script of Japanese loanwords.
KATAKANA = "\u30a1-\u30fa\u30fc\u31f0-\u31ff"
HANGUL = "\uac00-\ud7af"
LATIN = "A-Za-z\uff21-\uff3a\uff41-\uff5a"
WIDE = _CJK_BLOCKS + HANGUL + _HAN_COMPAT + _FULLWIDTH
# CJK punctuation, kana, bopomofo and Han: a CC-CEDICT gloss with one of them is a cross
# reference to another headword, not a translation.
CJK_GLOSS_MARKS = "\u3000-\u9fff" + _HAN_COMPAT
# Wide text apart from Hangul and the compatibility ideographs: what a PDF text layer may
# separate with NUL gaps that mean nothing (pdfminer's CID fonts).
WIDE_WITHOUT_HANGUL = _CJK_BLOCKS + _FULLWIDTH

Script = Literal["kana", "han", "hangul", "latin", "other"]

_PATTERNS: dict[Script, re.Pattern[str]] = {
    "kana": re.compile(f"[{KANA_LETTERS}]"),
    "han": re.compile(f"[{HAN}]"),
    "hangul": re.compile(f"[{HANGUL}]"),
    "latin": re.compile(f"[{LATIN}]"),
}


def scripts_in(text: str) -> frozenset[Script]:
    """Which of ``HAN``, ``KANA``, ``HANGUL`` and ``LATIN`` ``text`` has a character of."""
    return frozenset(name for name, pattern in _PATTERNS.items() if pattern.search(text))


def main_script(scripts: frozenset[Script]) -> Script:
    """The script that decides how a text is read: kana (Japanese, whatever else it holds), then
    Han (Chinese), then Hangul, then Latin letters; "other" when it has none of them."""
    order: tuple[Script, ...] = ("kana", "han", "hangul", "latin")
    return next((name for name in order if name in scripts), "other")


def script_of(text: str) -> Script:
    return main_script(scripts_in(text))


def corpus_script(texts: Iterable[str], *, sample_chars: int = 200_000) -> Script:
    """The script a corpus is written in, from up to ``sample_chars`` of its text: kana when
    kana letters are at least a fifth of its Han and kana (Japanese prose is mostly kana; a
    Chinese text citing Japanese titles has a few), else Han, Hangul or Latin, whichever has
    the most characters. Fusion weighs words matching words only within one script."""
    counts = dict.fromkeys(("kana", "han", "hangul", "latin"), 0)
    seen = 0
    for text in texts:
        part = text[: sample_chars - seen]
        for name in counts:
            counts[name] += len(_PATTERNS[name].findall(part))  # type: ignore[index]
        seen += len(part)
        if seen >= sample_chars:
            break
    if counts["kana"] and counts["kana"] * 5 >= counts["kana"] + counts["han"]:
        return "kana"
    best: Script = max(("han", "hangul", "latin"), key=lambda name: counts[name])
    return best if counts[best] else "other"


def same_script(question: Script, corpus: Script) -> bool:
    """Can the question's words match the corpus's word for word? Yes within one script, and
    for a Chinese question over a Japanese corpus (kanji are Han characters)."""
    return question == corpus or (question == "han" and corpus == "kana")


def shares_characters(question: Script, corpus: Script) -> bool:
    """Can any of the question's characters occur in the corpus's words? Within one script,
    and between Chinese and Japanese (kanji are Han characters); not across Latin, Han and
    Hangul, where only a multilingual model connects the two."""
    return same_script(question, corpus) or {question, corpus} <= {"han", "kana"}


def has_kana(text: str) -> bool:
    return _PATTERNS["kana"].search(text) is not None


def has_han(text: str) -> bool:
    return _PATTERNS["han"].search(text) is not None


def han_characters(text: str) -> str:
    """The Han characters of ``text``, in order."""
    return "".join(_PATTERNS["han"].findall(text))


def all_letters_latin(text: str) -> bool:
    """Whether ``text`` has letters and every one is a Latin letter of any kind (é, ß, ł too),
    by its Unicode name."""
    names = [unicodedata.name(ch, "") for ch in text if ch.isalpha()]
    return bool(names) and all(n.startswith("LATIN") for n in names)
