"""Which language a question is written in, as far as the answer's wording needs to know.

Kana means Japanese. Han without kana is Chinese: Traditional when it has a character that
OpenCC's Traditional -> Simplified table changes, Simplified when it has one the reverse
table changes, Traditional (the corpus's script) when every character is common to both.
Anything else is answered in English.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, Literal

from qa.errors import DependencyMissingError
from qa.scripts import han_characters, has_kana

Language = Literal["zh-Hant", "zh-Hans", "en", "ja"]
LANGUAGES: tuple[Language, ...] = ("zh-Hant", "zh-Hans", "en", "ja")


@lru_cache(maxsize=2)
def _opencc(config: str) -> Any:
    try:
        from opencc import OpenCC
    except ImportError:
        raise DependencyMissingError(
            "telling Traditional from Simplified needs OpenCC: "
            "pip install opencc-python-reimplemented"
        ) from None
    return OpenCC(config)


def question_language(question: str) -> Language:
    if has_kana(question):
        return "ja"
    han = han_characters(question)
    if not han:
        return "en"
    if _opencc("t2s").convert(han) != han:
        return "zh-Hant"
    if _opencc("s2t").convert(han) != han:
        return "zh-Hans"
    return "zh-Hant"


def traditional_form(text: str) -> str:
    """OpenCC's Simplified -> Traditional reading of ``text`` (phrases first, then characters)."""
    return str(_opencc("s2t").convert(text))
