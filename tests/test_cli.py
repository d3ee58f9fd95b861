"""The ``qa`` command line: search output matches the API, ingest is incremental and honest."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import CHAPTER, CORPUS
from fastapi.testclient import TestClient

from cli import main
from qa.config import Settings
from qa.index import current_generation, load_index
from qa.retrieve import Retriever

INGEST_LINE = re.compile(
    r"^index (?P<generation>gen-\S+): (?P<documents>\d+) documents, (?P<chunks>\d+) chunks "
    r"\((?P<embedded>\d+) embedded\) in [\d.]+s; added (?P<added>\d+), changed (?P<changed>\d+), "
    r"removed (?P<removed>\d+), unchanged (?P<unchanged>\d+), kept (?P<kept>\d+)$"
)


@pytest.fixture
def corpus_env(
    monkeypatch: pytest.MonkeyPatch, corpus_settings: Settings, corpus_retriever: Retriever
) -> Settings:
    """Environment of a user pointed at the session's index of the bundled corpus."""
    monkeypatch.setenv("QA_INDEX_DIR", str(corpus_settings.index_dir))
    monkeypatch.setenv("QA_CORPUS_DIR", str(CORPUS))
    monkeypatch.setenv("QA_THREADS", "2")
    monkeypatch.delenv("QA_EMBED_MODEL", raising=False)
    return corpus_settings


@pytest.fixture
def hash_env(monkeypatch: pytest.MonkeyPatch, small_corpus: Path, tmp_path: Path) -> Path:
    """Environment for fast ingest tests: hashing embedder, the small corpus; returns the index."""
    monkeypatch.setenv("QA_EMBED_MODEL", "hash:64")
    monkeypatch.setenv("QA_CORPUS_DIR", str(small_corpus))
    monkeypatch.setenv("QA_THREADS", "2")
    index_dir = tmp_path / "index"
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "elsewhere"))  # --index must win
    return index_dir


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _ingest_report(out: str) -> dict[str, Any]:
    lines = [line for line in out.splitlines() if line.startswith("index ")]
    assert len(lines) == 1, out
    match = INGEST_LINE.match(lines[0])
    assert match, lines[0]
    return {k: v if k == "generation" else int(v) for k, v in match.groupdict().items()}


def _without_timing(body: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != "took_ms"}


def _assert_same_result(cli: dict[str, Any], api: dict[str, Any]) -> None:
    assert set(cli) == set(api)
    assert cli["question"] == api["question"]
    assert cli["mode"] == api["mode"]
    assert len(cli["hits"]) == len(api["hits"])
    for mine, theirs in zip(cli["hits"], api["hits"], strict=True):
        assert set(mine) == set(theirs)
        assert mine["rank"] == theirs["rank"]
        assert mine["text"] == theirs["text"]
        assert mine["citation"] == theirs["citation"]
        assert mine["score"] == pytest.approx(theirs["score"], rel=1e-5)
        assert mine["scores"].keys() == theirs["scores"].keys()
        for key, value in theirs["scores"].items():
            assert mine["scores"][key] == pytest.approx(value, rel=1e-5)


