"""The library stays below its shells: nothing in ``qa/`` imports ``api``, ``eval`` or ``cli``,
nor the web and MCP frameworks they are built on (issue 16, item 12)."""

from __future__ import annotations

import ast
import tomllib

from conftest import ROOT

# Top-level names the library must never import, at module level or inside a function.
_SHELLS = frozenset({"api", "eval", "cli", "fastapi", "mcp"})


def _imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every absolute import anywhere in ``tree``, nested ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
    return found


def _offenders(source: str, name: str) -> list[str]:
    return [
        f"{name}:{line} imports {module}"
        for line, module in _imported_modules(ast.parse(source, filename=name))
        if module.split(".")[0] in _SHELLS
    ]


def test_the_library_imports_none_of_its_shells() -> None:
    files = sorted((ROOT / "qa").rglob("*.py"))
    assert len(files) > 20  # the library itself, not an empty glob
    offenders = [
        problem
        for path in files
        for problem in _offenders(path.read_text("utf-8"), str(path.relative_to(ROOT)))
    ]
    assert not offenders, f"qa/ must not import its shells or their frameworks: {offenders}"


def test_the_check_sees_function_level_and_from_imports() -> None:
    source = (
        "import json\n"
        "import eval.harness as h\n"
        "from qa.config import Settings\n"
        "def serve() -> None:\n"
        "    from api import create_app\n"
        "    import fastapi, uvicorn\n"
        "class C:\n"
        "    def f(self) -> None:\n"
        "        from mcp.server import Server\n"
        "        from cli import main\n"
        "from . import evaluation\n"
    )
    assert _offenders(source, "x.py") == [
        "x.py:2 imports eval.harness",
        "x.py:5 imports api",
        "x.py:6 imports fastapi",
        "x.py:9 imports mcp.server",
        "x.py:10 imports cli",
    ]


def test_the_command_line_lives_beside_the_shells() -> None:
    import cli
    from cli.commands import main

    assert not (ROOT / "qa" / "cli.py").exists()
    assert cli.main is main
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    assert pyproject["project"]["scripts"]["qa"] == "cli:main"
    assert "cli*" in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    assert "cli" in pyproject["tool"]["mypy"]["files"]
