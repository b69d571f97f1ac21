"""The OpenAPI document, the status rule, response truncation, and the API's place in the layering (only
skqueue.broker talks to Redis; the API never imports the worker or the scheduler)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from openapi_spec_validator import validate

from skqueue.api.openapi import document
from skqueue.api.routes import ROUTES
from skqueue.monitor.base import clip
from skqueue.monitor.cluster import verdict

PACKAGE = Path(__file__).resolve().parents[2] / "skqueue"


def test_openapi_document_is_valid_and_lists_every_route() -> None:
    doc = document()
    validate(doc)  # type: ignore[arg-type]
    for route in ROUTES:
        methods = {m.lower() for m in route.methods or () if m != "HEAD"}
        assert methods <= set(doc["paths"][route.path]), route.path
    assert len(doc["paths"]) == len({r.path for r in ROUTES})
    execute = doc["paths"]["/api/dashboard/celery/tasks/{task_name}/execute/"]["post"]
    assert {"202", "400", "401", "403", "404"} <= set(execute["responses"])


@pytest.mark.parametrize(("workers", "rate", "saturated", "expected"), [
    (0, 100.0, False, "critical"), (0, None, False, "critical"), (2, 79.99, False, "warning"),
    (2, None, False, "healthy"), (2, 80.0, False, "healthy"), (2, 100.0, True, "warning"),
])
def test_status_rule(workers: int, rate: float | None, saturated: bool, expected: str) -> None:
    assert verdict(workers, rate, saturated)[0] == expected


def test_clip_keeps_small_values_and_marks_cut_ones() -> None:
    assert clip([1, "a"], 20) == [1, "a"]
    cut = clip({"k": "x" * 50}, 20)
    assert isinstance(cut, str) and cut.startswith('{"k": "xxxx') and "truncated: 59 characters" in cut
    assert clip("y" * 30, 10) == "y" * 10 + "... [truncated: 30 characters]"


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return names


@pytest.mark.parametrize(("package", "forbidden"), [
    ("api", ("skqueue.worker", "skqueue.scheduler", "skqueue.dashboard")),
    ("monitor", ("skqueue.worker", "skqueue.scheduler", "skqueue.dashboard", "skqueue.api", "redis")),
])
def test_layering(package: str, forbidden: tuple[str, ...]) -> None:
    for path in sorted((PACKAGE / package).glob("*.py")):
        bad = {name for name in _imports(path) if name.startswith(forbidden)}
        assert not bad, f"{path.name} imports {bad}"
