"""The one place where domain errors become HTTP responses (RFC 9457 problem details)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from qa import errors as qa_errors

_STATUS: tuple[tuple[type[qa_errors.QAError], int, str], ...] = (
    (qa_errors.InvalidQueryError, 422, "Invalid query"),
    (qa_errors.DocumentNotFoundError, 404, "Document not found"),
    (qa_errors.IndexNotFoundError, 503, "Index not available"),
    (qa_errors.IndexMismatchError, 503, "Index does not match the service"),
    (qa_errors.IndexCorruptError, 503, "Index is corrupt"),
    (qa_errors.ConfigError, 503, "Service misconfigured"),
    (qa_errors.UpstreamTimeoutError, 504, "Model server timed out"),
    (qa_errors.UpstreamError, 502, "Model server failed"),
)


def problem(status: int, title: str, detail: str) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(body, status_code=status, media_type="application/problem+json")


def _validation_detail(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            where, message = "body", "request body is not valid JSON"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    async def on_qa_error(request: Request, exc: Exception) -> JSONResponse:
        for kind, status, title in _STATUS:
            if isinstance(exc, kind):
                return problem(status, title, str(exc))
        return problem(503, "Service unavailable", str(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        errors = exc.errors() if isinstance(exc, RequestValidationError) else []
        return problem(422, "Invalid request", _validation_detail(list(errors)))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else "error"
        return problem(status, str(detail), str(detail))

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return problem(500, "Internal error", "the server failed to answer; see its log")

    app.add_exception_handler(qa_errors.QAError, on_qa_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(Exception, on_unexpected)
