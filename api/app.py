"""``create_app(settings)``: one embedder, the current index generation, hot reload, hardening."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from starlette.routing import Route

from api.answers import router as answers_router
from api.errors import install_error_handlers
from api.mcp_server import MCP_PATH, McpEndpoint, build_server
from api.middleware import ApiKeyMiddleware, BodyLimitMiddleware
from api.openai import router as openai_router
from api.page import PUBLIC_PATHS as PAGE_PATHS
from api.page import PUBLIC_PREFIXES as PAGE_PREFIXES
from api.page import router as page_router
from api.routes import router
from api.state import ServiceState
from qa import __version__
from qa.config import Settings
from qa.embed import Embedder
from qa.retrieve import Retriever
from qa.service import limit_threads

PUBLIC_PATHS = frozenset({"/healthz", "/readyz"}) | PAGE_PATHS
LOG_FORMAT = "%(levelname)s:     %(name)s: %(message)s"  # under uvicorn's own lines


def create_app(
    settings: Settings, *, embedder: Embedder | None = None, retriever: Retriever | None = None
) -> FastAPI:
    state = ServiceState(settings, retriever=retriever, embedder=embedder)
    mcp = McpEndpoint(build_server(state.require), host=settings.host)  # tools follow reloads

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        limit_threads(settings.threads)  # in every thread that computes, injected embedder or not
        if state.retriever is None:
            await asyncio.to_thread(state.reload, force=True)
        watcher = (
            asyncio.create_task(_watch(state, settings.reload_interval))
            if settings.reload_interval > 0
            else None
        )
        try:
            async with mcp.running():
                yield
        finally:
            if watcher is not None:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher

    app = FastAPI(
        title="citeqa",
        version=__version__,
        summary="Ranked passages with exact citation anchors.",
        lifespan=lifespan,
        docs_url=None,  # api.page serves /docs and /redoc from local files, not a CDN
        redoc_url=None,
    )
    app.state.service = state
    install_error_handlers(app)
    app.router.routes.append(Route(MCP_PATH, endpoint=mcp))  # MCP over streamable HTTP
    app.include_router(router)
    app.include_router(answers_router)
    app.include_router(openai_router)
    app.include_router(page_router)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["X-Index-Generation"],
        )
    if settings.api_keys:
        app.add_middleware(
            ApiKeyMiddleware,
            keys=settings.api_keys,
            public=PUBLIC_PATHS,
            public_prefixes=PAGE_PREFIXES,
        )
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    return app


def app_from_env() -> FastAPI:
    """The app of one ``qa serve --workers N`` process. uvicorn spawns each worker afresh and
    imports this factory by name, so the settings come from the environment, where the command
    line put what it resolved (``Settings.to_env``); each worker loads the index and watches it."""
    logging.basicConfig(format=LOG_FORMAT)
    logging.getLogger("qa").setLevel(logging.INFO)  # the generations it serves or refuses
    return create_app(Settings.from_env())


async def _watch(state: ServiceState, interval: float) -> None:
    """Poll ``CURRENT``; a new generation is loaded off the event loop, then swapped in."""
    while True:
        await asyncio.sleep(interval)
        await asyncio.to_thread(state.reload)
