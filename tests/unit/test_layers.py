"""The dependency direction of the package (style guide §4): lower layers never import higher ones."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "skqueue"

# package -> packages it must never import (directly, at any point in the module)
FORBIDDEN: dict[str, set[str]] = {
    "protocol": {"redis", "asyncio", "skqueue.broker", "skqueue.worker", "skqueue.scheduler", "skqueue.api",
                 "skqueue.monitor", "skqueue.dashboard"},
    "broker": {"skqueue.worker", "skqueue.scheduler", "skqueue.api", "skqueue.monitor", "skqueue.dashboard"},
    "monitor": {"skqueue.worker", "skqueue.scheduler", "skqueue.api"},
    "api": {"skqueue.worker", "skqueue.scheduler"},
    "worker": {"skqueue.api", "skqueue.monitor", "skqueue.scheduler", "skqueue.dashboard"},
    "scheduler": {"skqueue.worker", "skqueue.api", "skqueue.monitor", "skqueue.dashboard"},
    "dashboard": {"skqueue.worker", "skqueue.scheduler", "skqueue.api"},
}


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_downward(layer: str) -> None:
    violations = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name in _imports(path):
            for banned in FORBIDDEN[layer]:
                if name == banned or name.startswith(banned + "."):
                    violations.append(f"{path.relative_to(PACKAGE.parent)} imports {name}")
    assert violations == []
