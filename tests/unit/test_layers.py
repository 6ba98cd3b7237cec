"""The structure holds mechanically (issue 11): dependencies point inward, only the store
talks to Redis, and the core imports nothing outside the core."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "tickwork"
CORE_MAY_IMPORT = {"cronsim"}  # besides the standard library, tickwork.core and tickwork.errors


def _modules(under: Path) -> Iterator[tuple[str, ast.Module]]:
    for path in sorted(under.rglob("*.py")):
        yield str(path.relative_to(PACKAGE)), ast.parse(path.read_text())


def _imports(tree: ast.Module) -> Iterator[tuple[int, str]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.lineno, node.module


def test_the_layers_point_inward() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_core_imports_nothing_outside_the_core() -> None:
    found = []
    for name, tree in _modules(PACKAGE / "core"):
        for line, module in _imports(tree):
            top = module.split(".")[0]
            inside = module == "tickwork.errors" or module.startswith("tickwork.core")
            if top in sys.stdlib_module_names or top == "__future__" or inside:
                continue
            if top not in CORE_MAY_IMPORT:
                found.append(f"core/{name}:{line} imports {module}")
    assert found == []


def _store_reach(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """Where a module imports redis, uses a store's Redis client, or builds a key."""
    for line, module in _imports(tree):
        if module.split(".")[0] == "redis":
            yield line, f"imports {module}"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute):
            continue
        owner = node.value
        owner_name = (
            owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", "")
        ).lower()
        if node.attr == "client" and owner_name.endswith("store"):
            yield node.lineno, "uses the store's Redis client"
        if isinstance(owner, ast.Attribute) and owner.attr == "keys":
            yield node.lineno, f"builds a key (.keys.{node.attr})"


@pytest.mark.parametrize(
    "package",
    ["api", "console", "scheduler", "worker", "dialects", "core"],
)
def test_only_the_store_talks_to_redis(package: str) -> None:
    found = [
        f"{name}:{line} {what}"
        for name, tree in _modules(PACKAGE / package)
        for line, what in _store_reach(tree)
    ]
    assert found == []


def test_the_reach_check_finds_what_it_looks_for() -> None:
    # The check itself can fail: each of these is caught.
    sample = ast.parse(
        "import redis\n"
        "store.client.get('x')\n"
        "self._store.client.hgetall(k)\n"
        "store.keys.run(1)\n"
        "self._store.keys.due\n"
    )
    assert sorted(line for line, _ in _store_reach(sample)) == [1, 2, 3, 4, 5]
