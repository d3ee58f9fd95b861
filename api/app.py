"""``create_app(settings)``: loads the embedder and the index once, serves search and documents."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.routes import router
from qa.config import Settings
from qa.embed import Embedder
from qa.errors import QAError
from qa.retrieve import Retriever
from qa.service import open_embedder, open_retriever


@dataclass
class ServiceState:
    """What the routes need; ``problem`` says why search is unavailable when it is."""

    settings: Settings
    retriever: Retriever | None = None
    problem: QAError | None = field(default=None)

    def require(self) -> Retriever:
        if self.retriever is None:
            raise self.problem or QAError("the index is not loaded")
        return self.retriever


def create_app(
    settings: Settings, *, embedder: Embedder | None = None, retriever: Retriever | None = None
) -> FastAPI:
    state = ServiceState(settings, retriever)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if state.retriever is None:
            try:
                state.retriever = open_retriever(settings, embedder or open_embedder(settings))
            except QAError as exc:  # stay up and say why, instead of crash-looping
                state.problem = exc
        yield

    app = FastAPI(
        title="citeqa",
        version="0.1.0",
        summary="Ranked passages with exact citation anchors.",
        lifespan=lifespan,
    )
    app.state.service = state
    install_error_handlers(app)
    app.include_router(router)
    return app
