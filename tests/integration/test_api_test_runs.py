"""Test runs: manual start with idempotency keys, abort, notes, and the k6 run shape."""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from rq.job import Job

from tickwork.store import RunRecord, StatusEntry, Store
from tickwork.store.queue import queue, run_job_id

from .api_support import T0, Api, Clock, snapshot
from .seeding import created_run

TEST_RUN_KEYS = {
    "id", "test_id", "project_id", "started_by", "created", "ended", "note",
    "retention_expiry", "cost", "status", "status_details", "status_history", "distribution",
    "result", "result_details", "options", "k6_dependencies", "k6_versions", "max_vus",
    "max_browser_vus", "estimated_duration", "execution_duration", "is_starred",
}  # fmt: skip


def test_start_creates_a_run_and_its_job_in_one_go(api: Api, store: Store) -> None:
    project = api.project()
    lt = api.load_test(project)

    response = api.post(f"/cloud/v6/load_tests/{lt}/start")

    assert response.status_code == 200
    run = response.json()
    assert set(run) >= TEST_RUN_KEYS | {"test_run_details_page_url"}
    assert (run["test_id"], run["project_id"], run["status"]) == (lt, project, "created")
    assert run["started_by"] == "alice@example.com"
    assert run["created"] == "2026-11-23T12:00:00Z"
    assert [s["type"] for s in run["status_history"]] == ["created"]
    assert run["status_details"]["type"] == "created"
    assert (run["cost"], run["distribution"], run["k6_dependencies"]) == (None, None, {})
    assert run["test_run_details_page_url"].endswith(f"/cloud/v6/test_runs/{run['id']}")
    rq_queue = queue(store.client, f"{store.keys.prefix}-runs")
    assert rq_queue.job_ids == [run_job_id(run["id"])]
    job = Job.fetch(run_job_id(run["id"]), connection=store.client, serializer=rq_queue.serializer)
    assert job.kwargs == {"run_id": run["id"], "prefix": store.keys.prefix}


def test_same_idempotency_key_within_ten_minutes_answers_the_same_run(
    api: Api, store: Store, clock: Clock
) -> None:
    lt = api.load_test()
    key = {"K6-Idempotency-Key": "0b6f7c1e-retry"}

    first = api.post(f"/cloud/v6/load_tests/{lt}/start", headers=key).json()
    clock.now = T0 + timedelta(minutes=9)
    again = api.post(f"/cloud/v6/load_tests/{lt}/start", headers=key).json()
    other = api.post(f"/cloud/v6/load_tests/{lt}/start", headers={"K6-Idempotency-Key": "b"})

    assert again["id"] == first["id"]
    assert other.json()["id"] != first["id"]
    assert len(queue(store.client, f"{store.keys.prefix}-runs").job_ids) == 2
    remembered = store.keys.idempotency(1, lt, "0b6f7c1e-retry")
    assert 0 < store.client.ttl(remembered) <= 600


def test_idempotency_key_expired_starts_a_new_run(api: Api, store: Store) -> None:
    lt = api.load_test()
    key = {"K6-Idempotency-Key": "k"}
    first = api.post(f"/cloud/v6/load_tests/{lt}/start", headers=key).json()

    store.client.delete(store.keys.idempotency(1, lt, "k"))  # what the 600 s expiry does
    again = api.post(f"/cloud/v6/load_tests/{lt}/start", headers=key).json()

    assert again["id"] != first["id"]


@pytest.mark.parametrize("key", ["", "x" * 37])
def test_idempotency_key_out_of_bounds_is_400(api: Api, store: Store, key: str) -> None:
    lt = api.load_test()
    before = snapshot(store)

    response = api.post(f"/cloud/v6/load_tests/{lt}/start", headers={"K6-Idempotency-Key": key})

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [detail["target"] for detail in error["details"]] == ["K6-Idempotency-Key"]
    assert snapshot(store) == before


def test_start_of_a_missing_load_test_is_404(api: Api, store: Store) -> None:
    api.load_test()
    before = snapshot(store)

    response = api.post("/cloud/v6/load_tests/777/start")

    assert response.status_code == 404
    error = response.json()["error"]
    assert error["code"] == "not_found"
    assert "777" in error["message"]
    assert snapshot(store) == before


