"""One version: qa.__version__ is what the installed package, the API and the MCP server report."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import qa
from api.app import create_app
from api.mcp_server import build_server
from qa.config import Settings


def test_installed_package_has_the_source_version() -> None:
    assert importlib.metadata.version("citeqa") == qa.__version__


def test_api_and_mcp_report_the_source_version(tmp_path: Path) -> None:
    settings = Settings(index_dir=tmp_path, corpus_dir=tmp_path, embed_model="hash:64")
    assert create_app(settings).version == qa.__version__
    assert create_app(settings).openapi()["info"]["version"] == qa.__version__
    assert build_server(lambda: None).version == qa.__version__
