"""Which writing systems a text uses: the one definition of the character ranges.

Every module that asks "is this Chinese, Japanese, Korean or Latin script?" builds its patterns
from the ranges here, so a character counts as the same script for the lexical analyzer, the
cross-lingual expansion, the fusion weights, the answer's language and the ingest line joiner.

* ``HAN``: CJK unified ideographs, extension A and the compatibility ideographs. Only the Basic
  Multilingual Plane: the analyzer's tokens and the index built from them are defined on it.
* ``KANA``: hiragana, katakana and the katakana phonetic extensions. Kana means Japanese.
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
from typing import Literal

_HAN_MAIN = "\u3400-\u4dbf\u4e00-\u9fff"  # extension A, unified ideographs
_HAN_COMPAT = "\uf900-\ufaff"
_FULLWIDTH = "\uff00-\uffef"  # halfwidth and fullwidth forms
# CJK radicals, punctuation, kana, bopomofo, Han extension A, Yijing symbols, unified ideographs.
_CJK_BLOCKS = "\u2e80-\u9fff"

HAN = _HAN_MAIN + _HAN_COMPAT
KANA = "\u3040-\u30ff\u31f0-\u31ff"
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
    "kana": re.compile(f"[{KANA}]"),
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