def test_abort_of_a_run_not_yet_started_ends_it_at_once(api: Api, store: Store) -> None:
    lt = api.load_test()
    run_id = api.post(f"/cloud/v6/load_tests/{lt}/start").json()["id"]

    response = api.post(f"/cloud/v6/test_runs/{run_id}/abort")
    run = api.get(f"/cloud/v6/test_runs/{run_id}").json()

    assert response.status_code == 204
    assert (run["status"], run["result"], run["ended"]) == (
        "aborted",
        "error",
        "2026-11-23T12:00:00Z",
    )
    assert run["status_history"][-1]["extra"]["by_user"] == "alice@example.com"
    assert run["status_history"][-1]["extra"]["code"] == 5
    assert store.client.get(store.keys.run_abort(run_id)) == b"alice@example.com"


def test_abort_of_a_running_run_leaves_it_to_its_worker(api: Api, store: Store) -> None:
    lt = api.load_test()
    run_id = api.post(f"/cloud/v6/load_tests/{lt}/start").json()["id"]
    running = store.runs.get(1, run_id).moved_to("initializing", at=T0).moved_to("running", at=T0)
    with store.client.pipeline() as pipe:
        store.runs.queue_update(pipe, running)
        pipe.execute()

    response = api.post(f"/cloud/v6/test_runs/{run_id}/abort")

    assert response.status_code == 204
    assert api.get(f"/cloud/v6/test_runs/{run_id}").json()["status"] == "running"
    assert store.client.get(store.keys.run_abort(run_id)) == b"alice@example.com"
    assert 0 < store.client.ttl(store.keys.run_abort(run_id)) <= 7 * 86_400


def test_abort_of_a_finished_run_is_409(api: Api, store: Store) -> None:
    lt = api.load_test()
    run_id = api.post(f"/cloud/v6/load_tests/{lt}/start").json()["id"]
    api.post(f"/cloud/v6/test_runs/{run_id}/abort")
    before = snapshot(store)

    response = api.post(f"/cloud/v6/test_runs/{run_id}/abort")

    assert response.status_code == 409
    assert response.json()["error"]["code"] == "conflict"
    assert snapshot(store) == before


def test_runs_written_by_the_scheduler_are_listed_with_their_occurrence(
    api: Api, store: Store, clock: Clock
) -> None:
    lt = api.load_test()
    occurrence = T0 + timedelta(hours=1)
    started = occurrence + timedelta(seconds=2)
    store.runs.create(
        RunRecord(
            id=store.runs.new_id(),
            stack=1,
            load_test_id=lt,
            project_id=1,
            created=occurrence,
            status="completed",
            status_history=(
                StatusEntry("created", occurrence),
                StatusEntry("running", started),
                StatusEntry("completed", started + timedelta(seconds=30)),
            ),
            result="passed",
            ended=started + timedelta(seconds=30),
            schedule_id=9,
            scheduled_for=occurrence,
        )
    )
    clock.now = T0 + timedelta(hours=2)

    [run] = api.get(f"/cloud/v6/load_tests/{lt}/test_runs").json()["value"]

    assert (run["schedule_id"], run["scheduled_for"]) == (9, "2026-11-23T13:00:00Z")
    assert (run["status"], run["result"], run["execution_duration"]) == ("completed", "passed", 30)
    assert run["result_details"] == {"type": "passed", "message": None, "code": None}
    assert run["started_by"] is None
    assert run["status_details"]["type"] == "completed"


def test_lists_of_runs(api: Api) -> None:
    first, second = api.load_test(), api.load_test()
    ids = [
        api.post(f"/cloud/v6/load_tests/{lt}/start").json()["id"] for lt in (first, second, first)
    ]

    everything = api.get("/cloud/v6/test_runs?$count=true").json()
    of_first = api.get(f"/cloud/v6/load_tests/{first}/test_runs?$count=true").json()

    assert [r["id"] for r in everything["value"]] == ids
    assert everything["@count"] == 3
    assert [r["id"] for r in of_first["value"]] == [ids[0], ids[2]]
    assert of_first["@count"] == 2
    missing = api.get("/cloud/v6/load_tests/999/test_runs")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    assert "999" in missing.json()["error"]["message"]


def test_note_is_patched(api: Api) -> None:
    lt = api.load_test()
    run_id = api.post(f"/cloud/v6/load_tests/{lt}/start").json()["id"]

    response = api.patch(f"/cloud/v6/test_runs/{run_id}", json={"note": "after the deploy"})

    assert response.status_code == 204
    assert api.get(f"/cloud/v6/test_runs/{run_id}").json()["note"] == "after the deploy"


@pytest.mark.parametrize(
    ("body", "target"),
    [({}, "note"), ({"note": 1}, "note"), ({"note": "x", "is_starred": True}, "is_starred")],
)
def test_invalid_note_patch_is_400(
    api: Api, store: Store, body: dict[str, object], target: str
) -> None:
    lt = api.load_test()
    run_id = api.post(f"/cloud/v6/load_tests/{lt}/start").json()["id"]
    before = snapshot(store)

    response = api.patch(f"/cloud/v6/test_runs/{run_id}", json=body)

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [detail["target"] for detail in error["details"]] == [target]
    assert snapshot(store) == before


