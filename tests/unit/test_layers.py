"""The one direction of dependency: cli -> app -> everything else; nothing imports cli."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "piherd"


def imports(path: Path) -> set[str]:
    """Every piherd module `path` imports (from-imports name their module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("piherd")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("piherd"):
            found.add(node.module or "")
            found |= {f"{node.module}.{a.name}" for a in node.names}
    return found


def room(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


MODULES = sorted(SRC.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_nothing_imports_cli_and_app_imports_no_caller(path: Path) -> None:
    names = imports(path)
    if room(path) not in ("cli", "__main__"):  # __main__: `python -m piherd` runs the CLI
        assert not [n for n in names if n.startswith("piherd.cli")]
    if room(path) == "app":
        assert not [n for n in names if n.startswith(("piherd.web", "piherd.api"))]


@pytest.mark.parametrize("command", ["up", "render", "status", "watch", "run", "copy"])
def test_use_cases_are_not_in_the_cli(command: str) -> None:
    """The CLI parses and presents: connections, secrets, facts and records are app's."""
    names = imports(SRC / "cli" / f"{command}.py")
    owned = (
        "piherd.transport.pool",
        "piherd.transport.first_contact",
        "piherd.runner.apply.up",
        "piherd.runner.fanout",
        "piherd.ops",
        "piherd.bundle",
        "piherd.health.collect.HealthCollector",
        "piherd.secrets.render_context",
    )
    assert not [n for n in names if n.startswith(owned)]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_no_asyncio_wait_for(path: Path) -> None:
    """Timeouts use `asyncio.timeout`: on Python 3.11, `asyncio.wait_for` returns the
    result and drops the cancellation when a Ctrl-C lands as the awaited call finishes,
    so `piherd sim up` once ran to its end after a Ctrl-C."""
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Attribute) and node.attr == "wait_for":
            assert not (isinstance(node.value, ast.Name) and node.value.id == "asyncio"), (
                f"{path.name}:{node.lineno}: asyncio.wait_for"
            )
