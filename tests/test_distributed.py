"""``qa ingest --ray``: Ray local mode (2 workers) builds exactly what one process builds, keeps
what ``qa ingest`` keeps, survives a killed worker, and fails in one line when it cannot run."""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import faiss
import numpy as np
import pytest
from conftest import CORPUS, ROOT, free_port

from cli.commands import main
from qa.config import Settings
from qa.distributed import ray_ingest
from qa.embed import Embedder
from qa.errors import DistributedError
from qa.index import current_generation
from qa.service import IngestOutcome, ingest, open_retriever

ray = pytest.importorskip("ray")

_QUESTIONS = ("稀土出口管制", "Nippon Steel acquisition", "造船 破冰船", "製薬のサプライチェーン")
_ACTOR = "MapWorker(MapBatches(_EmbedUnits))"


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """One local Ray of 2 CPUs for the module (start-up takes 5-10 s); ``ray_ingest`` uses it.

    Ray gives its raylet a fixed 30 s to register, which a loaded 2-core machine can exceed
    (seen with a benchmark running beside the suite): a failed start is tried once more."""
    started = not ray.is_initialized()
    if started:
        for attempt in (1, 2):
            try:
                ray.init(
                    address="local",
                    num_cpus=2,
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                )
                break
            except Exception as exc:
                if attempt == 2 or "timed out during startup" not in str(exc):
                    raise
                ray.shutdown()
    yield
    if started:
        ray.shutdown()


def _settings(corpus: Path, index_dir: Path, model: str = "hash:64") -> Settings:
    return Settings(
        corpus_dir=corpus, index_dir=index_dir, embed_model=model, threads=1, ingest_threads=2
    )


def _ray_ingest(settings: Settings, paths: Sequence[Path] = (), **options: Any) -> IngestOutcome:
    with ray_ingest(None, workers=2) as cluster:
        return ingest(settings, paths, read=cluster.read, embed=cluster.embed, **options)


def _generation(index_dir: Path) -> Path:
    generation = current_generation(index_dir)
    assert generation is not None
    return generation


def _dense(generation: Path) -> np.ndarray:
    index = faiss.read_index(str(generation / "dense.faiss"))
    return np.asarray(index.reconstruct_n(0, index.ntotal))


def _assert_same_index(a_dir: Path, b_dir: Path) -> None:
    """Same documents, chunks (text, spans, anchors, every field), lexical index and manifest
    (but its time); vectors within float tolerance."""
    a, b = _generation(a_dir), _generation(b_dir)
    for name in ("documents.jsonl", "chunks.jsonl"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    lexical = sorted(p.relative_to(a) for p in (a / "lexical").rglob("*") if p.is_file())
    assert lexical and lexical == sorted(
        p.relative_to(b) for p in (b / "lexical").rglob("*") if p.is_file()
    )
    for name in lexical:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    manifests = [json.loads((g / "manifest.json").read_text("utf-8")) for g in (a, b)]
    files = [manifest.pop("files") for manifest in manifests]  # checksums
    for manifest in manifests:
        manifest.pop("built_at")
    assert manifests[0] == manifests[1]
    exact = [name for name in files[0] if not name.endswith((".npy", ".faiss"))]
    assert "chunks.jsonl" in exact and all(files[0][n] == files[1][n] for n in exact)
    assert np.abs(_dense(a) - _dense(b)).max() < 1e-5
    sa, sb = np.load(a / "sentences.npy"), np.load(b / "sentences.npy")
    assert sa.shape == sb.shape and sa.dtype == np.float16
    # Sentence rows are stored as float16: within 1e-5 before rounding, and one step of it.
    step = np.spacing(np.maximum(np.abs(sa), np.abs(sb))).astype(np.float32)
    assert (np.abs(sa.astype(np.float32) - sb.astype(np.float32)) <= step + 1e-5).all()
    np.testing.assert_array_equal(
        np.load(a / "sentence_ranges.npy"), np.load(b / "sentence_ranges.npy")
    )
    np.testing.assert_allclose(np.load(a / "hubness.npy"), np.load(b / "hubness.npy"), atol=1e-5)


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory, use_embedder: Embedder) -> Settings:
    """The bundled corpus (conftest's private copy) built in this process with the real model."""
    settings = _settings(CORPUS, tmp_path_factory.mktemp("single"), "use-multilingual-v3")
    ingest(settings, embedder=use_embedder, strict=True)
    return settings


