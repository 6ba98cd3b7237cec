"""Backfill (issue 16 §4): runs for a schedule's past occurrences that have none, through the
API, against a real Redis and RQ queue, with an in-process leader on a hand-moved clock.

Every outcome the marks report is produced as production produces it: fired and skipped runs
by the fire commit, pauses by the API, forgotten occurrences by retention, run endings by the
store's execution path (claim, then finish) that workers use.
"""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

import pytest
from rq import Queue

from tickwork.core.instants import format_instant, parse_instant
from tickwork.core.lifecycle import Outcome, ending_of
from tickwork.scheduler.firing import Firer
from tickwork.scheduler.housekeeping import Housekeeping, RetentionPolicy
from tickwork.store import Lease, ScheduleRecord, Store
from tickwork.store.audit import Actor
from tickwork.store.queue import backfill_job_id

from .api_support import T0, Api, Clock, snapshot

HOURLY = {"starts": "2026-11-23T13:00:00Z", "recurrence_rule": {"frequency": "HOURLY"}}
WINDOW = {"from": "2026-11-23T13:00:00Z", "to": "2026-11-23T15:00:00Z"}


def _at(hour: int, minute: int = 0) -> datetime:
    """An instant of the test's day (2026-11-23, UTC)."""
    return T0.replace(hour=hour, minute=minute)


def _text(hour: int, minute: int = 0) -> str:
    return format_instant(_at(hour, minute))


def _hourly(api: Api, **extra: Any) -> tuple[int, int]:
    """An hourly schedule from 13:00, set at 12:00: its id and its load test."""
    load_test = api.load_test()
    return api.schedule(load_test, HOURLY | extra)["id"], load_test


