"""Executing runs against a real Redis: lifecycle, at-most-once, abort, time limit, reaping."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from tickwork.core.lifecycle import Outcome, ending_of
from tickwork.store import RunRecord, Store
from tickwork.store.executions import Executions
from tickwork.worker.executor import WorkerConfig, execute
from tickwork.worker.runners import RunnerOptions

from .seeding import created_run, history, load_test, run_of

CONFIG = WorkerConfig(
    runners=RunnerOptions(command_allowed=("sh",), stop_grace_s=0.5),
    heartbeat_s=0.2,
    abort_poll_s=0.05,
    name="worker-a",
)
SLACK_S = 5.0
"""What a loaded 2-core host may add to a stop; far below the 30 s the commands would run."""


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"t{uuid.uuid4().hex[:8]}")


@pytest.fixture
def executions(store: Store) -> Executions:
    return store.executions


def _sh(code: str, **extra: object) -> dict[str, object]:
    return {"type": "command", "argv": ["sh", "-c", code], **extra}


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)
    return time.monotonic() - started


@pytest.fixture
def in_background() -> Iterator[Callable[[Callable[[], object]], threading.Thread]]:
    threads: list[threading.Thread] = []

    def start(target: Callable[[], object]) -> threading.Thread:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        threads.append(thread)
        return thread

    yield start
    for thread in threads:
        thread.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a test's background thread did not end"


def test_passing_command_goes_through_every_status_to_completed_passed(store: Store) -> None:
    load_test(store, 1, runner=_sh("echo hello"))
    run_id = created_run(store, 1)

    ended = execute(store, run_id, CONFIG)

    run = run_of(store, run_id)
    assert ended == run
    assert history(run) == ["created", "initializing", "running", "completed"]
    assert (run.status, run.result, run.finished) == ("completed", "passed", True)
    assert run.ended == run.status_history[-1].entered
    assert run.details["reason"] == "passed"
    assert run.details["worker"] == "worker-a"
    assert run.details["output_tail"] == "hello\n"
    assert store.client.get(store.keys.run_executed(run_id)) == b"worker-a"
    assert store.client.zcard(store.keys.running) == 0


def test_failing_command_completes_failed_with_its_exit_code(store: Store) -> None:
    load_test(store, 1, runner=_sh("exit 4"))
    run = execute(store, created_run(store, 1), CONFIG)
    assert run is not None
    assert (run.status, run.result) == ("completed", "failed")
    assert run.status_history[-1].message == "failed: command exited with 4"
    assert run.details["exit_code"] == 4


def test_a_run_delivered_twice_is_executed_once(store: Store, tmp_path: Path) -> None:
    marker = tmp_path / "executions"
    load_test(store, 1, runner=_sh(f"echo x >> {marker}; sleep 0.3"))
    run_id = created_run(store, 1)

    results: list[RunRecord | None] = []
    threads = [
        threading.Thread(target=lambda: results.append(execute(store, run_id, CONFIG)))
        for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
        assert not thread.is_alive()
    results.append(execute(store, run_id, CONFIG))  # a late redelivery, after the end

    assert marker.read_text() == "x\n"
    assert sum(result is not None for result in results) == 1
    assert history(run_of(store, run_id)) == ["created", "initializing", "running", "completed"]


def test_abort_stops_a_running_command_within_seconds(
    store: Store, in_background: Callable[[Callable[[], object]], threading.Thread]
) -> None:
    load_test(store, 1, runner=_sh("sleep 30"))
    run_id = created_run(store, 1)
    worker = in_background(lambda: execute(store, run_id, CONFIG))
    _wait_for(lambda: run_of(store, run_id).status == "running")

    store.client.set(store.keys.run_abort(run_id), "ann@example.com")
    took = _wait_for(lambda: run_of(store, run_id).finished, timeout_s=SLACK_S)
    worker.join(timeout=30)
    assert not worker.is_alive(), "the worker did not return after the abort"

    run = run_of(store, run_id)
    last = run.status_history[-1]
    assert took < CONFIG.abort_poll_s + CONFIG.runners.stop_grace_s + SLACK_S  # not the 30 s
    assert (run.status, run.result, run.details["reason"]) == (
        "aborted",
        "error",
        "aborted_by_user",
    )
    assert (last.by_user, last.code) == ("ann@example.com", 5)
    assert last.message is not None
    assert last.message.startswith("aborted_by_user: command stopped")


def test_a_run_the_api_aborted_before_it_started_is_never_executed(
    store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    load_test(store, 1, runner=_sh(f"touch {marker}"))
    run_id = created_run(store, 1)
    run = run_of(store, run_id).moved_to("aborted", at=datetime.now(UTC), by_user="a@b.c")
    store.runs.create(run)

    assert execute(store, run_id, CONFIG) is None
    assert not marker.exists()
    assert run_of(store, run_id).status == "aborted"


def test_abort_asked_before_the_runner_starts_ends_the_run_without_running_it(
    store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "ran"
    load_test(store, 1, runner=_sh(f"touch {marker}"))
    run_id = created_run(store, 1)
    store.client.set(store.keys.run_abort(run_id), "ann@example.com")

    run = execute(store, run_id, CONFIG)

    assert run is not None
    assert history(run) == ["created", "initializing", "aborted"]
    assert run.status_history[-1].message == (
        "aborted_by_user: before it started; asked by ann@example.com"
    )
    assert not marker.exists()


def test_time_limit_ends_the_run_aborted_as_timed_out(store: Store) -> None:
    load_test(store, 1, runner=_sh("sleep 30", timeout_seconds=0.5))
    started = time.monotonic()
    run = execute(store, created_run(store, 1), CONFIG)
    assert run is not None
    assert time.monotonic() - started < 0.5 + CONFIG.runners.stop_grace_s + SLACK_S
    assert (run.status, run.result, run.details["reason"]) == ("aborted", "error", "timed_out")
    assert run.status_history[-1].code == 4
    assert run.status_history[-1].message == "timed_out: command ran longer than the 0.5 s limit"


def test_default_time_limit_comes_from_the_worker_config(store: Store) -> None:
    load_test(store, 1, runner=_sh("sleep 30"))
    config = WorkerConfig(runners=CONFIG.runners, default_time_limit_s=0.3, heartbeat_s=0.2)
    run = execute(store, created_run(store, 1), config)
    assert run is not None
    assert run.details["reason"] == "timed_out"


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        pytest.param(lambda s: None, "error: load test 1 no longer exists", id="load_test_gone"),
        pytest.param(
            lambda s: load_test(s, 1, stack=2),
            "error: load test 1 no longer exists",
            id="load_test_of_another_stack",
        ),
        pytest.param(
            lambda s: load_test(s, 1, runner={"type": "ssh"}),
            "error: invalid runner: runner.type 'ssh' is not one of 'k6', 'command', 'webhook'.",
            id="invalid_runner",
        ),
        pytest.param(
            lambda s: load_test(s, 1, runner={"type": "command", "argv": ["rm", "-rf", "/x"]}),
            "error: 'rm' is not allowed on this worker (TICKWORK_COMMAND_ALLOWED)",
            id="command_not_allowed",
        ),
    ],
)
def test_a_run_that_cannot_be_executed_completes_with_error(
    store: Store, setup: Callable[[Store], None], message: str
) -> None:
    setup(store)
    run = execute(store, created_run(store, 1), CONFIG)
    assert run is not None
    assert (run.status, run.result) == ("completed", "error")
    assert run.status_history[-1].message == message


def test_reaper_ends_a_run_whose_worker_died_and_it_is_never_revived(
    store: Store, executions: Executions
) -> None:
    load_test(store, 1, runner=_sh("true"))
    run_id = created_run(store, 1)
    # A worker claims the run, then dies without another heartbeat.
    claim = executions.claim(run_id, worker="dead-worker", at=datetime.now(UTC), lapse_ms=200)
    assert claim.run is not None
    assert executions.reap(now=datetime.now(UTC)) == []  # not lapsed yet

    time.sleep(0.3)
    (reaped,) = executions.reap(now=datetime.now(UTC))

    assert reaped == run_of(store, run_id)
    last = reaped.status_history[-1]
    assert (reaped.status, reaped.result, reaped.details["reason"]) == (
        "aborted",
        "error",
        "worker_lost",
    )
    assert last.code == 6
    assert last.message is not None
    assert last.message.startswith("worker_lost: its worker (dead-worker) stopped heartbeating")
    assert executions.reap(now=datetime.now(UTC)) == []
    assert executions.heartbeat(run_id, lapse_ms=200) is False  # a late beat revives nothing
    late = executions.finish(
        run_id,
        expect="initializing",
        ending=ending_of(Outcome.PASSED),
        at=datetime.now(UTC),
    )
    assert late is None
    assert execute(store, run_id, CONFIG) is None  # and a redelivered job does not re-run it
    assert run_of(store, run_id).status == "aborted"


@pytest.mark.slow  # waits out a worker's heartbeat (~1 s)
def test_a_live_run_is_not_reaped(
    store: Store,
    executions: Executions,
    in_background: Callable[[Callable[[], object]], threading.Thread],
) -> None:
    load_test(store, 1, runner=_sh("sleep 1.2"))
    run_id = created_run(store, 1)
    stop = threading.Event()

    def reap_often() -> None:
        while not stop.wait(0.05):
            executions.reap(now=datetime.now(UTC))

    in_background(reap_often)
    try:
        run = execute(store, run_id, CONFIG)  # lapse 0.6 s: the sleep outlasts it twice
    finally:
        stop.set()
    assert run is not None
    assert (run.status, run.result) == ("completed", "passed")


def test_a_worker_that_lost_its_run_stops_the_runner_and_keeps_the_reapers_verdict(
    store: Store,
    executions: Executions,
    in_background: Callable[[Callable[[], object]], threading.Thread],
) -> None:
    load_test(store, 1, runner=_sh("sleep 30"))
    run_id = created_run(store, 1)
    results: list[RunRecord | None] = []
    worker = in_background(lambda: results.append(execute(store, run_id, CONFIG)))
    _wait_for(lambda: run_of(store, run_id).status == "running")

    # As if the worker had stalled past its deadline and a reaper ended the run.
    executions.finish(
        run_id,
        expect="running",
        ending=ending_of(Outcome.WORKER_LOST),
        at=datetime.now(UTC),
        detail="stalled",
    )
    worker.join(timeout=10)

    assert not worker.is_alive()
    assert results == [None]
    run = run_of(store, run_id)
    assert (run.status, run.details["reason"]) == ("aborted", "worker_lost")
    assert history(run) == ["created", "initializing", "running", "aborted"]
