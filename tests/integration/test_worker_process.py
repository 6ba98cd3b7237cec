"""The worker process: RQ SimpleWorker with JSON jobs and the job guard; ``tickwork worker``.

In-process ``serve(burst=True)`` first, then real ``python -m tickwork worker`` processes,
one of them killed with SIGKILL in the middle of a run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry
from rq.serializers import JSONSerializer

from tickwork.store import Store
from tickwork.store.queue import queue, run_job_id
from tickwork.worker.daemon import serve
from tickwork.worker.executor import WorkerConfig
from tickwork.worker.runners import RunnerOptions

from .seeding import created_run, history, load_test, run_of

# Slow: real worker processes, signalled and killed.
pytestmark = pytest.mark.slow

QUEUE = "it-runs"
CONFIG = WorkerConfig(
    runners=RunnerOptions(command_allowed=("sh",)), heartbeat_s=0.2, abort_poll_s=0.05
)
SLACK_S = 5.0
"""What a loaded 2-core host may add to a bound; the bounds' own terms are far below it."""


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"t{uuid.uuid4().hex[:8]}")


def _sh(code: str) -> dict[str, object]:
    return {"type": "command", "argv": ["sh", "-c", code]}


def _wait_for(predicate: Callable[[], bool], timeout_s: float = 30.0) -> float:
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout_s:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)
    return time.monotonic() - started


