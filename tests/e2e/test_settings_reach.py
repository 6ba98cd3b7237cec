"""Each setting reaches the component that uses it, in a real process started with it.

README, Settings: every process reads the ``TICKWORK_*`` environment variables, an optional
``.env`` file, and secret files named like the variable. The unit and integration tests pass
these values to constructors; here the process is started with the variable set (and nothing
else changed), and the test observes what the setting is for:

- ``TICKWORK_CATCH_UP_WINDOW_SECONDS``: a late occurrence inside the window fires, one outside
  it (but inside the default 300 s) is recorded ``missed_outside_catch_up_window``;
- ``TICKWORK_FIRE_BATCH_SIZE``: the leader commits due schedules that many at a time;
- ``TICKWORK_FIRE_LOOKAHEAD_SECONDS``: a fire due beyond the default 30 s is encoded ahead;
- ``TICKWORK_RUN_TIMEOUT_SECONDS``: a run whose runner names no limit is stopped at it;
- ``TICKWORK_MAX_BODY_BYTES``: a body over it is a 413, under it is read;
- ``TICKWORK_K6_PATH``: the k6 runner starts that binary;
- ``TICKWORK_WORK_DIR``: a run's private directory is made under it;
- ``.env`` in the working directory, and files under the secrets directory;
- ``token_sha256`` tokens authenticate the token whose digest they hold.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis

from integration.seeding import created_run, load_test, run_of
from tickwork.core import Once, Schedule
from tickwork.embedded import free_port
from tickwork.store import RunRecord, Store
from tickwork.store.queue import queue

from .processes import Process, Processes

pytestmark = pytest.mark.slow

TOKEN = "settings-reach-token-0123456789"


def _until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


@pytest.fixture
def store(redis_client: redis.Redis) -> Store:
    return Store(redis_client, f"e2es{uuid.uuid4().hex[:8]}")


@pytest.fixture
def base_env(redis_url: str, store: Store) -> dict[str, str]:
    return {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": store.keys.prefix,
        "TICKWORK_QUEUES": json.dumps([f"{store.keys.prefix}-runs"]),
        "TICKWORK_COMMAND_ALLOWED": '["sh"]',
    }


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Processes]]:
    """Processes groups to stop at the end of the test, whatever happens."""
    groups: list[Processes] = []
    yield groups
    for group in groups:
        group.stop_all()


def _processes(started: list[Processes], env: dict[str, str], tmp_path: Path) -> Processes:
    group = Processes(env, tmp_path)
    started.append(group)
    return group


def _once(store: Store, load_test_id: int, at: datetime, *, set_at: datetime) -> None:
    """A one-shot schedule at ``at`` for load test ``load_test_id``, set at ``set_at``."""
    store.client.hset(store.keys.load_test(load_test_id), mapping={"stack": 1, "project_id": 1})
    store.schedules.put(
        stack=1,
        load_test_id=load_test_id,
        schedule=Schedule(at, Once()),
        request="{}",
        created_by=None,
        now=set_at,
    )


def _runs(store: Store) -> list[RunRecord]:
    return store.runs.page(1, skip=0, top=10_000)[0]


def _metric(process: Process, name: str) -> float | None:
    with urllib.request.urlopen(f"http://127.0.0.1:{process.port}/metrics", timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return None


# The scheduler


def test_catch_up_window_setting_reaches_the_scheduler(
    store: Store, base_env: dict[str, str], started: list[Processes], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    _once(store, 1, now - timedelta(seconds=20), set_at=now - timedelta(minutes=10))
    _once(store, 2, now - timedelta(seconds=200), set_at=now - timedelta(minutes=10))
    env = {**base_env, "TICKWORK_CATCH_UP_WINDOW_SECONDS": "60"}
    processes = _processes(started, env, tmp_path)
    processes.wait_healthy(processes.scheduler("scheduler"))

    # 20 s late fires (unless starting took 40 s); 200 s late is outside 60 s (not 300 s).
    _until(lambda: len(_runs(store)) == 2, 30, "both occurrences to be settled")
    outcome = {run.load_test_id: run.details.get("skip_reason", run.status) for run in _runs(store)}
    assert outcome == {1: "created", 2: "missed_outside_catch_up_window"}


def test_fire_batch_size_setting_reaches_the_scheduler(
    store: Store, base_env: dict[str, str], started: list[Processes], tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    for load_test_id in range(1, 11):
        _once(store, load_test_id, now - timedelta(seconds=1), set_at=now - timedelta(minutes=1))
    env = {**base_env, "TICKWORK_FIRE_BATCH_SIZE": "3"}
    processes = _processes(started, env, tmp_path)
    scheduler = processes.scheduler("scheduler")
    processes.wait_healthy(scheduler)

    _until(lambda: len(_runs(store)) == 10, 30, "ten fires")
    _until(lambda: sum(_batches(scheduler.log)) == 10, 10, "the batches in the log")
    batches = _batches(scheduler.log)
    assert max(batches) == 3  # not one batch of 10, as the default 500 commits them
    assert sorted(batches) == [1, 3, 3, 3]


def _batches(log: Path) -> list[int]:
    """Fires per committed batch, from the scheduler's JSON log lines."""
    fired = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            if entry.get("event") == "fire_batch_committed":
                fired.append(int(entry["fired"]))
    return fired


