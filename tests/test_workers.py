"""``qa serve --workers N``: N processes on one port, each loading the index and hot-reloading it;
stopping the server leaves no process behind. Settings reach the workers through ``to_env``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import CORPUS, ServerProcess

from qa.config import Settings
from qa.errors import ConfigError
from qa.index import current_generation
from qa.service import ingest

ROOT = Path(__file__).resolve().parents[1]


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # gone meanwhile
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _answers(url: str, n: int) -> list[tuple[str, str]]:
    """``n`` searches at 8 at a time, each on a new connection: (worker pid, generation)."""

    def one(i: int) -> tuple[str, str]:
        body = {"question": "稀土", "mode": "lexical", "top_k": 1}
        response = httpx.post(f"{url}/v1/search", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.headers["x-worker-pid"], response.headers["x-index-generation"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(one, range(n)))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_two_workers_each_serve_and_reload_the_new_generation(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    shutil.copytree(CORPUS, corpus)
    settings = Settings(corpus_dir=corpus, index_dir=tmp_path / "index", embed_model="hash:64")
    ingest(settings, strict=True)
    first = current_generation(settings.index_dir)
    assert first is not None
    server = ServerProcess(
        settings.index_dir,
        tmp_path,
        args=("--workers", "2"),
        QA_EMBED_MODEL="hash:64",
        QA_RELOAD_INTERVAL="0.2",
    )
    try:
        live = server.ready()
        workers: set[str] = set()
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:  # the second may still load
            answers = _answers(live.url, 32)
            assert {generation for _, generation in answers} == {first.name}
            workers |= {pid for pid, _ in answers}
        assert len(workers) == 2, f"answers came from {workers} only"
        descendants = _children(server.process.pid)
        assert {int(pid) for pid in workers} <= descendants

        (corpus / "added.txt").write_text("A document added while two workers serve.\n", "utf-8")
        ingest(settings, strict=True)
        second = current_generation(settings.index_dir)
        assert second is not None and second.name != first.name
        latest: dict[str, str] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            for pid, generation in _answers(live.url, 16):
                latest[pid] = generation
            if workers <= latest.keys() and set(latest.values()) == {second.name}:
                break
            time.sleep(0.2)
        assert latest.keys() <= workers  # the same two processes, none restarted
        assert {pid: latest.get(pid) for pid in workers} == dict.fromkeys(workers, second.name)
    finally:
        server.stop()
    assert server.process.returncode == 0, server.log.read_text(errors="replace")
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in descendants) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [pid for pid in descendants if _alive(pid)], "orphan processes after stop"


@pytest.mark.parametrize("value", ["0", "65", "two"])
def test_workers_out_of_range_is_a_usage_error(value: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "cli", "serve", "--no-ingest", "--workers", value],
        cwd=ROOT,
        env={**os.environ, "QA_INDEX_DIR": str(tmp_path / "none")},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "--workers" in result.stderr and ("1..64" in result.stderr or value in result.stderr)


def test_qa_workers_is_validated() -> None:
    assert Settings.from_env({"QA_WORKERS": "3"}).workers == 3
    with pytest.raises(ConfigError, match="QA_WORKERS"):
        Settings.from_env({"QA_WORKERS": "65"})


def test_settings_survive_the_environment_round_trip(tmp_path: Path) -> None:
    """What ``qa serve --workers N`` resolved is what each worker reads back."""
    settings = Settings(
        corpus_dir=tmp_path / "c",
        index_dir=tmp_path / "i",
        embed_model="hash:64",
        threads=1,
        ingest_threads=1,
        workers=3,
        host="0.0.0.0",
        port=8123,
        api_keys=("k1", "k2"),
        cors_origins=("https://x.org",),
        reload_interval=0.25,
        llm_base_url="http://127.0.0.1:8080/v1",
        llm_model="m",
        llm_api_key="secret",
        llm_timeout=12.5,
    )
    assert Settings.from_env(settings.to_env()) == settings
    assert Settings.from_env(Settings().to_env()) == Settings()