def _api_search(client: TestClient, **body: Any) -> dict[str, Any]:
    response = client.post("/v1/search", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _qa_command() -> list[str]:
    script = Path(sys.executable).with_name("qa")
    return [str(script)] if script.exists() else [sys.executable, "-m", "cli"]


# --- search -----------------------------------------------------------------------------------


def test_search_json_equals_api(
    capsys: pytest.CaptureFixture[str], corpus_env: Settings, client: TestClient
) -> None:
    code, out, err = _run(
        capsys,
        "search",
        "日本制铁收购美国钢铁",
        "-k",
        "3",
        "--mode",
        "lexical",
        "--json",
        "--index",
        str(corpus_env.index_dir),
    )
    assert code == 0, err
    cli = json.loads(out)
    assert isinstance(cli["took_ms"], float)
    api = _api_search(client, question="日本制铁收购美国钢铁", top_k=3, mode="lexical")
    assert len(cli["hits"]) == 3
    assert _without_timing(cli)["hits"] == _without_timing(api)["hits"]
    _assert_same_result(cli, api)


@pytest.mark.parametrize("mode", ["hybrid", "dense"])
def test_search_json_equals_api_in_model_modes(
    capsys: pytest.CaptureFixture[str], corpus_env: Settings, client: TestClient, mode: str
) -> None:
    question = "日本的重稀土有多少依賴中國？"
    code, out, err = _run(capsys, "search", question, "-k", "5", "--mode", mode, "--json")
    assert code == 0, err
    _assert_same_result(json.loads(out), _api_search(client, question=question, mode=mode))


def test_search_json_carries_footnotes_and_metadata_like_api(
    capsys: pytest.CaptureFixture[str], corpus_env: Settings, client: TestClient
) -> None:
    question = "橋本英二 記者會 雙贏戰略"
    code, out, err = _run(capsys, "search", question, "-k", "5", "--mode", "lexical", "--json")
    assert code == 0, err
    cli = json.loads(out)
    _assert_same_result(cli, _api_search(client, question=question, top_k=5, mode="lexical"))
    citing = [h for h in cli["hits"] if "¹⁷" in h["text"]]
    assert citing
    for hit in citing:
        citation = hit["citation"]
        assert (citation["authors"], citation["date"], citation["kind"]) == (
            ["張務華"],
            None,
            "body",
        )
        notes = {note["n"]: note for note in citation["footnotes"]}
        assert notes[17]["text"] == "同註 14。" and notes[17]["refers_to"] == [14]
        assert notes[14]["text"].startswith("松田直樹，")


def test_search_text_shows_source_lines_of_a_joined_sentence(
    capsys: pytest.CaptureFixture[str], corpus_env: Settings, client: TestClient
) -> None:
    # "…外交資源亦難" (line 69) continues after two footnotes as "以整合運用…" (line 75)
    question = "外交資源亦難以整合運用"
    code, out, err = _run(capsys, "search", question, "-k", "3", "--mode", "lexical")
    assert code == 0, err
    hits = _api_search(client, question=question, top_k=3, mode="lexical")["hits"]
    joined = [h for h in hits if "外交資源亦難以整合運用" in h["text"]]
    assert joined
    for hit in joined:
        citation = hit["citation"]
        assert citation["line_start"] <= 69 and citation["line_end"] >= 75
        assert (
            f"{citation['anchor']}  (lines {citation['line_start']}-{citation['line_end']})" in out
        )


def test_search_text_shows_anchors(
    capsys: pytest.CaptureFixture[str], corpus_env: Settings, client: TestClient
) -> None:
    code, out, err = _run(capsys, "search", "南鳥島", "-k", "4", "--mode", "lexical")
    assert code == 0, err
    api = _api_search(client, question="南鳥島", top_k=4, mode="lexical")
    anchors = [h["citation"]["anchor"] for h in api["hits"]]
    ranked_lines = [line for line in out.splitlines() if re.match(r"^\d+\. \[", line)]
    assert len(ranked_lines) == 4
    for rank, (line, hit) in enumerate(zip(ranked_lines, api["hits"], strict=True), start=1):
        citation = hit["citation"]
        assert line.startswith(f"{rank}. [")
        assert citation["anchor"] in line
        assert f"lines {citation['line_start']}-{citation['line_end']}" in line
    positions = [out.index(anchor) for anchor in anchors]
    assert positions == sorted(positions)
    assert "南鳥島" in out
    assert re.search(r"^\([\d.]+ ms\)$", out, re.MULTILINE)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["search", ""], "non-whitespace"),
        (["search", "   "], "non-whitespace"),
        (["search", "稀土", "-k", "0"], "top_k"),
        (["search", "稀土", "-k", "51"], "top_k"),
        (["search", "稀" * 2001], "2000"),
    ],
    ids=["empty", "blank", "k-0", "k-51", "too-long"],
)
def test_search_rejects_bad_input(
    capsys: pytest.CaptureFixture[str], corpus_env: Settings, argv: list[str], message: str
) -> None:
    code, out, err = _run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert err.startswith("error:")
    assert message in err
    assert "Traceback" not in err


def test_search_rejects_unknown_mode(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "稀土", "--mode", "fuzzy"])
    assert exit_info.value.code == 2
    assert "fuzzy" in capsys.readouterr().err


def test_search_without_index(
    capsys: pytest.CaptureFixture[str], corpus_env: Settings, tmp_path: Path
) -> None:
    empty = tmp_path / "no-index"
    empty.mkdir()
    code, out, err = _run(capsys, "search", "稀土", "--index", str(empty))
    assert code == 2
    assert out == ""
    assert err.startswith("error:")
    assert "no index" in err
    assert "qa ingest" in err
    assert list(empty.iterdir()) == []  # searching never creates an index