def _hits(settings: Settings, embedder: Embedder) -> tuple[list[object], list[float]]:
    """The cited spans of the top 5 for each question, and their scores."""
    retriever = open_retriever(settings, embedder)
    spans: list[object] = []
    scores: list[float] = []
    for question in _QUESTIONS:
        hits = retriever.search(question, top_k=5).hits
        spans.append(
            [(h.citation.doc_id, h.citation.char_start, h.citation.char_end) for h in hits]
        )
        scores.extend(h.score for h in hits)
    return spans, scores


@pytest.mark.slow
def test_ray_ingest_of_the_corpus_equals_the_single_process_one(
    local_ray: None, reference: Settings, use_embedder: Embedder, tmp_path: Path
) -> None:
    settings = reference.with_(index_dir=tmp_path / "ray")
    outcome = _ray_ingest(settings, embedder=use_embedder, strict=True)
    assert outcome.build.chunks_embedded == outcome.build.chunks_total > 100
    _assert_same_index(reference.index_dir, settings.index_dir)
    (spans, scores), (spans_single, scores_single) = (
        _hits(settings, use_embedder),
        _hits(reference, use_embedder),
    )
    assert spans == spans_single
    np.testing.assert_allclose(scores, scores_single, atol=1e-4)


def _bench_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_script", ROOT / "scripts" / "bench.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_a_ten_times_synthetic_corpus_gives_the_same_chunks_and_anchors(
    local_ray: None, tmp_path: Path
) -> None:
    """scripts/bench.py's 10x corpus (20 documents, about 1,500 chunks), hashing embedder."""
    corpus = tmp_path / "corpus"
    assert _bench_module().make_corpus(corpus, 10, 11, CORPUS) == 20
    single = _settings(corpus, tmp_path / "single")
    ingest(single, strict=True)
    settings = single.with_(index_dir=tmp_path / "ray")
    outcome = _ray_ingest(settings, strict=True)
    assert len(outcome.plan.documents) == 20 and outcome.build.chunks_total > 1000
    _assert_same_index(single.index_dir, settings.index_dir)
    np.testing.assert_array_equal(
        _dense(_generation(single.index_dir)), _dense(_generation(settings.index_dir))
    )


def test_adding_a_file_with_ray_keeps_every_other_document(
    local_ray: None, small_corpus: Path, tmp_path: Path
) -> None:
    (small_corpus / "broken.html").write_text("<html><body></body></html>", "utf-8")
    settings = _settings(small_corpus, tmp_path / "index")
    first = _ray_ingest(settings)
    single = ingest(settings.with_(index_dir=tmp_path / "single"))
    assert [str(e) for e in first.ingest.errors] == [str(e) for e in single.ingest.errors]
    assert len(first.ingest.errors) == 1 and "no text content" in str(first.ingest.errors[0])
    assert sorted(first.build.added) == ["en", "sub/ja", "zh"]

    extra = tmp_path / "elsewhere" / "report.md"
    extra.parent.mkdir()
    extra.write_text("# Ships\n\nJapan builds icebreakers in Nagasaki.\n", "utf-8")
    added = _ray_ingest(settings, [extra])
    assert added.plan.kept == ("en", "sub/ja", "zh")
    assert added.build.added == ("report",) and added.build.removed == ()
    assert sorted(added.build.unchanged) == ["en", "sub/ja", "zh"]  # reused, not re-embedded
    assert added.build.chunks_embedded < added.build.chunks_total
    documents = (_generation(settings.index_dir) / "documents.jsonl").read_text("utf-8")
    assert {json.loads(line)["doc_id"] for line in documents.splitlines()} == {
        "en",
        "sub/ja",
        "zh",
        "report",
    }
    # The same two steps in one process build the same index.
    ingest(settings.with_(index_dir=tmp_path / "single"), [extra])
    _assert_same_index(tmp_path / "single", settings.index_dir)

    pruned = _ray_ingest(settings, [small_corpus], prune=True)
    assert pruned.plan.removing == ("report",) and pruned.build.removed == ("report",)


