"""The Kragle-style schedules API against a real Redis: every request and response shape of
its document, tickwork's jobs that bind a schedule to a load test, auth and tenancy."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tickwork.api import create_app
from tickwork.core.instants import format_instant, parse_instant, to_ms
from tickwork.errors import SettingsError
from tickwork.settings import load_settings
from tickwork.store import Store
from tickwork.store.connection import text_of

from .api_support import ALICE, BOB, MAX_BODY, T0, Api, Clock, snapshot, tokens

SCHEDULE_KEYS = {"id", "name", "once", "config"}
LIST_KEYS = {"count", "pagesize", "page", "schedules"}
JOB_KEYS = {"id", "schedule_id", "load_test_id", "next_run", "created_by"}


def _create(api: Api, body: dict[str, Any]) -> int:
    response = api.post("/kragle/schedules", json=body)
    assert response.status_code == 200, response.text
    return int(response.json()["id"])


def _job(api: Api, schedule_id: int, load_test_id: int) -> dict[str, Any]:
    response = api.post(
        "/kragle/jobs", json={"schedule_id": schedule_id, "load_test_id": load_test_id}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _code(response: Any) -> str:
    return str(response.json()["error"]["code"])


def _targets(response: Any) -> set[str]:
    return {detail["target"] for detail in response.json()["error"]["details"]}


# POST /schedules


def test_post_answers_the_new_id_only(api: Api) -> None:
    response = api.post("/kragle/schedules", json={"name": "hourly", "config": {"period": 3600}})

    assert response.status_code == 200
    assert set(response.json()) == {"id"}
    assert isinstance(response.json()["id"], int)


def test_post_defaults_name_to_none_and_once_to_false(api: Api) -> None:
    schedule_id = _create(api, {"config": {"period": 60}})

    body = api.get(f"/kragle/schedules/byid/{schedule_id}").json()

    assert body == {"id": schedule_id, "name": None, "once": False, "config": {"period": 60}}


def test_post_one_time_schedule_with_a_timestamp(api: Api) -> None:
    schedule_id = _create(
        api, {"name": "launch", "once": True, "config": {"timestamp": 1_798_761_600}}
    )

    body = api.get(f"/kragle/schedules/byid/{schedule_id}").json()

    assert body == {
        "id": schedule_id,
        "name": "launch",
        "once": True,
        "config": {"timestamp": 1_798_761_600},
    }


@pytest.mark.parametrize(
    ("body", "target"),
    [
        pytest.param({"name": "x"}, "config", id="config_missing"),
        pytest.param({"config": 60}, "config", id="config_not_object"),
        pytest.param({"config": {"period": 0}}, "config.period", id="period_zero"),
        pytest.param({"config": {"period": "60"}}, "config.period", id="period_text"),
        pytest.param({"config": {"period": True}}, "config.period", id="period_bool"),
        pytest.param({"config": {"period": 1.5}}, "config.period", id="period_fraction"),
        pytest.param({"config": {"period": 10**12}}, "config.period", id="period_huge"),
        pytest.param({"config": {"perid": 60}}, "config.perid", id="unknown_element"),
        pytest.param({"config": {"timestamp": -1}, "once": True}, "config.timestamp", id="ts_neg"),
        pytest.param(
            {"config": {"timestamp": 10**13}, "once": True}, "config.timestamp", id="ts_big"
        ),
        pytest.param({"config": {}, "once": True}, "config.timestamp", id="once_no_timestamp"),
        pytest.param(
            {"config": {"period": 60, "timestamp": 1}, "once": True},
            "config.period",
            id="once_with_period",
        ),
        pytest.param({"config": {"timestamp": 1}}, "config.period", id="repeating_no_period"),
        pytest.param({"config": {"period": 60}, "once": "yes"}, "once", id="once_text"),
        pytest.param({"config": {"period": 60}, "name": 7}, "name", id="name_number"),
        pytest.param({"config": {"period": 60}, "name": "n" * 256}, "name", id="name_long"),
    ],
)
def test_post_refuses_an_invalid_schedule_naming_the_field(
    api: Api, store: Store, body: dict[str, Any], target: str
) -> None:
    before = snapshot(store)

    response = api.post("/kragle/schedules", json=body)

    assert response.status_code == 400, response.text
    assert _code(response) == "validation_error"
    assert target in _targets(response)
    assert snapshot(store) == before


def test_post_refuses_what_is_not_json(api: Api) -> None:
    assert api.post("/kragle/schedules", content=b"period=60").status_code == 415
    response = api.post(
        "/kragle/schedules", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert _code(response) == "invalid_json"


# GET /schedules and /schedules/byid/<id>


def test_list_is_page_numbered_ten_a_page(api: Api) -> None:
    ids = [_create(api, {"name": f"s{i}", "config": {"period": 60 + i}}) for i in range(23)]

    first = api.get("/kragle/schedules").json()
    third = api.get("/kragle/schedules", params={"page": 3}).json()
    beyond = api.get("/kragle/schedules", params={"page": 4}).json()

    assert set(first) == LIST_KEYS
    assert (first["count"], first["pagesize"], first["page"]) == (23, 10, 1)
    assert [s["id"] for s in first["schedules"]] == ids[:10]
    assert all(set(s) == SCHEDULE_KEYS for s in first["schedules"])
    assert first["schedules"][0] == {
        "id": ids[0],
        "name": "s0",
        "once": False,
        "config": {"period": 60},
    }
    assert (third["count"], third["pagesize"], third["page"]) == (23, 10, 3)
    assert [s["id"] for s in third["schedules"]] == ids[20:]
    assert beyond == {"count": 23, "pagesize": 10, "page": 4, "schedules": []}


def test_list_of_a_stack_without_schedules_is_empty(api: Api) -> None:
    assert api.get("/kragle/schedules").json() == {
        "count": 0,
        "pagesize": 10,
        "page": 1,
        "schedules": [],
    }


@pytest.mark.parametrize("page", ["0", "-1", "x", "1.5", str(2**60)])
def test_list_refuses_a_page_that_is_not_a_positive_integer(api: Api, page: str) -> None:
    response = api.get("/kragle/schedules", params={"page": page})

    assert response.status_code == 400
    assert _targets(response) == {"page"}


def test_get_by_id_of_a_missing_schedule_is_404(api: Api) -> None:
    response = api.get("/kragle/schedules/byid/999")

    assert response.status_code == 404
    assert _code(response) == "not_found"


# PUT /schedules/


def test_put_changes_the_given_fields_and_answers_the_schedule(api: Api) -> None:
    schedule_id = _create(api, {"name": "old", "config": {"period": 60}})

    renamed = api.put("/kragle/schedules/", json={"id": schedule_id, "name": "new"})
    retimed = api.put("/kragle/schedules/", json={"id": schedule_id, "config": {"period": 120}})

    assert renamed.status_code == 200
    assert renamed.json() == {
        "id": schedule_id,
        "name": "new",
        "once": False,
        "config": {"period": 60},
    }
    assert retimed.json() == {
        "id": schedule_id,
        "name": "new",
        "once": False,
        "config": {"period": 120},
    }
    assert api.get(f"/kragle/schedules/byid/{schedule_id}").json() == retimed.json()


def test_put_turns_a_repeating_schedule_into_a_one_time_one(api: Api) -> None:
    schedule_id = _create(api, {"config": {"period": 60}})

    response = api.put(
        "/kragle/schedules/",
        json={"id": schedule_id, "once": True, "config": {"timestamp": 1_798_761_600}},
    )

    assert response.json()["once"] is True
    assert response.json()["config"] == {"timestamp": 1_798_761_600}


def test_put_without_the_trailing_slash_is_the_same_operation(api: Api) -> None:
    schedule_id = _create(api, {"config": {"period": 60}})

    response = api.put("/kragle/schedules", json={"id": schedule_id, "name": "no slash"})

    assert response.status_code == 200
    assert response.json()["name"] == "no slash"


def test_put_can_clear_the_name(api: Api) -> None:
    schedule_id = _create(api, {"name": "named", "config": {"period": 60}})

    assert (
        api.put("/kragle/schedules/", json={"id": schedule_id, "name": None}).json()["name"] is None
    )


@pytest.mark.parametrize(
    ("body", "status", "target"),
    [
        pytest.param({"name": "x"}, 400, "id", id="id_missing"),
        pytest.param({"id": "1", "name": "x"}, 400, "id", id="id_text"),
        pytest.param({"id": 1, "once": None}, 400, "once", id="once_null"),
        pytest.param({"id": 1, "config": None}, 400, "config", id="config_null"),
        pytest.param({"id": 1, "once": True}, 400, "config.timestamp", id="once_needs_timestamp"),
        pytest.param({"id": 1, "config": {"period": -5}}, 400, "config.period", id="period_neg"),
        pytest.param({"id": 999, "name": "x"}, 404, None, id="unknown_id"),
    ],
)
def test_put_refuses_what_cannot_apply(
    api: Api, store: Store, body: dict[str, Any], status: int, target: str | None
) -> None:
    assert _create(api, {"config": {"period": 60}}) == 1
    before = snapshot(store)

    response = api.put("/kragle/schedules/", json=body)

    assert response.status_code == status, response.text
    if target is not None:
        assert target in _targets(response)
    assert snapshot(store) == before


# Auth, the public listing setting, tenancy


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/kragle/schedules", None),
        ("GET", "/kragle/schedules/byid/1", None),
        ("POST", "/kragle/schedules", {"config": {"period": 60}}),
        ("PUT", "/kragle/schedules/", {"id": 1, "name": "x"}),
        ("DELETE", "/kragle/schedules/byid/1", None),
        ("GET", "/kragle/jobs", None),
        ("POST", "/kragle/jobs", {"schedule_id": 1, "load_test_id": 1}),
        ("GET", "/kragle/jobs/byid/1", None),
        ("DELETE", "/kragle/jobs/byid/1", None),
    ],
)
def test_every_operation_needs_a_token_by_default(
    api: Api, method: str, path: str, body: dict[str, Any] | None
) -> None:
    response = api.as_(token=None).request(method, path, json=body)

    assert response.status_code == 401
    assert _code(response) == "unauthenticated"
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.fixture
def public(store: Store, clock: Clock) -> Iterator[Api]:
    """The API with TICKWORK_KRAGLE_PUBLIC_LISTING on."""
    app = create_app(
        store,
        tokens=tokens(),
        max_body_bytes=MAX_BODY,
        queue_name=f"{store.keys.prefix}-runs",
        clock=clock,
        kragle_public_listing=True,
    )
    with TestClient(app) as client:
        yield Api(client)


def test_public_listing_answers_the_two_reads_without_a_token(public: Api) -> None:
    schedule_id = _create(public, {"name": "shared", "config": {"period": 60}})
    anonymous = public.as_(token=None, stack=None)

    listed = anonymous.get("/kragle/schedules")
    one = anonymous.get(f"/kragle/schedules/byid/{schedule_id}")

    assert listed.status_code == one.status_code == 200
    assert [s["id"] for s in listed.json()["schedules"]] == [schedule_id]
    assert one.json()["name"] == "shared"
    assert anonymous.post("/kragle/schedules", json={"config": {"period": 1}}).status_code == 401
    assert anonymous.get("/kragle/jobs").status_code == 401


def test_public_listing_reads_the_stack_the_caller_names(public: Api) -> None:
    _create(public.as_(BOB, 3), {"name": "bob's", "config": {"period": 60}})

    in_three = public.as_(token=None, stack=3).get("/kragle/schedules").json()
    in_one = public.as_(token=None, stack=None).get("/kragle/schedules").json()

    assert [s["name"] for s in in_three["schedules"]] == ["bob's"]
    assert in_one["count"] == 0


def test_public_listing_still_refuses_a_wrong_token(public: Api) -> None:
    response = public.as_(token="not-a-token-at-all-xx").get("/kragle/schedules")

    assert response.status_code == 401


def test_another_stacks_schedules_and_jobs_do_not_exist(api: Api, store: Store) -> None:
    load_test = api.load_test()
    schedule_id = _create(api, {"config": {"period": 60}})
    job = _job(api, schedule_id, load_test)
    bob = api.as_(BOB, 3)
    before = snapshot(store)

    answers = [
        bob.get(f"/kragle/schedules/byid/{schedule_id}"),
        bob.put("/kragle/schedules/", json={"id": schedule_id, "name": "mine"}),
        bob.delete(f"/kragle/schedules/byid/{schedule_id}"),
        bob.get(f"/kragle/jobs/byid/{job['id']}"),
        bob.delete(f"/kragle/jobs/byid/{job['id']}"),
        bob.post("/kragle/jobs", json={"schedule_id": schedule_id, "load_test_id": load_test}),
    ]

    assert [r.status_code for r in answers] == [404] * len(answers)
    assert {_code(r) for r in answers} == {"not_found"}
    assert bob.get("/kragle/schedules").json()["count"] == 0
    assert bob.get("/kragle/jobs").json()["count"] == 0
    assert snapshot(store) == before


def test_a_token_may_not_act_in_another_stack(api: Api) -> None:
    response = api.as_(ALICE, 3).get("/kragle/schedules")

    assert response.status_code == 403


# Jobs


def test_job_binds_a_schedule_to_a_load_test_and_says_when_it_runs(api: Api) -> None:
    load_test = api.load_test()
    schedule_id = _create(api, {"config": {"period": 600}})

    job = _job(api, schedule_id, load_test)

    assert set(job) == JOB_KEYS
    assert (job["schedule_id"], job["load_test_id"]) == (schedule_id, load_test)
    assert job["next_run"] == format_instant(T0 + timedelta(seconds=600))
    assert job["created_by"] == "alice@example.com"
    assert api.get(f"/kragle/jobs/byid/{job['id']}").json() == job


def test_a_periodic_schedule_with_a_timestamp_first_runs_then(api: Api) -> None:
    load_test = api.load_test()
    first = int((T0 + timedelta(hours=2)).timestamp())
    schedule_id = _create(api, {"config": {"period": 60, "timestamp": first}})

    job = _job(api, schedule_id, load_test)

    assert job["next_run"] == format_instant(T0 + timedelta(hours=2))


def test_a_job_on_a_past_one_time_schedule_never_runs(api: Api, store: Store) -> None:
    load_test = api.load_test()
    past = int((T0 - timedelta(days=1)).timestamp())
    schedule_id = _create(api, {"once": True, "config": {"timestamp": past}})

    job = _job(api, schedule_id, load_test)

    assert job["next_run"] is None
    assert store.client.zscore(store.keys.due, str(job["id"])) is None


def test_jobs_list_is_page_numbered(api: Api) -> None:
    schedule_id = _create(api, {"config": {"period": 60}})
    jobs = [_job(api, schedule_id, api.load_test())["id"] for _ in range(11)]

    first = api.get("/kragle/jobs").json()
    second = api.get("/kragle/jobs", params={"page": 2}).json()

    assert (first["count"], first["pagesize"], first["page"]) == (11, 10, 1)
    assert [j["id"] for j in first["jobs"] + second["jobs"]] == jobs


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"schedule_id": 999, "load_test_id": "LT"}, 404),
        ({"schedule_id": "S", "load_test_id": 999}, 404),
        ({"schedule_id": "S"}, 400),
        ({"schedule_id": "S", "load_test_id": "LT", "extra": 1}, 400),
        ({"schedule_id": "S", "load_test_id": "1"}, 400),
    ],
)
def test_job_refuses_what_does_not_exist_or_is_malformed(
    api: Api, store: Store, body: dict[str, Any], status: int
) -> None:
    load_test = api.load_test()
    schedule_id = _create(api, {"config": {"period": 60}})
    filled = {k: {"S": schedule_id, "LT": load_test}.get(v, v) for k, v in body.items()}
    before = snapshot(store)

    response = api.post("/kragle/jobs", json=filled)

    assert response.status_code == status, response.text
    assert snapshot(store) == before


def test_a_second_job_of_one_schedule_and_load_test_is_409(api: Api, store: Store) -> None:
    load_test = api.load_test()
    schedule_id = _create(api, {"config": {"period": 60}})
    first = _job(api, schedule_id, load_test)
    before = snapshot(store)

    response = api.post(
        "/kragle/jobs", json={"schedule_id": schedule_id, "load_test_id": load_test}
    )

    assert response.status_code == 409
    assert _code(response) == "conflict"
    assert str(first["id"]) in response.json()["error"]["message"]
    assert snapshot(store) == before


def test_jobs_are_not_k6_schedules_and_leave_the_k6_schedule_alone(api: Api, store: Store) -> None:
    load_test = api.load_test()
    k6 = api.schedule(load_test, {"starts": "2026-12-01T08:00:00Z"})
    job = _job(api, _create(api, {"config": {"period": 60}}), load_test)
    before = snapshot(store)

    answers = [
        api.get(f"/cloud/v6/schedules/{job['id']}"),
        api.delete(f"/cloud/v6/schedules/{job['id']}"),
        api.post(f"/cloud/v6/schedules/{job['id']}/deactivate"),
    ]

    assert [r.status_code for r in answers] == [404] * len(answers)
    assert {_code(r) for r in answers} == {"not_found"}
    assert snapshot(store) == before
    assert [s["id"] for s in api.get("/cloud/v6/schedules").json()["value"]] == [k6["id"]]
    assert api.get(f"/cloud/v6/load_tests/{load_test}/schedule").json() == k6
    due = {int(text_of(m)) for m in store.client.zrange(store.keys.due, 0, -1)}
    assert due == {k6["id"], job["id"]}


def test_deleting_a_job_stops_it(api: Api, store: Store) -> None:
    load_test = api.load_test()
    schedule_id = _create(api, {"config": {"period": 60}})
    job = _job(api, schedule_id, load_test)

    response = api.delete(f"/kragle/jobs/byid/{job['id']}")

    assert response.status_code == 204
    assert api.get(f"/kragle/jobs/byid/{job['id']}").status_code == 404
    assert store.client.zscore(store.keys.due, str(job["id"])) is None
    assert _job(api, schedule_id, load_test)["id"] != job["id"]  # the pair is free again


# A schedule's timing is every job's timing


def _due_ms(store: Store, job_id: int) -> float | None:
    return store.client.zscore(store.keys.due, str(job_id))


def test_changing_a_schedule_moves_the_next_run_of_every_job(
    api: Api, store: Store, clock: Clock
) -> None:
    schedule_id = _create(api, {"config": {"period": 3600}})
    jobs = [_job(api, schedule_id, api.load_test()) for _ in range(3)]
    other = _job(api, _create(api, {"config": {"period": 3600}}), api.load_test())
    assert {j["next_run"] for j in jobs} == {format_instant(T0 + timedelta(hours=1))}
    clock.now = T0 + timedelta(minutes=10)

    response = api.put("/kragle/schedules/", json={"id": schedule_id, "config": {"period": 60}})

    assert response.status_code == 200
    expected = T0 + timedelta(minutes=11)
    for job in jobs:
        moved = api.get(f"/kragle/jobs/byid/{job['id']}").json()
        assert moved["next_run"] == format_instant(expected)
        assert _due_ms(store, job["id"]) == to_ms(expected)
    unmoved = api.get(f"/kragle/jobs/byid/{other['id']}").json()
    assert unmoved["next_run"] == other["next_run"]


def test_renaming_a_schedule_does_not_move_its_jobs(api: Api, store: Store, clock: Clock) -> None:
    schedule_id = _create(api, {"config": {"period": 3600}})
    job = _job(api, schedule_id, api.load_test())
    clock.now = T0 + timedelta(minutes=10)

    api.put("/kragle/schedules/", json={"id": schedule_id, "name": "renamed"})
    api.put("/kragle/schedules/", json={"id": schedule_id, "config": {"period": 3600}})

    assert api.get(f"/kragle/jobs/byid/{job['id']}").json()["next_run"] == job["next_run"]


def test_changing_a_schedule_to_one_time_moves_every_job_to_its_instant(
    api: Api, store: Store
) -> None:
    schedule_id = _create(api, {"config": {"period": 60}})
    jobs = [_job(api, schedule_id, api.load_test()) for _ in range(2)]
    at = T0 + timedelta(days=3)

    api.put(
        "/kragle/schedules/",
        json={"id": schedule_id, "once": True, "config": {"timestamp": int(at.timestamp())}},
    )

    for job in jobs:
        assert parse_instant(api.get(f"/kragle/jobs/byid/{job['id']}").json()["next_run"]) == at
        assert _due_ms(store, job["id"]) == to_ms(at)


def test_deleting_a_schedule_deletes_its_jobs(api: Api, store: Store) -> None:
    schedule_id = _create(api, {"config": {"period": 60}})
    jobs = [_job(api, schedule_id, api.load_test()) for _ in range(3)]
    kept = _job(api, _create(api, {"config": {"period": 60}}), api.load_test())

    response = api.delete(f"/kragle/schedules/byid/{schedule_id}")

    assert response.status_code == 204
    assert api.get(f"/kragle/schedules/byid/{schedule_id}").status_code == 404
    for job in jobs:
        assert api.get(f"/kragle/jobs/byid/{job['id']}").status_code == 404
        assert _due_ms(store, job["id"]) is None
    assert [j["id"] for j in api.get("/kragle/jobs").json()["jobs"]] == [kept["id"]]
    due = [int(text_of(m)) for m in store.client.zrange(store.keys.due, 0, -1)]
    assert due == [kept["id"]]


def test_deleting_a_load_test_deletes_its_jobs(api: Api, store: Store) -> None:
    schedule_id = _create(api, {"config": {"period": 60}})
    doomed, kept = api.load_test(), api.load_test()
    gone = _job(api, schedule_id, doomed)
    stays = _job(api, schedule_id, kept)

    assert api.delete(f"/cloud/v6/load_tests/{doomed}").status_code == 204

    assert api.get(f"/kragle/jobs/byid/{gone['id']}").status_code == 404
    assert _due_ms(store, gone["id"]) is None
    assert [j["id"] for j in api.get("/kragle/jobs").json()["jobs"]] == [stays["id"]]
    assert not store.client.exists(store.keys.load_test_kragle_jobs(doomed))
    # the schedule still moves the survivor, and can bind a new load test of the same id space
    api.put("/kragle/schedules/", json={"id": schedule_id, "config": {"period": 120}})
    assert _due_ms(store, stays["id"]) == to_ms(T0 + timedelta(seconds=120))


def test_deleting_a_project_deletes_the_jobs_of_its_load_tests(api: Api, store: Store) -> None:
    project = api.project()
    job = _job(api, _create(api, {"config": {"period": 60}}), api.load_test(project))

    assert api.delete(f"/cloud/v6/projects/{project}").status_code == 204

    assert api.get(f"/kragle/jobs/byid/{job['id']}").status_code == 404
    assert _due_ms(store, job["id"]) is None


# Where it is mounted


def test_the_prefix_is_a_value_of_the_app(store: Store, clock: Clock) -> None:
    app = create_app(store, tokens=tokens(), clock=clock, kragle_prefix="/tools/kragle")
    with TestClient(app) as client:
        api = Api(client)
        assert api.post("/tools/kragle/schedules", json={"config": {"period": 5}}).json() == {
            "id": 1
        }
        assert api.get("/tools/kragle/schedules").json()["count"] == 1
        before = snapshot(store)
        elsewhere = [
            api.get("/kragle/schedules"),
            api.post("/kragle/schedules", json={"config": {"period": 5}}),
        ]
        assert [r.status_code for r in elsewhere] == [404, 404]
        assert [(_code(r), r.json()["error"]["message"]) for r in elsewhere] == [
            ("not_found", "No such route.")
        ] * 2
        assert snapshot(store) == before


def test_the_prefix_and_public_listing_are_settings() -> None:
    defaults = load_settings(_env_file=None)
    assert (defaults.kragle_prefix, defaults.kragle_public_listing) == ("/kragle", False)
    assert load_settings(_env_file=None, kragle_prefix="").kragle_prefix == ""
    for wrong in ("kragle", "/kragle/", "/cloud/v6", "/api/v1", "/a b"):
        with pytest.raises(SettingsError, match="TICKWORK_KRAGLE_PREFIX"):
            load_settings(_env_file=None, kragle_prefix=wrong)