def test_bad_setting_is_an_error_not_a_traceback(
    capsys: pytest.CaptureFixture[str], corpus_env: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("QA_THREADS", "many")
    code, _, err = _run(capsys, "search", "稀土")
    assert code == 2
    assert err.startswith("error:") and "QA_THREADS" in err


@pytest.mark.slow
def test_search_console_script_in_subprocess(
    corpus_settings: Settings, corpus_retriever: Retriever, client: TestClient, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "QA_INDEX_DIR": str(tmp_path / "not-this-one"),
        "QA_CORPUS_DIR": str(CORPUS),
        "QA_THREADS": "1",
    }
    env.pop("QA_EMBED_MODEL", None)
    argv = ["search", "美國鋼鐵 收購", "-k", "3", "--mode", "lexical", "--json"]
    completed = subprocess.run(
        [*_qa_command(), *argv, "--index", str(corpus_settings.index_dir)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    cli = json.loads(completed.stdout)
    api = _api_search(client, question="美國鋼鐵 收購", top_k=3, mode="lexical")
    _assert_same_result(cli, api)
    assert all(h["citation"]["doc_id"] == CHAPTER for h in cli["hits"])

    failed = subprocess.run(
        [*_qa_command(), "search", " ", "--index", str(corpus_settings.index_dir)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
    )
    assert failed.returncode == 2
    assert failed.stderr.startswith("error:")
    assert failed.stdout == ""


# --- ingest -----------------------------------------------------------------------------------


def test_ingest_then_reingest_embeds_nothing(
    capsys: pytest.CaptureFixture[str], hash_env: Path, small_corpus: Path
) -> None:
    code, out, err = _run(capsys, "ingest", str(small_corpus), "--index", str(hash_env), "--quiet")
    assert code == 0, err
    first = _ingest_report(out)
    assert first["documents"] == 3
    assert first["chunks"] >= 3
    assert first["embedded"] == first["chunks"]
    assert (first["added"], first["changed"], first["removed"], first["unchanged"]) == (3, 0, 0, 0)
    assert (hash_env / "CURRENT").read_text("utf-8").strip() == first["generation"]
    assert not (hash_env.parent / "elsewhere").exists()

    code, out, err = _run(capsys, "ingest", str(small_corpus), "--index", str(hash_env), "--quiet")
    assert code == 0, err
    assert "(0 embedded)" in out
    second = _ingest_report(out)
    assert second["embedded"] == 0
    assert second["chunks"] == first["chunks"]
    assert (second["added"], second["changed"], second["removed"], second["unchanged"]) == (
        0,
        0,
        0,
        3,
    )
    assert second["generation"] != first["generation"]

    index = load_index(hash_env, model_id="hash:64", dimension=64)
    assert set(index.documents) == {"zh", "en", "sub/ja"}

    code, out, err = _run(
        capsys, "search", "南鳥島", "--mode", "lexical", "--json", "--index", str(hash_env)
    )
    assert code == 0, err
    hits = json.loads(out)["hits"]
    assert hits[0]["citation"]["doc_id"] == "zh"
    citation = hits[0]["citation"]
    assert hits[0]["text"] == "壹、背景\n\n日本對中國的稀土依賴很高。南鳥島海底泥含有稀土。"
    assert citation["section"] == "第一章 稀土 > 壹、背景"
    assert (citation["line_start"], citation["line_end"]) == (3, 5)
    assert citation["anchor"] == "zh#c8-38"


def test_ingest_reports_changed_and_removes_only_with_prune(
    capsys: pytest.CaptureFixture[str], hash_env: Path, small_corpus: Path
) -> None:
    code, out, err = _run(capsys, "ingest", "--index", str(hash_env), "--quiet")  # QA_CORPUS_DIR
    assert code == 0, err
    assert _ingest_report(out)["documents"] == 3

    (small_corpus / "en.md").write_text("# Steel\n\nA different sentence now.\n", "utf-8")
    (small_corpus / "sub" / "ja.txt").unlink()
    code, out, err = _run(capsys, "ingest", "--index", str(hash_env), "--quiet")
    assert code == 0, err
    report = _ingest_report(out)
    assert report["documents"] == 3  # the deleted file's document is kept, and the user told
    assert (report["added"], report["changed"], report["removed"], report["unchanged"]) == (
        0,
        1,
        0,
        2,
    )
    assert report["kept"] == 1 and "keeping 1 indexed documents" in err and "--prune" in err
    assert 0 < report["embedded"] < report["chunks"] + 1
    index = load_index(hash_env, model_id="hash:64", dimension=64)
    assert set(index.documents) == {"zh", "en", "sub/ja"}
    assert "A different sentence now." in index.documents["en"].text

    code, out, err = _run(capsys, "ingest", "--prune", "--index", str(hash_env), "--quiet")
    assert code == 0, err
    report = _ingest_report(out)
    assert (report["documents"], report["removed"], report["kept"], report["embedded"]) == (
        2,
        1,
        0,
        0,
    )
    assert "removing 1 documents (--prune): sub/ja" in err
    assert set(load_index(hash_env, model_id="hash:64", dimension=64).documents) == {"zh", "en"}


def test_ingest_of_one_file_adds_it_and_keeps_every_other_document(
    capsys: pytest.CaptureFixture[str], hash_env: Path, small_corpus: Path, tmp_path: Path
) -> None:
    """`qa ingest my-note.md` once replaced the whole index with that one file."""
    code, out, err = _run(capsys, "ingest", "--index", str(hash_env), "--quiet")
    assert code == 0, err
    before = load_index(hash_env, model_id="hash:64", dimension=64)
    note = tmp_path / "elsewhere-notes" / "my-note.md"
    note.parent.mkdir()
    note.write_text("# Note\n\n破冰船的新合作計畫。\n", "utf-8")

    code, out, err = _run(capsys, "ingest", str(note), "--index", str(hash_env), "--quiet")
    assert code == 0, err
    report = _ingest_report(out)
    assert (report["documents"], report["added"], report["removed"], report["kept"]) == (4, 1, 0, 3)
    assert report["embedded"] > 0 and "removing" not in err
    after = load_index(hash_env, model_id="hash:64", dimension=64)
    assert set(after.documents) == {"zh", "en", "sub/ja", "my-note"}
    for doc_id in ("zh", "en", "sub/ja"):  # kept as indexed: same text, same chunks
        assert after.documents[doc_id] == before.documents[doc_id]
        assert [c for c in after.chunks if c.doc_id == doc_id] == [
            c for c in before.chunks if c.doc_id == doc_id
        ]

    code, out, err = _run(
        capsys, "search", "破冰船", "--mode", "lexical", "--json", "--index", str(hash_env)
    )
    assert code == 0, err
    assert json.loads(out)["hits"][0]["citation"]["doc_id"] == "my-note"

    # Re-reading the corpus folder does not drop the note that lives elsewhere either.
    code, out, err = _run(capsys, "ingest", "--index", str(hash_env), "--quiet")
    assert code == 0, err
    assert _ingest_report(out)["documents"] == 4 and _ingest_report(out)["embedded"] == 0


def test_ingest_with_unreadable_file_keeps_the_others(
    capsys: pytest.CaptureFixture[str], hash_env: Path, small_corpus: Path
) -> None:
    code, out, err = _run(capsys, "ingest", str(small_corpus), "--index", str(hash_env), "--quiet")
    assert code == 0, err
    bad = small_corpus / "broken.txt"
    bad.write_bytes(b"\xff\xfe\xfa")

    code, out, err = _run(capsys, "ingest", str(small_corpus), "--index", str(hash_env), "--quiet")
    assert code == 1
    assert "broken.txt" in err
    assert err.startswith("error:")
    assert "UTF-8" in err
    report = _ingest_report(out)
    assert report["documents"] == 3
    assert report["unchanged"] == 3
    assert report["embedded"] == 0
    index = load_index(hash_env, model_id="hash:64", dimension=64)
    assert set(index.documents) == {"zh", "en", "sub/ja"}


def test_strict_ingest_leaves_index_untouched(
    capsys: pytest.CaptureFixture[str], hash_env: Path, small_corpus: Path
) -> None:
    code, _, err = _run(capsys, "ingest", str(small_corpus), "--index", str(hash_env), "--quiet")
    assert code == 0, err
    before = (hash_env / "CURRENT").read_bytes()
    generations = sorted(p.name for p in hash_env.iterdir())
    (small_corpus / "zh.txt").write_text("全新的內容。\n", "utf-8")  # would be "changed"
    (small_corpus / "broken.txt").write_bytes(b"\xff\xfe\xfa")

    code, out, err = _run(
        capsys, "ingest", str(small_corpus), "--index", str(hash_env), "--strict", "--quiet"
    )
    assert code == 2
    assert out == ""
    assert err.startswith("error:")
    assert "broken.txt" in err
    assert (hash_env / "CURRENT").read_bytes() == before
    assert sorted(p.name for p in hash_env.iterdir()) == generations
    generation = current_generation(hash_env)
    assert generation is not None
    index = load_index(hash_env, model_id="hash:64", dimension=64)
    assert "南鳥島" in index.documents["zh"].text


def test_ingest_missing_path_is_an_error(
    capsys: pytest.CaptureFixture[str], hash_env: Path, tmp_path: Path
) -> None:
    code, out, err = _run(capsys, "ingest", str(tmp_path / "nowhere"), "--index", str(hash_env))
    assert code == 2
    assert out == ""
    assert err.startswith("error:") and "nowhere" in err
    assert not (hash_env / "CURRENT").exists()
