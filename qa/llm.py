"""A client for any OpenAI-compatible chat server (llama.cpp server, vLLM, Ollama, LM Studio).

``POST {base_url}/chat/completions`` with ``{"model", "messages", "temperature": 0}``; the base
URL ends in ``/v1`` as OpenAI's does. ``chat`` returns the whole reply, ``stream_chat`` yields
its text deltas from the server-sent events (``data: {...}`` lines, ending ``data: [DONE]``).

Nothing here waits without a limit: connecting takes at most ``connect_timeout`` seconds and
each wait for bytes at most ``timeout``; a non-streamed reply still arriving ``timeout``
seconds after the request began is abandoned (a stream may run longer while it keeps moving).
A timeout raises ``UpstreamTimeoutError`` (HTTP 504 in ``api/``); a refused connection, a
non-2xx status (with the server's own message) or a reply that is not a chat completion
raises ``UpstreamError`` (502). Messages name the server by its base URL without any
credentials; the API key never appears in them.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from qa.config import Settings
from qa.errors import UpstreamError, UpstreamTimeoutError

Message = dict[str, str]
_EXCERPT = 300  # characters of an upstream error body quoted in our message


@dataclass(frozen=True)
class LLMSettings:
    base_url: str  # ends in /v1, no trailing slash
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 60.0
    connect_timeout: float = 5.0
    temperature: float = 0.0
    max_tokens: int = 1024

    @property
    def server(self) -> str:
        """The base URL as messages show it: any user:password@ part removed."""
        parts = urlsplit(self.base_url)
        host = parts.netloc.rpartition("@")[2]
        return urlunsplit((parts.scheme, host, parts.path, "", ""))


def llm_settings(settings: Settings) -> LLMSettings | None:
    """The model server ``QA_LLM_*`` configures, or None: answers stay extractive."""
    if not settings.llm_base_url:
        return None
    return LLMSettings(
        base_url=settings.llm_base_url.rstrip("/"),
        model=settings.llm_model,
        api_key=settings.llm_api_key,
        timeout=settings.llm_timeout,
        connect_timeout=settings.llm_connect_timeout,
    )


def chat(llm: LLMSettings, messages: list[Message]) -> str:
    """The whole reply of one chat completion (non-streaming)."""
    deadline = time.monotonic() + llm.timeout
    with _post(llm, messages, stream=False) as response:
        body = bytearray()
        for piece in response.iter_bytes():
            body += piece
            if time.monotonic() > deadline:
                raise UpstreamTimeoutError(llm.server, f"no complete reply in {llm.timeout:g} s")
    return _content(llm, bytes(body))


def stream_chat(llm: LLMSettings, messages: list[Message]) -> Iterator[str]:
    """The reply's text deltas as the server streams them."""
    with _post(llm, messages, stream=True) as response:
        if response.headers.get("content-type", "").startswith("application/json"):
            yield _content(llm, response.read())  # a server that does not stream
            return
        for line in response.iter_lines():
            if not line.startswith("data:"):
                continue  # blank separators, ": comments", "event:" and "id:" fields
            data = line[5:].strip()
            if data == "[DONE]":
                return
            event = _json(llm, data, "a stream event")
            if isinstance(event, dict) and event.get("error"):
                raise UpstreamError(llm.server, f"error in the stream: {_message(event)}")
            delta = _path(event, "choices", 0, "delta", "content")
            if isinstance(delta, str) and delta:
                yield delta


@contextmanager
def _post(llm: LLMSettings, messages: list[Message], *, stream: bool) -> Iterator[httpx.Response]:
    """The open response of a 2xx reply; every transport failure mapped to our errors."""
    body = {
        "model": llm.model,
        "messages": messages,
        "temperature": llm.temperature,
        "max_tokens": llm.max_tokens,
        "stream": stream,
    }
    headers = {"Accept": "text/event-stream" if stream else "application/json"}
    if llm.api_key:
        headers["Authorization"] = f"Bearer {llm.api_key}"
    timeout = httpx.Timeout(llm.timeout, connect=llm.connect_timeout)
    try:
        with (
            httpx.Client(timeout=timeout, headers=headers) as client,
            client.stream("POST", f"{llm.base_url}/chat/completions", json=body) as response,
        ):
            if not response.is_success:
                response.read()
                raise UpstreamError(llm.server, _status_reason(llm, response))
            yield response
    except httpx.ConnectTimeout:
        raise UpstreamTimeoutError(
            llm.server, f"could not connect in {llm.connect_timeout:g} s"
        ) from None
    except httpx.TimeoutException:
        raise UpstreamTimeoutError(llm.server, f"no reply in {llm.timeout:g} s") from None
    except httpx.HTTPError as exc:
        reason = f"{type(exc).__name__}: {_scrub(llm, str(exc))}".rstrip(": ")
        raise UpstreamError(llm.server, f"request failed ({reason})") from None


def _status_reason(llm: LLMSettings, response: httpx.Response) -> str:
    try:
        message = _message(response.json())
    except ValueError:
        message = response.text
    message = _scrub(llm, " ".join(message.split()))[:_EXCERPT] or "(empty body)"
    hint = {
        401: "; check QA_LLM_API_KEY",
        403: "; check QA_LLM_API_KEY",
        404: "; check QA_LLM_BASE_URL (it usually ends in /v1) and QA_LLM_MODEL",
    }.get(response.status_code, "")
    return f"HTTP {response.status_code}: {message}{hint}"


def _content(llm: LLMSettings, body: bytes) -> str:
    reply = _json(llm, body.decode("utf-8", "replace"), "the reply")
    content = _path(reply, "choices", 0, "message", "content")
    if not isinstance(content, str):
        excerpt = _scrub(llm, body.decode("utf-8", "replace"))[:_EXCERPT]
        raise UpstreamError(llm.server, f"the reply is not a chat completion: {excerpt!r}")
    return content


def _json(llm: LLMSettings, text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        excerpt = _scrub(llm, text)[:_EXCERPT]
        raise UpstreamError(llm.server, f"{what} is not JSON: {excerpt!r}") from None


def _path(value: Any, *keys: str | int) -> Any:
    for key in keys:
        if isinstance(key, int):
            value = value[key] if isinstance(value, list) and len(value) > key else None
        else:
            value = value.get(key) if isinstance(value, dict) else None
    return value


def _message(body: Any) -> str:
    """The error message of an OpenAI-style ``{"error": {"message": ...}}`` body (or close)."""
    error = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(error, dict):
        error = error.get("message") or error.get("detail") or error
    return error if isinstance(error, str) else json.dumps(error, ensure_ascii=False)


def _scrub(llm: LLMSettings, text: str) -> str:
    return text.replace(llm.api_key, "***") if llm.api_key else text