class _Boom:
    """Unpickling this runs a shell command: what a pickle job could do to a worker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_burst_worker_executes_queued_runs_and_ignores_a_second_delivery(
    store: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "executions"
    load_test(store, 1, runner=_sh(f"echo $TICKWORK_RUN_ID >> {marker}"))
    rq_queue = queue(store.client, QUEUE)
    first = created_run(store, 1, rq_queue=rq_queue)
    second = created_run(store, 1, rq_queue=rq_queue)
    rq_queue.enqueue_call(  # the first run's job delivered again, under another id
        "tickwork.worker.jobs.run_test",
        kwargs={"run_id": first, "prefix": store.keys.prefix},
        job_id=f"{run_job_id(first)}-again",
    )

    assert serve(store, queue_names=[QUEUE], config=CONFIG, burst=True)

    assert sorted(marker.read_text().split()) == sorted([str(first), str(second)])
    for run_id in (first, second):
        run = run_of(store, run_id)
        assert history(run) == ["created", "initializing", "running", "completed"]
        assert run.result == "passed"
    again = rq_queue.fetch_job(f"{run_job_id(first)}-again")
    assert again is not None
    assert again.return_value() == {"run_id": first, "status": None, "result": None}


def test_jobs_naming_other_functions_or_pickled_data_never_run(
    store: Store, tmp_path: Path
) -> None:
    named, pickled = tmp_path / "named", tmp_path / "pickled"
    json_queue = Queue(QUEUE, connection=store.client, serializer=JSONSerializer)
    refused = json_queue.enqueue("os.system", f"touch {named}")
    pickle_queue = Queue(QUEUE, connection=store.client)  # RQ's default serializer
    undecodable = pickle_queue.enqueue(
        "tickwork.worker.jobs.run_test", kwargs={"run_id": _Boom(pickled), "prefix": "x"}
    )

    serve(store, queue_names=[QUEUE], config=CONFIG, burst=True)

    assert not named.exists()
    assert not pickled.exists()
    failed = FailedJobRegistry(QUEUE, connection=store.client, serializer=JSONSerializer)
    assert set(failed.get_job_ids()) == {refused.id, undecodable.id}
    job = json_queue.fetch_job(refused.id)
    assert job is not None
    result = job.latest_result()
    assert result is not None
    assert "JobRefused" in (result.exc_string or "")


@pytest.fixture
def worker_env(redis_url: str, store: Store) -> dict[str, str]:
    return {
        **os.environ,
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": store.keys.prefix,
        "TICKWORK_QUEUES": f'["{QUEUE}"]',
        "TICKWORK_COMMAND_ALLOWED": '["sh"]',
        "TICKWORK_RUN_HEARTBEAT_SECONDS": "0.2",
    }


@pytest.fixture
def workers(worker_env: dict[str, str], tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
            process.send_signal(signal.SIGINT)  # a cold shutdown: do not wait for a run
    for process in started:
        process.wait(timeout=10)


def _worker(
    env: dict[str, str], log: Path, *args: str, started: list[subprocess.Popen[bytes]]
) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "tickwork", "worker", *args],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    started.append(process)
    return process


def test_tickwork_worker_burst_runs_the_queue_and_exits(
    store: Store,
    worker_env: dict[str, str],
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    load_test(store, 1, runner=_sh("echo ok"))
    runs = [created_run(store, 1, rq_queue=queue(store.client, QUEUE)) for _ in range(3)]
    log = tmp_path / "worker.log"

    process = _worker(worker_env, log, "--queue", QUEUE, "--burst", started=workers)

    assert process.wait(timeout=30) == 0, log.read_text()
    assert [run_of(store, run_id).result for run_id in runs] == ["passed"] * 3
    assert log.read_text().count('"event": "run_finished"') == 3


def test_worker_killed_mid_run_takes_its_command_along_and_the_run_is_reaped(
    store: Store,
    worker_env: dict[str, str],
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    pid_file = tmp_path / "command.pid"
    load_test(store, 1, runner=_sh(f"echo $$ > {pid_file}; exec sleep 30"))
    run_id = created_run(store, 1, rq_queue=queue(store.client, QUEUE))
    doomed = _worker(worker_env, tmp_path / "doomed.log", started=workers)
    _wait_for(lambda: run_of(store, run_id).status == "running" and pid_file.exists())
    _wait_for(lambda: pid_file.read_text().strip() != "")
    command_pid = int(pid_file.read_text())
    # The survivor, whose reaper ends the run, is up before the kill: the bound below is the
    # README's (4 heartbeats), not that plus a Python start on a loaded host (it was).
    _worker(worker_env, tmp_path / "survivor.log", started=workers)
    rq_queue = Queue(QUEUE, connection=store.client)
    _wait_for(lambda: Worker.count(queue=rq_queue) == 2, 30)

    doomed.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.wait(timeout=30)
    _wait_for(lambda: not Path(f"/proc/{command_pid}").exists() or _zombie(command_pid), 5)
    _wait_for(lambda: run_of(store, run_id).finished, 15)
    took = time.monotonic() - killed_at

    run = run_of(store, run_id)
    assert (run.status, run.result, run.details["reason"]) == ("aborted", "error", "worker_lost")
    assert history(run) == ["created", "initializing", "running", "aborted"]
    assert took < 4 * float(worker_env["TICKWORK_RUN_HEARTBEAT_SECONDS"]) + SLACK_S
    time.sleep(0.5)
    assert history(run_of(store, run_id)) == history(run)  # and it is not run again


def _zombie(pid: int) -> bool:
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True


def test_second_sigterm_stops_the_run_and_records_it_as_worker_stopped(
    store: Store,
    worker_env: dict[str, str],
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    load_test(store, 1, runner=_sh("sleep 30"))
    run_id = created_run(store, 1, rq_queue=queue(store.client, QUEUE))
    process = _worker(worker_env, tmp_path / "worker.log", started=workers)
    _wait_for(lambda: run_of(store, run_id).status == "running")

    process.send_signal(signal.SIGTERM)  # warm: the run would be let finish...
    time.sleep(1.2)  # (RQ ignores a second signal within a second of the first)
    assert run_of(store, run_id).status == "running"
    process.send_signal(signal.SIGTERM)  # ...cold: stop it now
    process.wait(timeout=10)

    run = run_of(store, run_id)
    assert (run.status, run.result, run.details["reason"]) == ("aborted", "error", "worker_stopped")
    assert run.status_history[-1].code == 6


def test_worker_metrics_count_the_runs_it_ended(store: Store) -> None:
    import urllib.request

    from tickwork.embedded import free_port

    load_test(store, 1, runner=_sh("true"))
    load_test(store, 2, runner=_sh("exit 3"))
    rq_queue = queue(store.client, QUEUE)
    created_run(store, 1, rq_queue=rq_queue)
    created_run(store, 2, rq_queue=rq_queue)
    port = free_port()

    serve(
        store,
        queue_names=[QUEUE],
        config=CONFIG,
        burst=True,
        metrics_address=("127.0.0.1", port),
    )

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    assert 'tickwork_runs_total{result="passed",status="completed"} 1.0' in text
    assert 'tickwork_runs_total{result="failed",status="completed"} 1.0' in text
    assert "tickwork_run_queue_delay_seconds_count 2.0" in text
