"""The readable text beside each MCP tool's structured result: what a client that shows only
text to its model gets. Every passage keeps its anchor, so the text alone is enough to cite."""

from __future__ import annotations

from api.schemas import DocumentsPublic
from qa.passages import Passage
from qa.refusal import closest_text
from qa.types import Answer, Citation, SearchResult


def where(c: Citation) -> str:
    """``Title > Section, lines 3-4, p. 2, notes 17, 14``: a citation in one line (with the
    slide, sheet, table and rows where the format has them)."""
    # The section path of a document with a title heading starts with the title.
    path = c.section if c.section.startswith(c.title) else f"{c.title} > {c.section}"
    parts = [path.strip(" >")]
    same = c.line_start == c.line_end
    parts.append(f"line {c.line_start}" if same else f"lines {c.line_start}-{c.line_end}")
    if c.page is not None:
        parts.append(
            f"p. {c.page}" if c.page_end in (None, c.page) else f"pp. {c.page}-{c.page_end}"
        )
    if c.slide is not None:
        parts.append(f"slide {c.slide}")
    if c.sheet is not None:
        parts.append(f"sheet {c.sheet}")
    if c.table is not None:
        parts.append(c.table)
    if c.row is not None:
        parts.append(f"row {c.row}" if c.row_end in (None, c.row) else f"rows {c.row}-{c.row_end}")
    if c.footnotes:
        parts.append("notes " + ", ".join(str(f.n) for f in c.footnotes))
    return ", ".join(parts)


def search_text(result: SearchResult) -> str:
    lines = [f"{len(result.hits)} passages for: {result.question}"]
    if not result.answerable:
        lines.append("The corpus probably does not answer this; these are only the closest.")
    for hit in result.hits:
        lines += [
            "",
            f"{hit.rank}. {hit.citation.anchor} ({where(hit.citation)})",
            hit.text.strip(),
        ]
    return "\n".join(lines)


def answer_text(answer: Answer) -> str:
    if not answer.answerable:
        return answer.text + (closest_text(answer) if answer.search.hits else "")
    lines = [answer.text, "", "References:"]
    for r in answer.references:
        lines.append(f"[{r.n}] {r.citation.anchor} ({where(r.citation)}): “{r.text.strip()}”")
    return "\n".join(lines)


def passage_text(passage: Passage) -> str:
    c = passage.citation
    lines = [f"{passage.anchor} ({where(c)})"]
    byline = ", ".join([*c.authors, *([c.date] if c.date else [])])
    if byline:
        lines.append(byline)
    if passage.context is None:
        lines += ["", passage.text]
    else:
        lines += ["", "Before:", passage.context.before.strip(), "", "Text:", passage.text]
        lines += ["", "After:", passage.context.after.strip()]
    return "\n".join(lines)


def documents_text(documents: DocumentsPublic) -> str:
    lines = [f"{documents.count} documents:"]
    for d in documents.data:
        byline = ", ".join([*d.authors, *([d.date] if d.date else [])])
        lines.append(
            f"- {d.doc_id}: {d.title} ({byline + '; ' if byline else ''}{d.format}, "
            f"{d.chars} characters)"
        )
        lines += [f"  warning: {w}" for w in d.warnings]
    return "\n".join(lines)
