"""A first SIGTERM lets the current run finish, then the worker exits (README, Workers and
runners: "A first SIGTERM lets the current run finish; a second stops it").

A real ``tickwork worker`` runs a command that takes about 3 s; it is sent SIGTERM once while
the command runs. The run must complete, passed, with the command's own ending, and only then
the worker exits, with status 0, leaving the next queued run for another worker.
"""

from __future__ import annotations

import json
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from integration.seeding import created_run, load_test, run_of
from tickwork.store import Store
from tickwork.store.queue import queue

from .processes import Processes

pytestmark = pytest.mark.slow


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"e2ew{uuid.uuid4().hex[:8]}")


@pytest.fixture
def processes(redis_url: str, store: Store, tmp_path: Path) -> Iterator[Processes]:
    procs = Processes(
        {
            "TICKWORK_REDIS_URL": redis_url,
            "TICKWORK_KEY_PREFIX": store.keys.prefix,
            "TICKWORK_QUEUES": json.dumps([f"{store.keys.prefix}-runs"]),
            "TICKWORK_COMMAND_ALLOWED": '["sh"]',
        },
        tmp_path,
    )
    try:
        yield procs
    finally:
        procs.stop_all()


def test_a_first_sigterm_lets_the_running_run_finish_then_the_worker_exits(
    store: Store, processes: Processes, tmp_path: Path
) -> None:
    done = tmp_path / "done"
    load_test(store, 1, runner={"type": "command", "argv": ["sh", "-c", f"sleep 3; touch {done}"]})
    rq_queue = queue(store.client, f"{store.keys.prefix}-runs")
    current = created_run(store, 1, rq_queue=rq_queue)
    following = created_run(store, 1, rq_queue=rq_queue)
    worker = processes.worker("worker")
    _until(lambda: run_of(store, current).status == "running", 30, "the run to start")

    worker.signal(signal.SIGTERM)
    signalled_at = datetime.now(UTC)

    # The worker stays while its run goes on, and the run ends as the command does.
    def run_ended() -> bool:
        assert worker.alive, f"the worker exited mid-run:\n{worker.log.read_text()}"
        return run_of(store, current).finished

    _until(run_ended, 30, "the run to end")
    run = run_of(store, current)
    assert (run.status, run.result) == ("completed", "passed"), run.details
    assert done.exists()  # the command ran to its end
    assert run.ended is not None
    assert run.ended > signalled_at
    assert worker.popen.wait(timeout=30) == 0, worker.log.read_text()

    # A warm shutdown takes no new run: the next one waits, queued, for another worker.
    assert run_of(store, following).status == "created"
    assert rq_queue.job_ids == [run_of(store, following).job_id]