def _backfill(api: Api, sid: int, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/cloud/v6/schedules/{sid}/backfill", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _marks(answer: dict[str, Any]) -> list[tuple[str, str]]:
    return [(item["instant"], item["mark"]) for item in answer["value"]]


def _finish(store: Store, run_id: int, at: datetime) -> None:
    """End a run as a worker does: claim it, then finish it passed."""
    claimed = store.executions.claim(run_id, worker="w", at=at, lapse_ms=10**6).run
    assert claimed is not None
    ended = store.executions.finish(
        run_id, expect="initializing", ending=ending_of(Outcome.PASSED), at=at
    )
    assert ended is not None


def _occurrences(api: Api, sid: int, after: str, limit: int) -> list[dict[str, Any]]:
    response = api.get(
        f"/cloud/v6/schedules/{sid}/occurrences", params={"after": after, "limit": str(limit)}
    )
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["value"]
    return items


def test_a_dry_run_marks_every_occurrence_and_changes_nothing(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease, rq_queue: Queue
) -> None:
    # Given an hourly schedule (overlap skip) whose ledger holds each kind of past:
    sid, _ = _hourly(api)
    clock.now = _at(13)
    ((first, _),) = firer.fire_due(lease).fired  # 13:00 fired ...
    _finish(store, first, _at(13, 10))  # ... ended, and later removed by retention
    clock.now = _at(14)
    ((fired, _),) = firer.fire_due(lease).fired  # 14:00 fired; its run never ends
    clock.now = _at(15)
    firer.fire_due(lease)  # 15:00 skipped: overlap
    assert store.retention.sweep(before=_at(13, 30), limit=10) == 1  # 13:00 is forgotten
    clock.now = _at(15, 30)
    api.post(f"/cloud/v6/schedules/{sid}/deactivate", json={"note": "freeze"})  # 16:00, 17:00
    clock.now = _at(17, 30)
    api.post(f"/cloud/v6/schedules/{sid}/activate")
    clock.now = _at(18, 30)  # no leader since: 18:00 is due, not yet settled
    jobs = rq_queue.job_ids
    before = snapshot(store)

    # When a dry run (the default) looks at the whole window
    answer = _backfill(api, sid, {"from": _text(12), "to": _text(18, 30)})

    # Then each occurrence is marked, and nothing changed
    assert answer["dry_run"] is True
    assert answer["overlap"] == "skip"  # the schedule's own
    assert answer["value"] == [
        {"instant": _text(13), "mark": "forgotten", "run_id": None, "reason": None},
        {"instant": _text(14), "mark": "already_has_run", "run_id": fired, "reason": None},
        {
            "instant": _text(15),
            "mark": "already_skipped",
            "run_id": answer["value"][2]["run_id"],
            "reason": "overlap",
        },
        {"instant": _text(16), "mark": "would_run", "run_id": None, "reason": None},
        {"instant": _text(17), "mark": "would_run", "run_id": None, "reason": None},
        {"instant": _text(18), "mark": "pending", "run_id": None, "reason": None},
    ]
    assert answer["value"][2]["run_id"] is not None
    assert snapshot(store) == before
    assert rq_queue.job_ids == jobs


def test_a_backfill_after_a_pause_runs_each_paused_occurrence_once_and_the_ledger_shows_it(
    api: Api, store: Store, clock: Clock, rq_queue: Queue
) -> None:
    # Given a schedule paused from 12:00 (a freeze) over three of its occurrences
    sid, load_test = _hourly(api, overlap="allow")
    api.post(f"/cloud/v6/schedules/{sid}/deactivate", json={"note": "release freeze"})
    clock.now = _at(15, 30)
    api.post(f"/cloud/v6/schedules/{sid}/activate")
    next_run = api.get(f"/cloud/v6/schedules/{sid}").json()["next_run"]
    assert next_run == _text(16)
    clock.now = _at(15, 31)

    # When they are backfilled for real
    body = {"from": _text(12), "to": _text(15, 30), "dry_run": False}
    answer = _backfill(api, sid, body)

    # Then each got a run, queued at once (overlap allow), under the backfill job ids
    assert answer["dry_run"] is False
    assert answer["overlap"] == "allow"
    assert _marks(answer) == [(_text(h), "created") for h in (13, 14, 15)]
    run_ids = [item["run_id"] for item in answer["value"]]
    assert rq_queue.job_ids == [backfill_job_id(sid, _at(h)) for h in (13, 14, 15)]
    runs = api.get(f"/cloud/v6/load_tests/{load_test}/test_runs").json()["value"]
    assert sorted((r["id"], r["scheduled_for"], r["status"]) for r in runs) == [
        (run_id, _text(h), "created") for run_id, h in zip(run_ids, (13, 14, 15), strict=True)
    ]
    # ... the ledger shows them fired by a backfill, not late, and the next fire is as it was
    items = _occurrences(api, sid, after=_text(12), limit=4)
    assert [(i["outcome"], i["reason"], i["run_id"], i["lateness_ms"]) for i in items] == [
        *[("fired", "backfill", run_id, None) for run_id in run_ids],
        ("upcoming", None, None, None),
    ]
    assert api.get(f"/cloud/v6/schedules/{sid}").json()["next_run"] == next_run
    health = api.get(f"/cloud/v6/schedules/{sid}/health").json()
    assert (health["fired_on_time"], health["fired_late"], health["runs"]["unfinished"]) == (
        0,
        0,
        3,
    )
    backfilled, *_ = api.get(f"/cloud/v6/schedules/{sid}/audit").json()["value"]
    assert (backfilled["action"], backfilled["who"], backfilled["via"]) == (
        "backfilled",
        "alice@example.com",
        "api",
    )
    assert backfilled["extra"] == {
        "from": _text(12),
        "to": _text(15, 30),
        "runs": 3,
        "overlap": "allow",
    }

    # And the same request again (a client retrying its POST) creates nothing
    before = snapshot(store)
    again = _backfill(api, sid, body)
    assert _marks(again) == [(_text(h), "already_has_run") for h in (13, 14, 15)]
    assert [item["run_id"] for item in again["value"]] == run_ids
    assert snapshot(store) == before
    assert len(rq_queue.job_ids) == 3


def _race(store: Store, record: ScheduleRecord, rq_queue: Queue) -> list[list[tuple[str, int]]]:
    """Two backfills of 13:00-15:00 of ``record`` at the same moment, as two API requests
    would make them; each one's (mark, run id) per occurrence."""
    barrier = threading.Barrier(2)
    answers: list[list[tuple[str, int]]] = []

    def backfill() -> None:
        barrier.wait(timeout=30)
        result = store.backfills.backfill(
            record,
            [_at(13), _at(14), _at(15)],
            window=(_at(12), _at(15, 30)),
            overlap=None,
            dry_run=False,
            rq_queue=rq_queue,
            actor=Actor("alice@example.com", "api"),
            now=_at(15, 30),
        )
        answers.append([(item.mark, item.run_id or 0) for item in result.items])

    threads = [threading.Thread(target=backfill) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
        assert not thread.is_alive(), "a backfill did not return within 60 s"
    return answers


def test_two_concurrent_backfills_create_each_run_once(
    api: Api, store: Store, clock: Clock, rq_queue: Queue
) -> None:
    for _ in range(20):
        # Given a schedule paused over three occurrences
        clock.now = T0
        sid, load_test = _hourly(api, overlap="allow")
        api.post(f"/cloud/v6/schedules/{sid}/deactivate")
        clock.now = _at(15, 30)

        # When two requests backfill them at the same moment
        answers = _race(store, store.schedules.get(1, sid), rq_queue)

        # Then each occurrence has one run, created by one of them and named by both
        assert len(answers) == 2
        assert store.client.zcard(store.keys.load_test_runs(load_test)) == 3
        first, second = answers
        assert [run for _, run in first] == [run for _, run in second]
        marks = sorted(mark for answer in answers for mark, _ in answer)
        assert marks == ["already_has_run"] * 3 + ["created"] * 3
    assert len(rq_queue.job_ids) == 60


def test_overlap_skip_runs_the_backfill_one_after_another_and_the_schedule_skips_meanwhile(
    api: Api, store: Store, clock: Clock, firer: Firer, lease: Lease, rq_queue: Queue
) -> None:
    # Given a schedule (overlap skip) paused over three occurrences, active again at 15:30
    sid, load_test = _hourly(api)
    api.post(f"/cloud/v6/schedules/{sid}/deactivate")
    clock.now = _at(15, 30)
    api.post(f"/cloud/v6/schedules/{sid}/activate")

    # When they are backfilled, one after another
    body = {"from": _text(12), "to": _text(15, 30), "dry_run": False, "overlap": "skip"}
    answer = _backfill(api, sid, body)
    first, second, third = (item["run_id"] for item in answer["value"])

    # Then only the first is queued; the others wait with no job, and are not stranded
    assert rq_queue.job_ids == [backfill_job_id(sid, _at(13))]
    assert store.backfills.feed(now=clock.now, limit=10) == []
    later = clock.now + timedelta(hours=2)
    assert (
        store.executions.strand_check(
            now=later, claim_within=timedelta(seconds=60), max_queued=timedelta(days=1)
        )
        == []
    )
    assert [store.runs.get(1, r).status for r in (first, second, third)] == ["created"] * 3

    # ... and the schedule's own fire meanwhile is recorded skipped for overlap
    clock.now = _at(16)
    firer.fire_due(lease)
    (at_16,) = _occurrences(api, sid, after=_text(15, 59), limit=1)
    assert (at_16["outcome"], at_16["reason"]) == ("skipped", "overlap")

    # When each ends, the feeder queues the next, and only then
    _finish(store, first, _at(16, 5))
    assert store.backfills.feed(now=_at(16, 6), limit=10) == [second]
    assert store.backfills.feed(now=_at(16, 6), limit=10) == []
    assert rq_queue.job_ids[-1] == backfill_job_id(sid, _at(14))
    _finish(store, second, _at(16, 10))
    assert store.backfills.feed(now=_at(16, 11), limit=10) == [third]
    assert rq_queue.job_ids[-1] == backfill_job_id(sid, _at(15))
    _finish(store, third, _at(16, 15))

    # Then the line is done and leaves nothing behind
    assert store.backfills.feed(now=_at(16, 16), limit=10) == []
    assert (
        store.client.exists(
            store.keys.backfill_waiting(load_test),
            store.keys.backfill_current(load_test),
            store.keys.backfill_load_tests,
        )
        == 0
    )
    assert len(rq_queue.job_ids) == 3


def test_overlap_skip_waits_for_the_run_in_progress_and_drops_a_run_aborted_while_waiting(
    api: Api, store: Store, clock: Clock, rq_queue: Queue
) -> None:
    # Given a schedule paused over two occurrences, and a run of its load test in progress
    sid, load_test = _hourly(api)
    api.post(f"/cloud/v6/schedules/{sid}/deactivate")
    clock.now = _at(14, 30)
    manual = api.post(f"/cloud/v6/load_tests/{load_test}/start").json()["id"]

    # When both are backfilled (the schedule's overlap: skip) and the first is aborted
    answer = _backfill(api, sid, {"from": _text(12), "to": _text(14, 30), "dry_run": False})
    first, second = (item["run_id"] for item in answer["value"])
    assert len(rq_queue.job_ids) == 1  # the manual run's job only
    assert api.post(f"/cloud/v6/test_runs/{first}/abort").status_code == 204

    # Then, once the run in progress ends, the aborted one is passed over for the next
    assert store.backfills.feed(now=clock.now, limit=10) == []
    _finish(store, manual, _at(14, 40))
    assert store.backfills.feed(now=_at(14, 41), limit=10) == [second]
    assert rq_queue.job_ids[-1] == backfill_job_id(sid, _at(14))


def test_a_backfilled_run_that_retention_removed_is_forgotten_not_run_again(
    api: Api, store: Store, clock: Clock
) -> None:
    sid, _ = _hourly(api, overlap="allow")
    api.post(f"/cloud/v6/schedules/{sid}/deactivate")
    clock.now = _at(14, 30)
    body = {"from": _text(12), "to": _text(14, 30), "dry_run": False}
    runs = [item["run_id"] for item in _backfill(api, sid, body)["value"]]
    for run_id in runs:
        _finish(store, run_id, _at(14, 35))
    assert store.retention.sweep(before=_at(15), limit=10) == 2

    again = _backfill(api, sid, body)

    assert _marks(again) == [(_text(13), "forgotten"), (_text(14), "forgotten")]


def test_occurrences_the_leader_settles_when_it_resumes_a_pause_are_pending(
    api: Api, clock: Clock
) -> None:
    # Given a pause that ends at 14:30 on its own, not yet resumed by a leader at 16:30
    sid, _ = _hourly(api)
    api.post(f"/cloud/v6/schedules/{sid}/deactivate", json={"resume_at": _text(14, 30)})
    clock.now = _at(16, 30)

    answer = _backfill(api, sid, {"from": _text(12), "to": _text(16, 30), "dry_run": False})

    # Then those before resume_at are backfilled; the leader settles those after it
    assert _marks(answer) == [
        (_text(13), "created"),
        (_text(14), "created"),
        (_text(15), "pending"),
        (_text(16), "pending"),
    ]


@pytest.mark.parametrize(
    ("body", "target", "words"),
    [
        ({"to": "2026-11-23T15:00:00Z"}, "from", "required"),
        ({"from": "yesterday", "to": "2026-11-23T15:00:00Z"}, "from", ""),
        ({"from": "2026-11-23T15:00:00Z", "to": "2026-11-23T15:00:00Z"}, "to", "later than"),
        ({"from": "2026-11-23T13:00:00Z", "to": "2026-11-23T18:00:00Z"}, "to", "now"),
        ({"from": "2026-11-23T11:00:00Z", "to": "2026-11-23T15:00:00Z"}, "from", "12:00:00Z"),
        ({"from": "2026-11-23T13:00:00Z", "to": "2026-11-25T00:00:00Z"}, "to", "1000"),
        (WINDOW | {"overlap": "no"}, "overlap", ""),
        (WINDOW | {"dry_run": "false"}, "dry_run", ""),
        (WINDOW | {"dryrun": False}, "dryrun", ""),
    ],
)  # fmt: skip
def test_a_bad_backfill_is_400_naming_the_field_and_changes_nothing(
    api: Api, store: Store, clock: Clock, body: dict[str, Any], target: str, words: str
) -> None:
    load_test = api.load_test()
    every_minute = {
        "starts": "2026-11-23T12:00:00Z",
        "cron": {"schedule": "* * * * *", "time_zone": "UTC"},
    }
    sid = api.schedule(load_test, every_minute)["id"]
    api.post(f"/cloud/v6/schedules/{sid}/deactivate")
    clock.now = parse_instant("2026-11-25T00:00:00Z") if words == "1000" else _at(16)
    before = snapshot(store)

    response = api.post(f"/cloud/v6/schedules/{sid}/backfill", json=body)

    assert response.status_code == 400, response.text
    details = response.json()["error"]["details"]
    assert [detail["target"] for detail in details] == [target]
    assert words in details[0]["message"]
    assert snapshot(store) == before


def test_a_backfill_of_a_schedule_that_is_not_the_callers_is_404(api: Api, clock: Clock) -> None:
    sid, _ = _hourly(api)
    clock.now = _at(16)
    body = {"from": _text(12), "to": _text(15)}
    assert api.post("/cloud/v6/schedules/424242/backfill", json=body).status_code == 404
    elsewhere = api.as_(stack=2).post(f"/cloud/v6/schedules/{sid}/backfill", json=body)
    assert elsewhere.status_code == 404


def test_the_leaders_housekeeping_step_queues_the_next_backfilled_run_once_its_turn_comes(
    api: Api, store: Store, clock: Clock, rq_queue: Queue
) -> None:
    # Given two backfilled runs in line (overlap skip), the first queued
    sid, _ = _hourly(api)
    api.post(f"/cloud/v6/schedules/{sid}/deactivate")
    clock.now = _at(14, 30)
    answer = _backfill(api, sid, {"from": _text(12), "to": _text(14, 30), "dry_run": False})
    first, second = (item["run_id"] for item in answer["value"])
    housekeeping = Housekeeping(store, RetentionPolicy(), clock=clock)

    # When the first ends and the leader takes its housekeeping step
    _finish(store, first, _at(14, 35))
    housekeeping.step()

    # Then the second is queued, once
    assert rq_queue.job_ids == [backfill_job_id(sid, _at(h)) for h in (13, 14)]
    assert store.runs.get(1, second).status == "created"
