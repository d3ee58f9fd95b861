"""The MCP server: ``search``, ``answer``, ``read`` and ``list_documents`` as agent tools.

One server, two transports: ``qa mcp`` serves it over stdio (``serve_stdio``), and the HTTP
app serves it as streamable HTTP at ``/mcp`` (``McpEndpoint``, behind the same API keys). The
tools read whatever ``Retriever`` the provider returns at the moment of the call: on HTTP that
is ``ServiceState.require``, so they follow hot reload like the routes do.

Every tool returns structured content (the API's JSON shapes, schemas included) and the same
result as readable text with its anchors. A ``QAError`` becomes a tool error carrying its
message (``isError: true``); anything else is the SDK's generic tool error, never a traceback.
Tool descriptions are fixed text: document text reaches an agent only as a tool's result.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from typing import Annotated, Any

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import Field
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from api.answers import passage_url
from api.mcp_text import answer_text, documents_text, passage_text, search_text
from api.routes import list_documents as documents_body
from api.schemas import (
    AnswerResponse,
    DocumentsPublic,
    PassagePublic,
    ReferencePublic,
    SearchResponse,
)
from qa import __version__
from qa.answer import answer_question
from qa.config import Settings
from qa.errors import QAError
from qa.passages import resolve_anchor
from qa.retrieve import MAX_CONTEXT_SENTENCES, MAX_QUESTION_CHARS, MAX_TOP_K, Retriever
from qa.serialize import answer_json, passage_json, search_result_json
from qa.types import SearchMode

RetrieverProvider = Callable[[], Retriever]

MCP_PATH = "/mcp"
NAME = "citeqa"
INSTRUCTIONS = (
    "Search a fixed corpus of documents and answer questions from it with exact citations. "
    "Every passage carries an anchor 'doc_id#c<start>-<end>' naming its exact span of the "
    "document's text; pass an anchor to `read` to quote the span with surrounding sentences. "
    "Use `answer` for a cited answer, `search` for ranked passages, `list_documents` for what "
    "the corpus holds (its doc_ids filter search and answer)."
)
_READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, open_world_hint=False)

Question = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_QUESTION_CHARS,
        description="The question, in any language (English, Chinese, Japanese...).",
    ),
]
TopK = Annotated[int, Field(ge=1, le=MAX_TOP_K, description="How many passages to rank.")]
DocIds = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=500)]] | None,
    Field(max_length=100, description="Only these documents (doc_ids from list_documents)."),
]
SectionPrefix = Annotated[
    str | None,
    Field(
        max_length=500,
        description="Only passages whose section path (headings joined by ' > '), or one of "
        "its headings, starts with this.",
    ),
]
Mode = Annotated[
    SearchMode,
    Field(description="hybrid (default: meaning and words), dense (meaning) or lexical (words)."),
]


class ReferenceMcp(ReferencePublic):
    url: str | None = Field(  # type: ignore[assignment]
        default=None, description="Over HTTP: where this service resolves the citation."
    )


class AnswerMcp(AnswerResponse):
    references: list[ReferenceMcp]  # type: ignore[assignment]


@contextmanager
def _tool_errors() -> Iterator[None]:
    """A domain error is the caller's to read and act on: a tool error with its message."""
    try:
        yield
    except QAError as exc:
        raise ToolError(str(exc)) from exc


def _result(structured: dict[str, Any], text: str) -> CallToolResult:
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=structured
    )