def _embedding_actors() -> list[int]:
    actors = ray._private.state.actors().values()  # the GCS table: no dashboard needed
    return [a["Pid"] for a in actors if a["ActorClassName"] == _ACTOR and a["State"] == "ALIVE"]


@pytest.mark.slow
def test_a_killed_worker_neither_corrupts_nor_half_publishes_the_index(
    local_ray: None, use_embedder: Embedder, tmp_path: Path
) -> None:
    """SIGKILL to an embedding actor as soon as one has loaded its model (a 3x corpus: 16 units,
    so work is left). Ray restarts it and retries its unit, and the index equals the
    single-process one; or, had Ray given up, the ingest fails, the generation served before
    stays current and the same command resumes.

    A watcher thread kills, not the build's progress callback: on 2 busy cores the actors can
    finish every unit, and be torn down, before the driver writes its first one."""
    corpus = tmp_path / "corpus"
    _bench_module().make_corpus(corpus, 3, 7, CORPUS)
    single = _settings(corpus, tmp_path / "single", "use-multilingual-v3")
    ingest(single, embedder=use_embedder, strict=True)
    settings = single.with_(index_dir=tmp_path / "index")
    ingest(settings.with_(embed_model="hash:64"), strict=True)  # what is served before
    before = _generation(settings.index_dir)
    killed: list[int] = []
    done = threading.Event()

    def kill_first_actor() -> None:
        while not done.is_set():
            pids = _embedding_actors()  # ALIVE: its constructor (the model load) has returned
            if pids:
                os.kill(pids[0], signal.SIGKILL)
                killed.append(pids[0])
                return
            time.sleep(0.01)

    watcher = threading.Thread(target=kill_first_actor, daemon=True)
    watcher.start()
    try:
        _ray_ingest(settings, embedder=use_embedder)
    except DistributedError:
        assert current_generation(settings.index_dir) == before  # nothing half-published
        assert list(settings.index_dir.glob(".staging-*/journal.json"))
        _ray_ingest(settings, embedder=use_embedder)  # resumes from the journal
    finally:
        done.set()
        watcher.join()
    assert killed, "no embedding actor was ever alive"
    with pytest.raises(ProcessLookupError):
        os.kill(killed[0], 0)  # it really died
    assert current_generation(settings.index_dir) != before
    assert not list(settings.index_dir.glob(".staging-*"))
    _assert_same_index(single.index_dir, settings.index_dir)


def test_qa_ingest_ray_from_the_command_line(small_corpus: Path, tmp_path: Path) -> None:
    """End to end in a child process (its own local Ray), then the one-line errors."""
    env = {
        **os.environ,
        "QA_CORPUS_DIR": str(small_corpus),
        "QA_INDEX_DIR": str(tmp_path / "index"),
        "QA_EMBED_MODEL": "hash:64",
        "QA_INGEST_THREADS": "2",
    }
    command = [sys.executable, "-m", "cli", "ingest", "--quiet", "--ray"]
    done = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "3 documents" in done.stdout and "added 3" in done.stdout
    assert len(done.stderr.splitlines()) <= 3, done.stderr  # Ray's own logging stays quiet
    ingest(_settings(small_corpus, tmp_path / "single"))
    _assert_same_index(tmp_path / "single", tmp_path / "index")

    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    failed = subprocess.run(
        [*command, address], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert failed.returncode == 2 and failed.stdout == ""
    assert failed.stderr.strip().splitlines() == [
        f"error: cannot reach the Ray cluster at {address}: Connection refused"
    ]


def test_without_ray_installed_the_error_names_the_install_command(
    small_corpus: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("QA_CORPUS_DIR", str(small_corpus))
    monkeypatch.setenv("QA_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray: ModuleNotFoundError
    assert main(["ingest", "--quiet", "--ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "error: qa ingest --ray needs Ray Data: "
        "pip install 'ray[data]' (or: pip install -e '.[ray]')"
    ]
    assert current_generation(tmp_path / "index") is None
