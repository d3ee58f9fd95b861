"""The question analysed once, at the top of a search: every later stage reads the ``Query``."""

from __future__ import annotations

from typing import Any

from qa.crosslingual import Expander
from qa.language import question_language
from qa.lexical import analyze
from qa.scripts import scripts_in
from qa.types import Query


def analyze_query(question: str, expander: Expander | None = None, vector: Any = None) -> Query:
    """Scripts, language and lexical terms of ``question``; its dictionary translations when an
    ``expander`` is given (the lexical ranking runs); ``vector`` is its dense embedding, if any."""
    scripts = scripts_in(question)
    terms = tuple(analyze(question))
    translations = (
        tuple(expander.expand(question, scripts=scripts, terms=terms)) if expander else ()
    )
    return Query(
        text=question,
        translations=translations,
        vector=vector,
        terms=terms,
        scripts=scripts,
        language=question_language(question),
    )
