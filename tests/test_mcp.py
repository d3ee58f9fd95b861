"""The MCP server through the official ``mcp`` client: ``qa mcp`` over stdio, and ``/mcp`` on a
real ``qa serve`` over streamable HTTP (behind an API key). Both list and call every tool."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import httpx2
import pytest
from conftest import BUNDLED, serve_index
from mcp.client import Client
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult

from api.mcp_server import OpenOnce, build_server
from qa.config import Settings
from qa.retrieve import Retriever

pytestmark = pytest.mark.slow

QUESTION = "日本進口的重稀土對中國的依賴程度大概有多高？"
KEY = "k-mcp-test"
TOOLS = {"search", "answer", "read", "list_documents"}


def _text(result: CallToolResult) -> str:
    return "\n".join(getattr(block, "text", "") for block in result.content)


async def _call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    """A successful call: structured content, and readable text beside it."""
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, _text(result)
    assert result.structured_content is not None
    assert _text(result).strip()
    return result.structured_content


async def _error(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error, result
    text = _text(result)
    assert "Traceback" not in text
    return text


async def _exercise(session: ClientSession, *, over_http: bool) -> None:
    """List every tool, call every tool, and check what comes back against the corpus."""
    await session.initialize()
    listed = {tool.name: tool for tool in (await session.list_tools()).tools}
    assert set(listed) == TOOLS
    for tool in listed.values():
        assert tool.description and len(tool.description) > 60, tool.name
        assert tool.output_schema is not None, tool.name
        # Descriptions are fixed text: nothing of the corpus (titles, doc_ids) gets in.
        assert "稀土" not in tool.description and "indsr" not in tool.description
    assert listed["search"].input_schema["required"] == ["question"]

    documents = await _call(session, "list_documents")
    assert documents["count"] == 2
    assert {d["doc_id"] for d in documents["data"]} == set(BUNDLED)
    assert all(d["chars"] > 1000 and d["format"] for d in documents["data"])

    found = await _call(session, "search", question="南鳥島 稀土泥", top_k=3, doc_ids=[BUNDLED[0]])
    assert 1 <= len(found["hits"]) <= 3
    assert {h["citation"]["doc_id"] for h in found["hits"]} == {BUNDLED[0]}
    hit = found["hits"][0]
    passage = await _call(session, "read", anchor=hit["citation"]["anchor"], context=1)
    assert passage["text"] == hit["text"]
    assert passage["citation"]["anchor"] == hit["citation"]["anchor"]
    assert passage["context"]["before"] or passage["context"]["after"]

    answered = await _call(session, "answer", question=QUESTION)
    assert answered["answerable"] and answered["references"]
    cited = []
    for reference in answered["references"]:
        anchor = reference["citation"]["anchor"]
        span = await _call(session, "read", anchor=anchor)
        assert span["text"] == reference["text"]
        cited.append(span["text"])
        if over_http:
            assert reference["url"].endswith("/v1/passages?anchor=" + anchor.replace("#", "%23"))
        else:
            assert reference.get("url") is None
    assert any("接近 100%" in text for text in cited), cited
    assert f"[{answered['references'][0]['n']}]" in answered["answer"]

    refused = await _call(
        session, "answer", question="What was the price per tonne of lithium carbonate?"
    )
    assert not refused["answerable"] and refused["references"] == []
    assert refused["unstated_quantities"] == ["money"]

    message = await _error(session, "read", anchor="not an anchor")
    assert "doc_id#c<start>-<end>" in message
    message = await _error(session, "read", anchor="no-such-doc#c0-10")
    assert "no-such-doc" in message
    message = await _error(session, "read", anchor=f"{BUNDLED[1]}#c0-99999999")
    assert "outside" in message
    message = await _error(session, "search", question="稀土", doc_ids=["no-such-doc"])
    assert "no-such-doc" in message
    message = await _error(session, "answer", question="   ")
    assert "non-whitespace" in message
    message = await _error(session, "search", question="稀土", top_k=0)
    assert "top_k" in message


def test_stdio(corpus_settings: Settings, corpus_retriever: Retriever, tmp_path: Path) -> None:
    """``qa mcp``, spawned the way an MCP client (Claude Desktop) spawns it."""
    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "cli", "mcp"],
        env={"QA_INDEX_DIR": str(corpus_settings.index_dir), "QA_THREADS": "1"},
        cwd=tmp_path,  # no ./index to fall back on
    )

    log = tmp_path / "stderr.log"

    async def run() -> None:
        with anyio.fail_after(120), open(log, "w") as errlog:
            async with (
                stdio_client(server, errlog=errlog) as (read, write),
                ClientSession(read, write) as session,
            ):
                await _exercise(session, over_http=False)

    anyio.run(run)
    assert "Traceback" not in log.read_text(), log.read_text()


def test_without_an_index_every_call_says_how_to_build_one(tmp_path: Path) -> None:
    """The stdio provider opens the index at the first call; a missing one is a tool error."""
    opener = OpenOnce(Settings(index_dir=tmp_path / "missing", threads=1))

    async def run() -> str:
        async with Client(build_server(opener)) as client:
            result = await client.call_tool("search", {"question": "稀土"})
            assert result.is_error
            return _text(result)

    assert "qa ingest" in anyio.run(run)


@pytest.fixture(scope="module")
def keyed_server(
    corpus_settings: Settings, corpus_retriever: Retriever, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``qa serve --no-ingest`` with ``QA_API_KEYS`` set, on a free port; always terminated."""
    workdir = tmp_path_factory.mktemp("mcp-server")
    with serve_index(corpus_settings.index_dir, workdir, QA_API_KEYS=KEY) as server:
        yield server.url
    assert "Traceback" not in server.log.read_text(errors="replace")


def test_streamable_http_with_the_api_key(keyed_server: str) -> None:
    headers = {"Authorization": f"Bearer {KEY}"}

    async def run() -> None:
        with anyio.fail_after(120):
            async with (
                httpx2.AsyncClient(headers=headers, timeout=60) as http,
                streamable_http_client(f"{keyed_server}/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                await _exercise(session, over_http=True)

    anyio.run(run)


def test_streamable_http_refuses_a_client_without_the_key(keyed_server: str) -> None:
    statuses: list[int] = []

    async def record(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    async def run() -> None:
        with anyio.fail_after(30):
            async with (
                httpx2.AsyncClient(timeout=10, event_hooks={"response": [record]}) as http,
                streamable_http_client(f"{keyed_server}/mcp", http_client=http) as (read, write),
                ClientSession(read, write) as session,
            ):
                await session.initialize()

    with pytest.raises(Exception, match="unhandled errors"):
        anyio.run(run)
    assert statuses and set(statuses) == {401}, statuses
    response = httpx.post(f"{keyed_server}/mcp", json={}, headers={"Authorization": "Bearer no"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_mount_keeps_the_openapi_schema(keyed_server: str) -> None:
    schema = httpx.get(f"{keyed_server}/openapi.json", headers={"Authorization": f"Bearer {KEY}"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/v1/search" in paths and "/v1/answer" in paths
    assert not any(path.startswith("/mcp") for path in paths)
