"""The one place where domain errors become HTTP responses: RFC 9457 problem details, or on
the OpenAI-compatible routes (``api.openai``) OpenAI's ``{"error": {...}}`` so its clients show
the message. The status is the same in both shapes, except that a request the service cannot
accept is 400 on OpenAI routes (what OpenAI answers), 422 elsewhere."""

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
    (qa_errors.BackendUnavailableError, 503, "Index store unavailable"),
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


# Paths whose errors take OpenAI's shape (its clients read ``error.message``, not ``detail``).
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")


def openai_route(path: str) -> bool:
    return path.startswith(OPENAI_PATHS)


class OpenAIRequestError(Exception):
    """An OpenAI-route error with its own ``code`` (``model_not_found``...)."""

    def __init__(self, status: int, message: str, *, code: str, param: str | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param = status, message, code, param


def openai_error_body(
    status: int, message: str, code: str, param: str | None = None
) -> dict[str, Any]:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def error_response(
    request: Request, status: int, title: str, detail: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """``problem(...)``, or the OpenAI shape on OpenAI routes."""
    if not openai_route(request.url.path):
        return problem(status, title, detail, headers)
    status = 400 if status == 422 else status
    code = "_".join(title.lower().split())
    return JSONResponse(
        openai_error_body(status, detail, code), status_code=status, headers=headers
    )


def is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/<x>+json``, parameters ignored: what FastAPI parses
    as JSON (any other body reaches validation as bytes)."""
    media = (content_type or "").split(";")[0].strip().lower()
    return media == JSON_MEDIA_TYPE or (
        media.startswith("application/") and media.endswith("+json")
    )


def _unsupported_media_type(request: Request, content_type: str | None) -> JSONResponse:
    got = f"got {content_type!r}" if content_type else "the request has no Content-Type"
    return error_response(
        request,
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
                return error_response(request, status, title, str(exc))
        return error_response(request, 503, "Service unavailable", str(exc))

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        errors = list(exc.errors()) if isinstance(exc, RequestValidationError) else []
        # A body route got a body it could not read as JSON because of its declared type: say
        # which type it takes (415), not that the bytes are "not a dictionary" (422).
        content_type = request.headers.get("content-type")
        if not is_json(content_type) and any(_on_body(e) for e in errors):
            return _unsupported_media_type(request, content_type)
        return error_response(request, 422, "Invalid request", _validation_detail(errors))

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, StarletteHTTPException) else 500
        detail = exc.detail if isinstance(exc, StarletteHTTPException) else "error"
        return error_response(request, status, str(detail), str(detail))

    async def on_openai(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, OpenAIRequestError):  # pragma: no cover - registered for it
            return await on_unexpected(request, exc)
        body = openai_error_body(exc.status, exc.message, exc.code, exc.param)
        return JSONResponse(body, status_code=exc.status)

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(
            request, 500, "Internal error", "the server failed to answer; see its log"
        )

    app.add_exception_handler(qa_errors.QAError, on_qa_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(OpenAIRequestError, on_openai)
    app.add_exception_handler(Exception, on_unexpected)
