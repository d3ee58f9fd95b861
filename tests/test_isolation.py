"""The suite is about the bundled documents, never about whatever the live ``corpus/`` holds."""

from __future__ import annotations

import re

from conftest import BUNDLED, CORPUS, ROOT


def test_tests_read_a_private_copy_of_the_bundled_documents() -> None:
    assert not CORPUS.resolve().is_relative_to(ROOT.resolve())
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(f"{d}.txt" for d in BUNDLED)
    for doc_id in BUNDLED:
        live = ROOT / "corpus" / f"{doc_id}.txt"
        assert (CORPUS / live.name).read_bytes() == live.read_bytes()


# ROOT / "corpus", parents[1] / "corpus", Path("corpus"): any way of naming the live folder.
_LIVE_CORPUS = re.compile(r"""(ROOT|parents\[\d\]|Path\()\s*/?\s*\(?\s*["']corpus["']""")


def test_no_test_names_the_live_corpus_folder() -> None:
    offenders = [
        f"{path.name}:{number}"
        for path in sorted((ROOT / "tests").glob("*.py"))
        if path.name not in ("conftest.py", "test_isolation.py")
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1)
        if _LIVE_CORPUS.search(line)
    ]
    assert not offenders, f"tests must use conftest.CORPUS, not the live corpus/: {offenders}"
