"""ASGI middleware that must act before a body is parsed or a route is chosen."""

from __future__ import annotations

import hmac
import json
from collections.abc import Iterable

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import openai_error_body, openai_route


async def _send_problem(
    scope: Scope, send: Send, status: int, title: str, detail: str, **headers: str
) -> None:
    """A problem-details response, or OpenAI's error shape on its routes (``api.errors``)."""
    if openai_route(scope.get("path", "")):
        code = "invalid_api_key" if status == 401 else "_".join(title.lower().split())
        payload = openai_error_body(status, detail, code)
        media = b"application/json"
    else:
        payload = {"type": "about:blank", "title": title, "status": status, "detail": detail}
        media = b"application/problem+json"
    body = json.dumps(payload).encode()
    raw_headers = [
        (b"content-type", media),
        (b"content-length", str(len(body)).encode()),
        *((k.lower().replace("_", "-").encode(), v.encode()) for k, v in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    """413 for bodies over ``max_bytes``: by Content-Length up front; a body without one
    (chunked) is read up to the limit before the app sees it, then replayed."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        detail = f"request body is larger than {self.max_bytes} bytes"
        headers = dict(scope.get("headers", []))
        if b"content-length" in headers:
            try:
                too_large = int(headers[b"content-length"]) > self.max_bytes
            except ValueError:
                await _send_problem(scope, send, 400, "Bad request", "invalid Content-Length")
                return
            if too_large:
                await _send_problem(scope, send, 413, "Request body too large", detail)
                return
            await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b"").lower():
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # client went away
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await _send_problem(scope, send, 413, "Request body too large", detail)
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


class ApiKeyMiddleware:
    """``Authorization: Bearer <key>`` on all paths but ``public`` and those starting with one of
    ``public_prefixes``; constant-time comparison."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        keys: Iterable[str],
        public: Iterable[str],
        public_prefixes: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.keys = [k.encode() for k in keys]
        self.public = frozenset(public)
        self.public_prefixes = tuple(public_prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path in self.public or path.startswith(self.public_prefixes):
            await self.app(scope, receive, send)
            return
        presented = b""
        for name, value in scope.get("headers", []):
            if name == b"authorization" and value[:7].lower() == b"bearer ":
                presented = value[7:].strip()
        # Compare with every key, always, so timing does not tell which (or whether one) matched.
        matched = False
        for key in self.keys:
            matched |= hmac.compare_digest(presented, key)
        if not matched:
            await _send_problem(
                scope,
                send,
                401,
                "Unauthorized",
                "send a valid API key as 'Authorization: Bearer <key>'",
                www_authenticate="Bearer",
            )
            return
        await self.app(scope, receive, send)
