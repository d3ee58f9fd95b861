"""Is an extracted text layer text? Signs that a file's characters are not the ones it shows.

A PDF can have a text layer and still say nothing: a font whose CMap sends glyphs to the wrong
code points (reportlab's MSung-Light under its default Simplified ``UniGB-UCS2-H`` CMap gives
"湛似噴緯詼煆…" for "日本在重稀土…"), an OCR layer of a scan that guessed, glyphs with no Unicode
mapping at all. Indexed silently, such a document answers nothing and matches noise, so the
reader attaches these warnings to the ``Document``; ``qa ingest`` prints them and
``GET /v1/documents`` lists them. The document is still indexed: a warning can be wrong, and a
listed document with a reason is easier to act on than a missing one.

Signals, each over the text as kept:

- **Han pairs**: of the adjacent Han character pairs (folded to Simplified as the lexical
  analyzer folds them), the share that is a word or a word's beginning in jieba's dictionary.
  Chinese and Japanese prose scores about 0.5 (both corpus documents 0.51-0.52, each gold
  question with 5 pairs or more at least 0.25); characters from a wrong CMap score 0.0. Below
  ``MIN_KNOWN_PAIRS`` over at least ``MIN_PAIRS`` pairs, the text is garbled. A dictionary, not a
  character frequency list, because wrong-CMap characters are often common ones (嫂, 岡, 此):
  it is their neighbours that never occur together.
- **Replacement and private-use characters** (U+FFFD, U+E000-U+F8FF, planes 15-16): an extractor
  that could not map a glyph, or a font that maps it to a private code point. At least
  ``MIN_ODD`` and more than ``MAX_ODD_SHARE`` of the non-space characters (one odd symbol in a
  short page is not a broken font).
- **Unmapped glyphs** (pdfminer's ``(cid:N)``, dropped from the text): as many, of the glyphs.

Latin text is not judged (no word list ships with the project); an OCR layer of Latin text that
is wrong letter by letter goes unreported.
"""

from __future__ import annotations

import re

from qa.lexical import fold, word_prefixes
from qa.scripts import HAN

MIN_PAIRS = 50
MIN_KNOWN_PAIRS = 0.15
MAX_ODD_SHARE = 0.01
MIN_ODD = 5

_HAN_RUN = re.compile(f"[{HAN}]{{2,}}")
_ODD = re.compile("[\ufffd\ue000-\uf8ff\U000f0000-\U0010ffff]")


def known_pair_share(text: str) -> tuple[float, int]:
    """Share of adjacent Han pairs that jieba's dictionary knows, and how many pairs there were."""
    runs = _HAN_RUN.findall(fold(text))
    pairs = [run[i : i + 2] for run in runs for i in range(len(run) - 1)]
    if not pairs:
        return 1.0, 0
    known = word_prefixes()
    return sum(pair in known for pair in pairs) / len(pairs), len(pairs)


def text_layer_warnings(text: str, *, unmapped: int = 0) -> tuple[str, ...]:
    """Why ``text`` (a text layer, ``unmapped`` glyphs already dropped) is probably not text."""
    warnings: list[str] = []
    visible = sum(not ch.isspace() for ch in text)
    if unmapped >= MIN_ODD and unmapped > MAX_ODD_SHARE * (visible + unmapped):
        warnings.append(
            f"{unmapped} of {visible + unmapped} glyphs have no Unicode mapping and were dropped "
            "(fonts without a ToUnicode map): the text is incomplete"
        )
    odd = len(_ODD.findall(text))
    if odd >= MIN_ODD and odd > MAX_ODD_SHARE * visible:
        warnings.append(
            f"{odd} of {visible} characters are replacement or private-use characters: "
            "the text layer does not map its glyphs to real characters"
        )
    if _HAN_RUN.search(text):  # the dictionary is loaded only for text with Han characters
        share, pairs = known_pair_share(text)
        if pairs >= MIN_PAIRS and share < MIN_KNOWN_PAIRS:
            warnings.append(
                f"garbled text layer: {share:.0%} of {pairs} Han character pairs occur in "
                f"words (Chinese or Japanese prose: about 50%); the fonts probably map glyphs "
                "to the wrong characters, or OCR failed. Re-export the PDF with embedded "
                "Unicode fonts, or OCR it again"
            )
    return tuple(warnings)
