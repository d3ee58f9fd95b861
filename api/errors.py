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


JSON_MEDIA_TYPE = "application/json"


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    return JSONResponse(
        body, status_code=status, media_type="application/problem+json", headers=headers
    )


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<x>+json``, parameters ignored: what FastAPI parses
    as JSON (any other body reaches validation as bytes)."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == JSON_MEDIA_TYPE or (
        media.startswith("application/") and media.endswith("+json")
    )


def _unsupported_media_type(content_type: str | None) -> JSONResponse:
    got = f"got {content_type!r}" if content_type else "the request has no Content-Type"
    return problem(
        415,
        "Unsupported Media Type",
        f"the request body must be JSON sent as Content-Type: {JSON_MEDIA_TYPE}; {got}",
        headers={"Accept-Post": JSON_MEDIA_TYPE},
    )


def _validation_detail(errors: list[Any]) -> str:
    parts = []
    for error in errors:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
        if error.get("type") == "json_invalid":
            where, message = "body", "request body is not valid JSON"
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _on_body(error: Any) -> bool:
    return tuple(error.get("loc", ()))[:1] == ("body",)


def install_error_handlers(app: FastAPI) -> None:
    async def on_qa_error(request: Request, exc: Exception) -> JSONResponse:
        for kind, status, title in _STATUS:
            if isinstance(exc, kind):
                return problem(status, title, str(exc))
        return problem(503, "Service unavailable", str(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        errors = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
        # A body route got a body it could not read as JSON because of its declared type: say
        # which type it takes (415), not that the bytes are "not a dictionary" (422).
        content_type = request.headers.get("content-type")
        if not is_json(content_type) and any(_on_body(e) for e in errors):
            return _unsupported_media_type(content_type)
        return problem(422, "Invalid request", _validation_detail(errors))

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