def test_fire_lookahead_setting_reaches_the_scheduler(
    store: Store, base_env: dict[str, str], started: list[Processes], tmp_path: Path
) -> None:
    env = {**base_env, "TICKWORK_FIRE_LOOKAHEAD_SECONDS": "100"}
    processes = _processes(started, env, tmp_path)
    scheduler = processes.scheduler("scheduler")
    processes.wait_healthy(scheduler)
    processes.leader()
    now = datetime.now(UTC)
    _once(store, 1, now + timedelta(seconds=60), set_at=now)  # beyond the default 30 s
    _once(store, 2, now + timedelta(seconds=200), set_at=now)  # beyond 100 s

    _until(lambda: _metric(scheduler, "tickwork_fires_ahead") == 1, 20, "one fire ahead")
    time.sleep(1.0)  # another look-ahead step or two: still one, and nothing written
    assert _metric(scheduler, "tickwork_fires_ahead") == 1
    assert _runs(store) == []


# The worker


def _worker_run(
    store: Store,
    started: list[Processes],
    env: dict[str, str],
    tmp_path: Path,
    runner: dict[str, Any] | None,
    script: bytes | None = None,
) -> RunRecord:
    """A real worker, started with ``env``, executes one run of a load test with ``runner``;
    the run once it has ended."""
    load_test(store, 1, runner=runner, script=script)
    run_id = created_run(store, 1, rq_queue=queue(store.client, f"{store.keys.prefix}-runs"))
    processes = _processes(started, env, tmp_path)
    processes.worker("worker")
    _until(lambda: run_of(store, run_id).finished, 60, "the run to end")
    return run_of(store, run_id)


def test_run_timeout_setting_reaches_the_worker(
    store: Store, base_env: dict[str, str], started: list[Processes], tmp_path: Path
) -> None:
    env = {**base_env, "TICKWORK_RUN_TIMEOUT_SECONDS": "1"}
    runner = {"type": "command", "argv": ["sh", "-c", "sleep 60"]}  # names no limit

    run = _worker_run(store, started, env, tmp_path, runner)

    assert (run.status, run.details["reason"]) == ("aborted", "timed_out")
    running = next(e.entered for e in run.status_history if e.type == "running")
    assert run.ended is not None
    assert (run.ended - running).total_seconds() < 30  # the limit, not the command's 60 s


def test_k6_path_setting_reaches_the_worker(
    store: Store, base_env: dict[str, str], started: list[Processes], tmp_path: Path
) -> None:
    k6 = tmp_path / "bin" / "k6-of-this-test"
    k6.parent.mkdir()
    k6.write_text('#!/bin/sh\necho "k6 of this test: $*"\n')
    k6.chmod(k6.stat().st_mode | stat.S_IXUSR)
    env = {**base_env, "TICKWORK_K6_PATH": str(k6)}

    run = _worker_run(store, started, env, tmp_path, None, script=b"export default () => {}")

    assert (run.status, run.result) == ("completed", "passed"), run.details
    assert run.details["runner"] == "k6"
    assert "k6 of this test: run " in run.details["output_tail"]


def test_work_dir_setting_reaches_the_worker(
    store: Store, base_env: dict[str, str], started: list[Processes], tmp_path: Path
) -> None:
    work_dir, marker = tmp_path / "work", tmp_path / "where"
    work_dir.mkdir()
    env = {**base_env, "TICKWORK_WORK_DIR": str(work_dir)}
    runner = {"type": "command", "argv": ["sh", "-c", f"pwd > {marker}"]}

    run = _worker_run(store, started, env, tmp_path, runner)

    assert (run.status, run.result) == ("completed", "passed"), run.details
    ran_in = Path(marker.read_text().strip())
    assert ran_in.parent == work_dir
    assert ran_in.name.startswith(f"tickwork-run-{run.id}-")
    assert list(work_dir.iterdir()) == []  # and removed after the run