@contextmanager
def _logging_untouched() -> Iterator[None]:
    """``MCPServer()`` calls ``logging.basicConfig``; logging is the application's to set up."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def _http_request(ctx: Context[Any, Any]) -> Request | None:
    """The HTTP request a tool call came in (None over stdio, or called outside a session)."""
    try:
        request = ctx.request_context.request
    except ValueError:
        return None
    return request if isinstance(request, Request) else None


def build_server(
    retriever: RetrieverProvider,
    *,
    lifespan: Callable[[MCPServer[Any]], AbstractAsyncContextManager[Any]] | None = None,
) -> MCPServer[Any]:
    """The four tools over the ``Retriever`` that ``retriever()`` returns at each call."""
    with _logging_untouched():
        server: MCPServer[Any] = MCPServer(
            NAME, instructions=INSTRUCTIONS, version=__version__, lifespan=lifespan
        )

    @server.tool(annotations=_READ_ONLY, structured_output=True)
    def search(
        question: Question,
        top_k: TopK = 5,
        doc_ids: DocIds = None,
        section_prefix: SectionPrefix = None,
        mode: Mode = "hybrid",
    ) -> Annotated[CallToolResult, SearchResponse]:
        """Rank the corpus passages that best match a question. Each hit has its exact text,
        scores and citation (title, section path, lines, page, footnotes, anchor). Use it to
        find evidence; `answerable: false` means the corpus probably does not answer."""
        with _tool_errors():
            result = retriever().search(
                question,
                top_k=top_k,
                mode=mode,
                doc_ids=doc_ids,
                section_prefix=section_prefix,
            )
        return _result(search_result_json(result), search_text(result))

    @server.tool(annotations=_READ_ONLY, structured_output=True)
    def answer(
        question: Question,
        ctx: Context[Any, Any],
        top_k: TopK = 5,
        doc_ids: DocIds = None,
        section_prefix: SectionPrefix = None,
        mode: Mode = "hybrid",
    ) -> Annotated[CallToolResult, AnswerMcp]:
        """Answer a question from the corpus: one to three sentences quoted from the top
        passages, each followed by a marker [n] whose reference is that sentence's exact
        citation and anchor. When the corpus does not answer, the answer is a refusal with no
        references, and the hits are only the closest passages."""
        with _tool_errors():
            composed = answer_question(
                retriever(),
                question,
                top_k=top_k,
                mode=mode,
                doc_ids=doc_ids,
                section_prefix=section_prefix,
            )
        body = answer_json(composed)
        request = _http_request(ctx)
        if request is not None:
            for reference in body["references"]:
                reference["url"] = passage_url(request, reference["citation"]["anchor"])
        return _result(body, answer_text(composed))

    @server.tool(annotations=_READ_ONLY, structured_output=True)
    def read(
        anchor: Annotated[
            str,
            Field(
                min_length=1,
                max_length=1000,
                description="A citation anchor, doc_id#c<start>-<end>, as search and answer "
                "give it.",
            ),
        ],
        context: Annotated[
            int,
            Field(ge=0, le=MAX_CONTEXT_SENTENCES, description="Sentences before and after."),
        ] = 0,
    ) -> Annotated[CallToolResult, PassagePublic]:
        """Read the exact text an anchor names, with its citation, and optionally the
        sentences around it. Use it to quote or check a cited span."""
        with _tool_errors():
            found = resolve_anchor(retriever().index.documents, anchor, context=context)
        return _result(passage_json(found), passage_text(found))

    @server.tool(annotations=_READ_ONLY, structured_output=True)
    def list_documents() -> Annotated[CallToolResult, DocumentsPublic]:
        """List the documents in the corpus: doc_id, title, authors, date, format, length in
        characters, and warnings when a document's text may not be what its file shows."""
        with _tool_errors():
            body = documents_body(retriever())
        return _result(body.model_dump(mode="json"), documents_text(body))

    return server


class McpEndpoint:
    """The ASGI endpoint at ``/mcp``. Its session manager lives for one app lifespan
    (``running``), so an app can be started more than once. Stateless JSON responses: a tool
    call is one request and one response, and no session outlives it."""

    def __init__(self, server: MCPServer[Any], *, host: str) -> None:
        self.server = server
        self.host = host  # a loopback host turns on the SDK's DNS-rebinding protection
        self._running = False

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self.server.streamable_http_app(
            streamable_http_path=MCP_PATH, stateless_http=True, json_response=True, host=self.host
        )
        async with self.server.session_manager.run():
            self._running = True
            try:
                yield
            finally:
                self._running = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self._running:
            raise RuntimeError("the MCP endpoint is served only while the app is running")
        await self.server.session_manager.handle_request(scope, receive, send)


class OpenOnce:
    """The stdio provider: opens the index on first use and keeps it; a failure is raised
    to that call (a tool error) and the next call tries again."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._retriever: Retriever | None = None
        self._lock = threading.Lock()

    def __call__(self) -> Retriever:
        from qa.service import open_retriever

        with self._lock:
            if self._retriever is None:
                self._retriever = open_retriever(self.settings)
            return self._retriever

    def warm_up(self) -> None:
        try:
            self()
        except QAError as exc:
            logging.getLogger("qa.mcp").warning("cannot open the index yet: %s", exc)


def serve_stdio(settings: Settings) -> None:
    """``qa mcp``: serve the tools over stdin/stdout until the client closes them. The index
    opens in the background once serving starts (stray output then goes to stderr)."""
    provider = OpenOnce(settings)

    @asynccontextmanager
    async def opening(_: MCPServer[Any]) -> AsyncIterator[None]:
        threading.Thread(target=provider.warm_up, name="qa-mcp-open", daemon=True).start()
        yield

    build_server(provider, lifespan=opening).run("stdio")
