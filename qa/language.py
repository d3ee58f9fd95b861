"""Which language a question is written in, as far as the answer's wording needs to know.

Kana means Japanese. Han without kana is Chinese: Traditional when it has a character that
OpenCC's Traditional -> Simplified table changes, Simplified when it has one the reverse
table changes, Traditional (the corpus's script) when every character is common to both.
Anything else is answered in English.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Any, Literal

from qa.errors import DependencyMissingError
from qa.lexical import HAN_RANGES, KANA_RANGES

Language = Literal["zh-Hant", "zh-Hans", "en", "ja"]
LANGUAGES: tuple[Language, ...] = ("zh-Hant", "zh-Hans", "en", "ja")

_KANA = re.compile(f"[{KANA_RANGES}]")
_HAN = re.compile(f"[{HAN_RANGES}]")


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
    if _KANA.search(question):
        return "ja"
    if not _HAN.search(question):
        return "en"
    han = "".join(_HAN.findall(question))
    if _opencc("t2s").convert(han) != han:
        return "zh-Hant"
    if _opencc("s2t").convert(han) != han:
        return "zh-Hans"
    return "zh-Hant"