# The API, and where settings come from


@pytest.fixture
def api_env(base_env: dict[str, str]) -> dict[str, str]:
    """The API's environment without TICKWORK_TOKENS (each test says where tokens come from)."""
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}
    return {**inherited, **base_env}


@pytest.fixture
def api_processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    popens: list[subprocess.Popen[bytes]] = []
    yield popens
    for popen in popens:
        popen.terminate()
    for popen in popens:
        try:
            popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(timeout=10)


def _api(popens: list[subprocess.Popen[bytes]], env: dict[str, str], cwd: Path, log: Path) -> str:
    """A ``tickwork api`` started in ``cwd`` with exactly ``env``; its base URL once healthy."""
    port = free_port()
    with log.open("ab") as sink:
        popen = subprocess.Popen(
            [sys.executable, "-m", "tickwork", "api", "--port", str(port)],
            env=env,
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    popens.append(popen)
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        assert popen.poll() is None, f"the api exited:\n{log.read_text()}"
        try:
            urllib.request.urlopen(f"{base}/healthz", timeout=1).close()
        except OSError:
            return False
        return True

    _until(healthy, 30, "the api to answer")
    return base


def _request(
    base: str, method: str, path: str, *, token: str | None = TOKEN, body: bytes | None = None
) -> int:
    headers = {"X-Stack-Id": "1", "Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(base + path, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        error.close()
        return int(error.code)


def _tokens(**form: str) -> str:
    return json.dumps([{**form, "email": "reach@example.com", "stacks": [1]}])


def _project(size: int) -> bytes:
    """A project-create body of exactly ``size`` bytes."""
    body = json.dumps({"name": ""}).encode()
    return json.dumps({"name": "p" * (size - len(body))}).encode()


def test_max_body_setting_reaches_the_api(
    api_env: dict[str, str], api_processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    env = {**api_env, "TICKWORK_TOKENS": _tokens(token=TOKEN), "TICKWORK_MAX_BODY_BYTES": "2048"}
    base = _api(api_processes, env, tmp_path, tmp_path / "api.log")

    assert _request(base, "POST", "/cloud/v6/projects", body=_project(2049)) == 413
    assert _request(base, "POST", "/cloud/v6/projects", body=_project(200)) == 201
    # (the default, 1 MiB, would read the first one as well)


def test_settings_in_a_dot_env_file_reach_the_process(
    api_env: dict[str, str], api_processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    (tmp_path / ".env").write_text(
        f"TICKWORK_TOKENS='{_tokens(token=TOKEN)}'\nTICKWORK_MAX_BODY_BYTES=2048\n"
    )

    base = _api(api_processes, api_env, tmp_path, tmp_path / "api.log")

    assert _request(base, "GET", "/cloud/v6/projects") == 200
    assert _request(base, "GET", "/cloud/v6/projects", token="another-token-0123456789") == 401
    assert _request(base, "POST", "/cloud/v6/projects", body=_project(2049)) == 413


def test_settings_in_secret_files_reach_the_process(
    api_env: dict[str, str], api_processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    # settings.py reads the secrets directory from TICKWORK_SECRETS_DIR (default
    # /run/secrets, which a test cannot write): the same source, another directory.
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "TICKWORK_TOKENS").write_text(_tokens(token=TOKEN))
    (secrets / "TICKWORK_MAX_BODY_BYTES").write_text("2048")
    env = {**api_env, "TICKWORK_SECRETS_DIR": str(secrets)}

    base = _api(api_processes, env, tmp_path, tmp_path / "api.log")

    assert _request(base, "GET", "/cloud/v6/projects") == 200
    assert _request(base, "GET", "/cloud/v6/projects", token="another-token-0123456789") == 401
    assert _request(base, "POST", "/cloud/v6/projects", body=_project(2049)) == 413


def test_a_token_configured_by_its_sha256_authenticates_that_token_only(
    api_env: dict[str, str], api_processes: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    env = {**api_env, "TICKWORK_TOKENS": _tokens(token_sha256=digest)}

    base = _api(api_processes, env, tmp_path, tmp_path / "api.log")

    assert _request(base, "GET", "/cloud/v6/projects") == 200
    assert _request(base, "GET", "/cloud/v6/projects", token=digest) == 401  # the digest itself
    assert _request(base, "GET", "/cloud/v6/projects", token=None) == 401