def test_missing_run_is_404(api: Api, store: Store) -> None:
    api.post(f"/cloud/v6/load_tests/{api.load_test()}/start")
    before = snapshot(store)

    answers = [api.get("/cloud/v6/test_runs/31337"), api.post("/cloud/v6/test_runs/31337/abort")]

    for response in answers:
        assert response.status_code == 404
        error = response.json()["error"]
        assert error["code"] == "not_found"
        assert "31337" in error["message"]
    assert snapshot(store) == before


def test_runs_are_listed_by_creation_filtered_and_ordered_as_asked(api: Api, store: Store) -> None:
    lt = api.load_test()
    # Run 1's id was reserved ahead of its instant (the scheduler's look-ahead): it was
    # created last, and lists last.
    for run_id, minutes in [(1, 30), (2, 0), (3, 10), (4, 20)]:
        created_run(store, lt, run_id=run_id, created=T0 + timedelta(minutes=minutes))

    def ids(query: str) -> list[int]:
        body = api.get(f"/cloud/v6/load_tests/{lt}/test_runs?{query}").json()
        return [run["id"] for run in body["value"]]

    assert ids("") == [2, 3, 4, 1]
    assert ids("$orderby=created") == ids("$orderby=created%20asc") == [2, 3, 4, 1]
    assert ids("$orderby=created%20desc") == [1, 4, 3, 2]
    after, before = "2026-11-23T12:10:00Z", "2026-11-23T12:30:00%2B00:00"
    assert ids(f"created_after={after}") == [3, 4, 1]  # inclusive
    assert ids(f"created_before={before}") == [2, 3, 4]  # exclusive
    assert ids(f"created_after={after}&created_before={before}&$orderby=created desc") == [4, 3]
    assert ids("created_after=2026-11-23T12:10:00") == [3, 4, 1]  # no offset: UTC

    page = api.get(
        f"/cloud/v6/test_runs?created_after={after}&$orderby=created%20desc&$top=2&$count=true"
    ).json()
    assert [run["id"] for run in page["value"]] == [1, 4]
    assert page["@count"] == 3
    link = urlsplit(page["@nextLink"])
    rest = api.get(f"{link.path}?{link.query}").json()
    assert [run["id"] for run in rest["value"]] == [3]


@pytest.mark.parametrize(
    ("query", "target"),
    [
        ("$orderby=id", "$orderby"),
        ("$orderby=created%20sideways", "$orderby"),
        ("created_after=yesterday", "created_after"),
        ("created_before=", "created_before"),
    ],
)
def test_a_bad_run_list_query_is_400_naming_the_parameter(
    api: Api, query: str, target: str
) -> None:
    lt = api.load_test()
    response = api.get(f"/cloud/v6/load_tests/{lt}/test_runs?{query}")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [detail["target"] for detail in error["details"]] == [target]


def test_a_finished_run_is_deleted_with_its_index_entries(api: Api, store: Store) -> None:
    lt = api.load_test()
    kept, gone = (api.post(f"/cloud/v6/load_tests/{lt}/start").json()["id"] for _ in range(2))
    assert api.post(f"/cloud/v6/test_runs/{gone}/abort").status_code == 204  # not started: ends

    assert api.delete(f"/cloud/v6/test_runs/{gone}").status_code == 204

    assert api.get(f"/cloud/v6/test_runs/{gone}").status_code == 404
    listed = api.get(f"/cloud/v6/load_tests/{lt}/test_runs?$count=true").json()
    assert ([r["id"] for r in listed["value"]], listed["@count"]) == ([kept], 1)
    assert [r["id"] for r in api.get("/cloud/v6/test_runs").json()["value"]] == [kept]
    assert not store.client.exists(store.keys.run(gone), store.keys.run_abort(gone))
    assert api.delete(f"/cloud/v6/test_runs/{gone}").status_code == 404


def test_a_run_that_has_not_finished_is_not_deleted(api: Api, store: Store) -> None:
    lt = api.load_test()
    run_id = api.post(f"/cloud/v6/load_tests/{lt}/start").json()["id"]

    response = api.delete(f"/cloud/v6/test_runs/{run_id}")

    assert response.status_code == 409
    assert "abort it first" in response.json()["error"]["message"]
    assert api.get(f"/cloud/v6/test_runs/{run_id}").json()["status"] == "created"
    assert [r["id"] for r in api.get("/cloud/v6/test_runs").json()["value"]] == [run_id]
