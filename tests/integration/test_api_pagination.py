"""$top, $skip, $count and @nextLink on the lists, read from the ZSET indexes."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tickwork.api import create_app
from tickwork.core import Once
from tickwork.core.model import Schedule
from tickwork.store import Store

from .api_support import T0, Api, Clock, tokens
from .seeding import Dumped, dumped

STARTS = "2026-12-01T08:00:00Z"


_SEEDS: dict[tuple[int, int], tuple[list[int], Dumped]] = {}


def _seed(store: Store, count: int, *, stack: int = 1) -> list[int]:
    """``count`` schedules written as the API writes them (one load test each): by ``put``
    the first time in the session, then as the keys those writes left (DUMP), restored under
    the test's own prefix (1,001 ``put`` calls take a second; the restore, 50 ms)."""
    prefix = store.keys.prefix
    if (count, stack) in _SEEDS:
        ids, saved = _SEEDS[count, stack]
        restore = store.client.pipeline(transaction=False)
        for suffix, ttl_ms, value in saved:
            restore.restore(prefix + suffix, ttl_ms, value)
        restore.execute()
        return ids
    ids = _put(store, count, stack=stack)
    keys = store.client.scan_iter(match=f"{prefix}:*", count=1000)
    saved = [(key[len(prefix) :], ttl, value) for key, ttl, value in dumped(store.client, keys)]
    _SEEDS[count, stack] = ids, saved
    return ids


def _put(store: Store, count: int, *, stack: int) -> list[int]:
    ids = []
    request = f'{{"starts":"{STARTS}","recurrence_rule":null,"cron":null}}'
    for load_test_id in range(1, count + 1):
        store.client.hset(
            store.keys.load_test(load_test_id), mapping={"stack": stack, "project_id": 1}
        )
        record = store.schedules.put(
            stack=stack,
            load_test_id=load_test_id,
            schedule=Schedule(T0.replace(month=12, day=1, hour=8), Once()),
            request=request,
            created_by="seed@example.com",
            now=T0,
        )
        ids.append(record.id)
    return ids


@pytest.fixture
def seeded(store: Store) -> list[int]:
    return _seed(store, 1001)


def _ids(body: dict[str, Any]) -> list[int]:
    return [item["id"] for item in body["value"]]


def test_default_page_is_1000_with_an_absolute_next_link(api: Api, seeded: list[int]) -> None:
    body = api.get("/cloud/v6/schedules").json()

    assert _ids(body) == seeded[:1000]
    assert "@count" not in body
    assert body["@nextLink"] == "http://testserver/cloud/v6/schedules?$skip=1000&$top=1000"


def test_following_next_link_reaches_the_end(api: Api, seeded: list[int]) -> None:
    first = api.get("/cloud/v6/schedules?$top=1000&$count=true").json()

    second = api.get(first["@nextLink"]).json()

    assert first["@count"] == second["@count"] == 1001
    assert _ids(second) == seeded[1000:]
    assert "@nextLink" not in second


@pytest.mark.parametrize(
    ("top", "expected"),
    [(0, 0), (1, 1), (1000, 1000)],
)
def test_top_bounds(api: Api, seeded: list[int], top: int, expected: int) -> None:
    response = api.get(f"/cloud/v6/schedules?$top={top}&$count=true")

    assert response.status_code == 200
    body = response.json()
    assert len(body["value"]) == expected
    assert body["@count"] == 1001


def test_top_zero_has_no_next_link(api: Api, seeded: list[int]) -> None:
    assert "@nextLink" not in api.get("/cloud/v6/schedules?$top=0").json()


def test_top_one_links_to_the_second_item(api: Api, seeded: list[int]) -> None:
    body = api.get("/cloud/v6/schedules?$top=1&$count=true").json()

    assert _ids(body) == seeded[:1]
    assert body["@nextLink"].endswith("/cloud/v6/schedules?$skip=1&$top=1&$count=true")
    assert _ids(api.get(body["@nextLink"]).json()) == seeded[1:2]


@pytest.mark.parametrize(
    "query", ["$top=1001", "$top=-1", "$skip=-1", "$top=abc", "$skip=1.5", "$count=maybe"]
)
def test_out_of_range_or_malformed_paging_is_400(api: Api, query: str) -> None:
    response = api.get(f"/cloud/v6/schedules?{query}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "validation_error"


def test_skip_past_the_end_is_an_empty_page(api: Api) -> None:
    load_test = api.load_test()
    api.schedule(load_test)

    body = api.get("/cloud/v6/schedules?$skip=5&$count=true").json()

    assert body == {"value": [], "@count": 1}


def test_huge_skip_is_an_empty_page_not_an_error(api: Api) -> None:
    response = api.get("/cloud/v6/schedules?$skip=9007199254740991")

    assert response.status_code == 200
    assert response.json() == {"value": []}


def test_list_is_ordered_by_id_and_stable_across_overwrites(api: Api) -> None:
    load_tests = [api.load_test() for _ in range(3)]
    ids = [api.schedule(lt)["id"] for lt in load_tests]

    api.schedule(load_tests[0], {"starts": "2026-12-09T08:00:00Z"})

    assert _ids(api.get("/cloud/v6/schedules").json()) == sorted(ids)


def test_other_lists_page_the_same_way(api: Api) -> None:
    project = api.project("paged")
    for _ in range(3):
        api.load_test(project)

    for path in (
        "/cloud/v6/projects",
        "/cloud/v6/load_tests",
        f"/cloud/v6/projects/{project}/load_tests",
    ):
        body = api.get(f"{path}?$top=1&$count=true").json()
        assert len(body["value"]) == 1, path
        assert "@nextLink" in body or body["@count"] == 1, path


@pytest.fixture
def public_app(store: Store, clock: Clock) -> Iterator[TestClient]:
    app: FastAPI = create_app(
        store, tokens=tokens(), clock=clock, public_url="https://tickwork.example.com/base/"
    )
    with TestClient(app) as client:
        yield client


def test_next_link_uses_the_public_url(public_app: TestClient, store: Store) -> None:
    _seed(store, 2)
    api = Api(public_app)

    body = api.get("/cloud/v6/schedules?$top=1").json()

    assert (
        body["@nextLink"] == "https://tickwork.example.com/base/cloud/v6/schedules?$skip=1&$top=1"
    )


def test_name_filter_is_kept_in_the_next_link(api: Api) -> None:
    project = api.project()
    api.load_test(project, name="same")
    api.load_test(api.project(), name="same")

    body = api.get("/cloud/v6/load_tests?name=same&$top=1").json()

    assert body["@nextLink"].endswith("/cloud/v6/load_tests?name=same&$skip=1&$top=1")
    assert api.get(body["@nextLink"]).json()["value"][0]["name"] == "same"
