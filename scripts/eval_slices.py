"""Per-slice metrics from the per-question rows of ``qa eval --json``.

A slice is (language, split, tagged or not): the fresh English and Japanese questions of issue 19
carry the tag ``fresh`` and are scored apart from the older ones. For each slice and mode it
prints hit_rate@1, hit_rate@5, mrr@10 over the answerable questions, the share of answerable
questions flagged unanswerable (misflagged) and of unanswerable ones flagged (flagged).

    .venv/bin/qa eval --split all --json > /tmp/run.json
    .venv/bin/python scripts/eval_slices.py /tmp/run.json                 # fresh vs other
    .venv/bin/python scripts/eval_slices.py /tmp/run.json --diff /tmp/after.json --ids

``--diff`` prints the same table for a second run beside the first, and ``--ids`` lists the
questions whose first relevant rank changed between them.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Row = dict[str, Any]


@dataclass(frozen=True)
class Slice:
    n: int
    hit1: float
    hit5: float
    mrr: float
    misflagged: str  # "k/n"
    flagged: str


def load_rows(path: Path) -> list[Row]:
    rows: list[Row] = json.loads(path.read_text("utf-8"))["queries"]
    return rows


def measure(rows: Iterable[Row], mode: str) -> Slice:
    """Metrics of ``mode`` over ``rows`` (gold questions, answerable or not)."""
    rows = list(rows)
    scored = [r for r in rows if r["answerable"] and r["scored"]]
    ranks = [r["first_relevant_rank"].get(mode) for r in scored]
    n = len(scored)

    def share(k: int) -> float:
        return sum(1 for x in ranks if x is not None and x <= k) / n if n else 0.0

    mrr = sum(1 / x for x in ranks if x is not None and x <= 10) / n if n else 0.0
    answerable = [r for r in rows if r["answerable"]]
    unanswerable = [r for r in rows if not r["answerable"]]
    mis = sum(1 for r in answerable if r["flagged_answerable"].get(mode) is False)
    flg = sum(1 for r in unanswerable if r["flagged_answerable"].get(mode) is False)
    return Slice(
        n, share(1), share(5), mrr, f"{mis}/{len(answerable)}", f"{flg}/{len(unanswerable)}"
    )


def slices(rows: Sequence[Row], tag: str) -> dict[tuple[str, str, str], list[Row]]:
    """Rows by (language, split, tag or "other"), plus "all" splits and "all" tags."""
    grouped: dict[tuple[str, str, str], list[Row]] = {}
    for row in rows:
        kind = tag if tag in row["tags"] else "other"
        for split in (row["split"], "all"):
            for group in (kind, "all"):
                grouped.setdefault((row["lang"], split, group), []).append(row)
    return dict(sorted(grouped.items()))


def changed(before: Sequence[Row], after: Sequence[Row], mode: str) -> list[str]:
    """Questions whose first relevant rank (or flag) moved, one line each."""
    by_id = {r["id"]: r for r in before}
    lines = []
    for row in after:
        old = by_id.get(row["id"])
        if old is None:
            continue
        a, b = old["first_relevant_rank"].get(mode), row["first_relevant_rank"].get(mode)
        fa, fb = old["flagged_answerable"].get(mode), row["flagged_answerable"].get(mode)
        if a != b or fa != fb:
            flag = f" answerable {fa} -> {fb}" if fa != fb else ""
            lines.append(
                f"{row['id']} {row['lang']:5} {row['split']:4} rank {a} -> {b}{flag}  "
                f"{row['question'][:70]}"
            )
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="qa eval --json output")
    parser.add_argument("--diff", type=Path, help="a second run, shown beside the first")
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--tag", default="fresh")
    parser.add_argument("--split", choices=("dev", "test", "all"), help="only this split")
    parser.add_argument("--ids", action="store_true", help="list questions that moved")
    args = parser.parse_args(argv)
    before = load_rows(args.run)
    after = load_rows(args.diff) if args.diff else None
    head = "lang   split kind     n   R@1    R@5    MRR    misflag  flagged"
    print(head + ("   ->  R@1    R@5    MRR    misflag  flagged" if after else ""))
    groups_after = slices(after, args.tag) if after else {}
    for key, rows in slices(before, args.tag).items():
        lang, split, kind = key
        if args.split and split != args.split:
            continue
        s = measure(rows, args.mode)
        line = (
            f"{lang:6} {split:5} {kind:6} {s.n:3}  {s.hit1:.3f}  {s.hit5:.3f}  {s.mrr:.3f}  "
            f"{s.misflagged:>7}  {s.flagged:>7}"
        )
        if after:
            t = measure(groups_after.get(key, []), args.mode)
            line += (
                f"   ->  {t.hit1:.3f}  {t.hit5:.3f}  {t.mrr:.3f}  {t.misflagged:>7}  {t.flagged:>7}"
            )
        print(line)
    if after and args.ids:
        wanted = [r for r in after if not args.split or r["split"] == args.split]
        print("\n".join(changed(before, wanted, args.mode)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
