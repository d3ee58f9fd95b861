"""API keys, CORS, bind address, and no unsafe deserialisation anywhere in the code."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import ROOT
from fastapi.testclient import TestClient

from api import create_app
from qa.config import Settings
from qa.retrieve import Retriever


@pytest.fixture
def secured(corpus_settings: Settings, corpus_retriever: Retriever) -> TestClient:
    settings = corpus_settings.with_(api_keys=("k-one", "k-two"), reload_interval=0)
    return TestClient(create_app(settings, retriever=corpus_retriever))


def test_keys_are_read_from_the_environment() -> None:
    settings = Settings.from_env({"QA_API_KEYS": " a1 , b2,", "QA_CORS_ORIGINS": "https://x.org"})
    assert settings.api_keys == ("a1", "b2")
    assert settings.cors_origins == ("https://x.org",)
    assert Settings.from_env({}).api_keys == () and Settings.from_env({}).cors_origins == ()
    assert Settings.from_env({}).host == "127.0.0.1"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/search"),
        ("GET", "/v1/index"),
        ("GET", "/v1/documents"),
        ("GET", "/docs"),
        ("GET", "/openapi.json"),
        ("POST", "/v1/admin/reload"),
        ("GET", "/no/such/route"),
    ],
)
def test_every_route_but_health_needs_a_key(secured: TestClient, method: str, path: str) -> None:
    body = {"question": "稀土"} if method == "POST" else None
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "k-one"}):
        response = secured.request(method, path, json=body, headers=headers)
        assert response.status_code == 401, (path, headers)
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.headers["content-type"] == "application/problem+json"
        assert "Bearer" in response.json()["detail"]
    for key in ("k-one", "k-two"):
        response = secured.request(
            method, path, json=body, headers={"Authorization": f"Bearer {key}"}
        )
        assert response.status_code != 401, (path, key)


def test_health_probes_are_public(secured: TestClient) -> None:
    assert secured.get("/healthz").status_code == 200
    assert secured.get("/readyz").status_code == 200


def test_cors_is_off_unless_configured(
    client: TestClient, corpus_settings: Settings, corpus_retriever: Retriever
) -> None:
    preflight = {"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    response = client.options("/v1/search", headers=preflight)
    assert "access-control-allow-origin" not in response.headers
    settings = corpus_settings.with_(cors_origins=("https://app.example",), reload_interval=0)
    with TestClient(create_app(settings, retriever=corpus_retriever)) as allowed:
        ok = allowed.options(
            "/v1/search",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert ok.headers["access-control-allow-origin"] == "https://app.example"
        other = allowed.options("/v1/search", headers=preflight)
        assert "access-control-allow-origin" not in other.headers


def test_no_unsafe_deserialisation_in_the_code() -> None:
    sources = [p for d in ("qa", "api", "eval") for p in (ROOT / d).rglob("*.py")]
    assert sources
    forbidden = [
        re.compile(r"\bimport pickle\b|\bpickle\.load"),
        re.compile(r"torch\.load\((?![^)]*weights_only=True)"),
        re.compile(r"trust_remote_code\s*=\s*True"),
        re.compile(r"allow_pickle\s*=\s*True"),
    ]
    for path in sources:
        text = Path(path).read_text("utf-8")
        for pattern in forbidden:
            assert not pattern.search(text), (path, pattern.pattern)
