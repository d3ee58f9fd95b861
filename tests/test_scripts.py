"""One definition of which script a character is (``qa.scripts``), read by every module."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eval.beir import language_label
from qa import scripts
from qa.scripts import main_script, script_of, scripts_in

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("text", "found", "main"),
    [
        ("経済産業省が発表した", {"kana", "han"}, "kana"),
        ("ｶﾀｶﾅ", set(), "other"),  # halfwidth katakana is kana only once NFKC folds it
        ("ㇰ", {"kana"}, "kana"),  # katakana phonetic extensions
        ("日本稀土依賴 MASGA", {"han", "latin"}, "han"),
        ("한국 MASGA", {"hangul", "latin"}, "hangul"),
        ("ＭＡＳＧＡ", {"latin"}, "latin"),
        ("Präsident", {"latin"}, "latin"),
        ("2025 — ?", set(), "other"),
    ],
)
def test_scripts_of_a_text(text: str, found: set[str], main: str) -> None:
    assert scripts_in(text) == found
    assert main_script(scripts_in(text)) == main == script_of(text)


def test_wide_text_holds_every_east_asian_script() -> None:
    wide = re.compile(f"[{scripts.WIDE}]")
    narrow = re.compile(f"[{scripts.WIDE_WITHOUT_HANGUL}]")
    for ch in "経済けいざいケイザイ한국豈，。（）Ａ":
        assert wide.match(ch), ch
    assert not narrow.match("한") and narrow.match("経") and narrow.match("Ａ")
    assert not wide.match("a") and not wide.match("é")


@pytest.mark.parametrize(
    ("text", "label"),
    [
        ("レアアースとは", "ja"),
        ("희토류 공급망", "ko"),
        ("稀土供应链", "zh"),
        ("Café rare earth", "latin"),
        ("Редкоземельные", "other"),
    ],
)
def test_beir_language_labels_come_from_the_same_ranges(text: str, label: str) -> None:
    assert language_label(text) == label


def test_no_module_defines_its_own_script_ranges() -> None:
    """Han, kana and Hangul code points are spelled out in ``qa/scripts.py`` only."""
    spelled = re.compile(r"\\u(?:3040|30ff|3400|4e00|9fff|ac00|d7af|f900)", re.IGNORECASE)
    offenders = [
        str(path.relative_to(ROOT))
        for folder in ("qa", "api", "eval")
        for path in sorted((ROOT / folder).rglob("*.py"))
        if path.name != "scripts.py" and spelled.search(path.read_text("utf-8"))
    ]
    assert offenders == []
