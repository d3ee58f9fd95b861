"""The research page and the API docs, served from files shipped in packages: no CDN.

``GET /`` is ``api/static/index.html``; its script and style sheet are ``/static/<name>``. The
page talks to the JSON API on the same origin only, and its Content-Security-Policy forbids
anything else, so it works on a machine without internet. ``/docs`` (Swagger UI) and
``/redoc`` load their bundles from ``/docs-assets/<name>``, the files the ``fastapi-offline``
package ships, instead of FastAPI's default CDN links.

ReDoc's bundle draws the Redocly logo from ``cdn.redoc.ly``, its one external request; it is
served with that address replaced by a blank inline image. Only the files in those two folders
are served, looked up by exact name (no paths, so no traversal). The app must be created with
``docs_url=None, redoc_url=None`` for these routes to replace FastAPI's own.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, Response

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/static/"
DOCS_ASSETS_PREFIX = "/docs-assets/"
# Paths the API-key middleware leaves open: the page asks for a key itself, then sends it. The
# docs and the OpenAPI schema keep needing a key, like every route that describes the API.
PUBLIC_PATHS = frozenset({"/"})
PUBLIC_PREFIXES = (STATIC_PREFIX, DOCS_ASSETS_PREFIX)

# The page may load and call its own origin only; inline script and style are not allowed.
PAGE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; manifest-src 'self'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Swagger UI and ReDoc start from an inline script and inject styles; ReDoc runs a blob worker.
DOCS_CSP = (
    "default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src 'self' blob:; "
    "base-uri 'none'; frame-ancestors 'none'"
)
_HEADERS = {"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer"}
REDOC_BUNDLE = "redoc.standalone.js"
_REDOC_LOGO = b"https://cdn.redoc.ly/redoc/logo-mini.svg"
_BLANK_IMAGE = b"data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='1'/%3E"

router = APIRouter(include_in_schema=False)


def _docs_assets_dir() -> Path:
    try:
        import fastapi_offline
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise RuntimeError(
            "the offline API docs need fastapi-offline: pip install fastapi-offline"
        ) from exc
    return Path(fastapi_offline.__file__).resolve().parent / "static"


def _files(folder: Path) -> dict[str, Path]:
    return {p.name: p for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}


_STATIC = _files(STATIC_DIR)
_DOCS_ASSETS = _files(_docs_assets_dir())


def _file(files: dict[str, Path], name: str, cache: str) -> FileResponse:
    path = files.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no such file: {name}")
    return FileResponse(path, headers={**_HEADERS, "Cache-Control": cache})


@router.api_route("/", methods=["GET", "HEAD"])
def page() -> FileResponse:
    """The research page: ask, read the ranked passages, check each citation in its document."""
    response = _file(_STATIC, "index.html", "no-cache")
    response.headers["Content-Security-Policy"] = PAGE_CSP
    return response


@router.api_route(STATIC_PREFIX + "{name}", methods=["GET", "HEAD"])
def static_file(name: str) -> FileResponse:
    # no-cache: the browser revalidates (ETag), so a new release is never mixed with old files.
    return _file(_STATIC, name, "no-cache")


@cache
def _redoc_bundle() -> bytes:
    return _DOCS_ASSETS[REDOC_BUNDLE].read_bytes().replace(_REDOC_LOGO, _BLANK_IMAGE)


@router.api_route(DOCS_ASSETS_PREFIX + "{name}", methods=["GET", "HEAD"])
def docs_asset(name: str) -> Response:
    cache_control = "public, max-age=86400"
    if name == REDOC_BUNDLE and name in _DOCS_ASSETS:
        headers = {**_HEADERS, "Cache-Control": cache_control}
        return Response(_redoc_bundle(), media_type="text/javascript", headers=headers)
    return _file(_DOCS_ASSETS, name, cache_control)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    response = get_swagger_ui_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - Swagger UI",
        swagger_js_url=f"{root}{DOCS_ASSETS_PREFIX}swagger-ui-bundle.js",
        swagger_css_url=f"{root}{DOCS_ASSETS_PREFIX}swagger-ui.css",
        swagger_favicon_url=f"{root}{DOCS_ASSETS_PREFIX}favicon.png",
        # The default validator badge is an image from validator.swagger.io.
        swagger_ui_parameters={**(request.app.swagger_ui_parameters or {}), "validatorUrl": None},
    )
    response.headers.update({**_HEADERS, "Content-Security-Policy": DOCS_CSP})
    return response


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    root = request.scope.get("root_path", "")
    response = get_redoc_html(
        openapi_url=f"{root}{request.app.openapi_url}",
        title=f"{request.app.title} - ReDoc",
        redoc_js_url=f"{root}{DOCS_ASSETS_PREFIX}redoc.standalone.js",
        redoc_favicon_url=f"{root}{DOCS_ASSETS_PREFIX}favicon.png",
        with_google_fonts=False,
    )
    response.headers.update({**_HEADERS, "Content-Security-Policy": DOCS_CSP})
    return response
