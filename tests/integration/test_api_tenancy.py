"""Another stack's resources do not exist: every operation answers 404 and changes nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from tickwork.store import Store

from .api_support import ALICE, BOB, Api, snapshot


@dataclass(frozen=True)
class World:
    project: int
    load_test: int
    schedule: int
    run: int


@pytest.fixture
def world(api: Api) -> World:
    """Resources of stack 1, made by Alice."""
    project = api.project("stack one")
    load_test = api.load_test(project, name="stack one test")
    schedule = api.schedule(
        load_test, {"starts": "2026-12-01T08:00:00Z", "recurrence_rule": {"frequency": "DAILY"}}
    )["id"]
    run = api.post(f"/cloud/v6/load_tests/{load_test}/start").json()["id"]
    return World(project, load_test, schedule, run)


OPERATIONS: list[tuple[str, str, dict[str, Any]]] = [
    ("GET", "/cloud/v6/projects/{project}", {}),
    ("PATCH", "/cloud/v6/projects/{project}", {"json": {"name": "taken over"}}),
    ("DELETE", "/cloud/v6/projects/{project}", {}),
    ("GET", "/cloud/v6/projects/{project}/load_tests", {}),
    ("POST", "/cloud/v6/projects/{project}/load_tests", {"json": {"name": "intruder"}}),
    ("GET", "/cloud/v6/load_tests/{load_test}", {}),
    ("PATCH", "/cloud/v6/load_tests/{load_test}", {"json": {"name": "renamed"}}),
    ("DELETE", "/cloud/v6/load_tests/{load_test}", {}),
    ("GET", "/cloud/v6/load_tests/{load_test}/script", {}),
    ("PUT", "/cloud/v6/load_tests/{load_test}/script", {"content": b"evil()"}),
    ("POST", "/cloud/v6/load_tests/{load_test}/start", {}),
    ("GET", "/cloud/v6/load_tests/{load_test}/test_runs", {}),
    ("GET", "/cloud/v6/load_tests/{load_test}/schedule", {}),
    (
        "POST",
        "/cloud/v6/load_tests/{load_test}/schedule",
        {"json": {"starts": "2027-01-01T00:00:00Z"}},
    ),
    ("GET", "/cloud/v6/schedules/{schedule}", {}),
    ("DELETE", "/cloud/v6/schedules/{schedule}", {}),
    ("POST", "/cloud/v6/schedules/{schedule}/activate", {}),
    ("POST", "/cloud/v6/schedules/{schedule}/deactivate", {}),
    ("GET", "/cloud/v6/test_runs/{run}", {}),
    ("PATCH", "/cloud/v6/test_runs/{run}", {"json": {"note": "mine now"}}),
    ("POST", "/cloud/v6/test_runs/{run}/abort", {}),
]


@pytest.mark.parametrize(
    "caller",
    [
        pytest.param((BOB, 3), id="other_user_other_stack"),
        pytest.param((ALICE, 2), id="same_user_other_stack"),
    ],
)
@pytest.mark.parametrize(
    ("method", "template", "kwargs"), OPERATIONS, ids=lambda v: v if isinstance(v, str) else ""
)
def test_other_stack_gets_404_and_nothing_changes(
    api: Api,
    store: Store,
    world: World,
    caller: tuple[str, int],
    method: str,
    template: str,
    kwargs: dict[str, Any],
) -> None:
    before = snapshot(store)
    path = template.format(**vars(world))

    response = api.as_(*caller).request(method, path, **kwargs)

    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"
    assert snapshot(store) == before


def test_missing_resource_and_other_stacks_resource_answer_alike(api: Api, world: World) -> None:
    other = api.as_(BOB, 3).get(f"/cloud/v6/schedules/{world.schedule}")
    missing = api.as_(BOB, 3).get("/cloud/v6/schedules/987654")

    assert other.status_code == missing.status_code == 404
    assert other.json()["error"]["code"] == missing.json()["error"]["code"]


@pytest.mark.parametrize(
    "path",
    ["/cloud/v6/projects", "/cloud/v6/load_tests", "/cloud/v6/schedules", "/cloud/v6/test_runs"],
)
def test_lists_show_only_the_callers_stack(api: Api, world: World, path: str) -> None:
    mine = api.get(f"{path}?$count=true").json()
    theirs = api.as_(BOB, 3).get(f"{path}?$count=true").json()

    assert mine["@count"] == 1
    assert theirs == {"value": [], "@count": 0}


def test_same_names_live_side_by_side_in_different_stacks(api: Api, world: World) -> None:
    bob = api.as_(BOB, 3)

    project = bob.project("stack one")
    bob.load_test(project, name="stack one test")

    assert bob.get("/cloud/v6/load_tests?name=stack one test&$count=true").json()["@count"] == 1
    assert api.get("/cloud/v6/load_tests?name=stack one test&$count=true").json()["@count"] == 1
