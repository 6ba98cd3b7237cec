"""`tickwork schedules`, `tickwork runs` and `tickwork doctor` as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tickwork.client import Client
from tickwork.embedded import free_port

TOKEN = "cli-test-token-0123456789"


def tickwork(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickwork", *args],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def env(redis_url: str) -> dict[str, str]:
    return {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": f"cli{uuid.uuid4().hex[:8]}",
        "TICKWORK_TOKENS": json.dumps([{"token": TOKEN, "email": "me@example.com", "stacks": [3]}]),
        "TICKWORK_API_TOKEN": TOKEN,
        "TICKWORK_STACK_ID": "3",
    }


@pytest.fixture
def api(env: dict[str, str], tmp_path: Path) -> Iterator[Client]:
    port = free_port()
    env["TICKWORK_API_URL"] = f"http://127.0.0.1:{port}"
    log = (tmp_path / "api.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "tickwork", "api", "--port", str(port)],
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield Client(env["TICKWORK_API_URL"], TOKEN, 3)
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def _load_test(client: Client) -> int:
    project = client.call("POST", "/cloud/v6/projects", {"name": "cli"})
    test = client.call(
        "POST",
        f"/cloud/v6/projects/{project['id']}/load_tests",
        {"name": "t", "script": "export default function () {}"},
    )
    load_test_id: int = test["id"]
    return load_test_id


def test_schedules_commands_set_list_deactivate_activate_delete(
    api: Client, env: dict[str, str]
) -> None:
    load_test_id = _load_test(api)
    body = json.dumps(
        {
            "starts": "2030-01-01T00:00:00.500Z",
            "cron": {"schedule": "0 7 * * 1", "time_zone": "UTC"},
        }
    )
    created = tickwork(env, "schedules", "set", str(load_test_id), body, "--json")
    assert created.returncode == 0, created.stderr
    schedule = json.loads(created.stdout)
    assert schedule["starts"] == "2030-01-01T00:00:00.500Z"
    assert schedule["next_run"] == "2030-01-07T07:00:00Z"

    listing = tickwork(env, "schedules", "list")
    assert listing.returncode == 0, listing.stderr
    header, row = listing.stdout.splitlines()
    assert header.split()[:3] == ["ID", "LOAD_TEST_ID", "DEACTIVATED"]
    assert row.split()[:3] == [str(schedule["id"]), str(load_test_id), "no"]

    off = tickwork(env, "schedules", "deactivate", str(schedule["id"]), "--json")
    assert json.loads(off.stdout)["deactivated"] is True
    on = tickwork(env, "schedules", "activate", str(schedule["id"]))
    assert "deactivated: False" in on.stdout

    assert tickwork(env, "schedules", "delete", str(schedule["id"])).returncode == 0
    gone = tickwork(env, "schedules", "show", str(schedule["id"]))
    assert gone.returncode == 1
    assert "not found" in gone.stderr.lower()


def test_schedules_set_with_a_bad_body_prints_each_problem_and_changes_nothing(
    api: Client, env: dict[str, str]
) -> None:
    load_test_id = _load_test(api)
    bad = json.dumps(
        {"starts": "2030-01-01T00:00:00", "cron": {"schedule": "0 0 L * *", "time_zone": "UTC"}}
    )
    result = tickwork(env, "schedules", "set", str(load_test_id), bad)
    assert result.returncode == 1
    assert "starts" in result.stderr
    assert "cron.schedule" in result.stderr
    assert tickwork(env, "schedules", "list", "--json").stdout.strip() == "[]"


def test_runs_commands_start_with_idempotency_list_and_abort(
    api: Client, env: dict[str, str]
) -> None:
    load_test_id = _load_test(api)
    first = tickwork(env, "runs", "start", str(load_test_id), "--idempotency-key", "k1", "--json")
    again = tickwork(env, "runs", "start", str(load_test_id), "--idempotency-key", "k1", "--json")
    assert first.returncode == 0, first.stderr
    run_id = json.loads(first.stdout)["id"]
    assert json.loads(again.stdout)["id"] == run_id

    listing = tickwork(env, "runs", "list", "--load-test", str(load_test_id))
    assert [line.split()[0] for line in listing.stdout.splitlines()[1:]] == [str(run_id)]

    aborted = tickwork(env, "runs", "abort", str(run_id), "--json")
    assert aborted.returncode == 0, aborted.stderr
    assert json.loads(aborted.stdout)["status"] == "aborted"


def test_client_without_a_token_says_how_to_give_one(env: dict[str, str]) -> None:
    del env["TICKWORK_API_TOKEN"]
    result = tickwork(env, "schedules", "list")
    assert result.returncode == 2
    assert "TICKWORK_API_TOKEN" in result.stderr


def test_doctor_passes_on_good_settings(env: dict[str, str]) -> None:
    result = tickwork(env, "doctor")
    assert result.returncode == 0, result.stdout
    assert "[ok] redis:" in result.stdout
    assert "[ok] clock:" in result.stdout


def test_doctor_fails_on_unreachable_redis_and_says_what_to_fix(env: dict[str, str]) -> None:
    env["TICKWORK_REDIS_URL"] = f"redis://127.0.0.1:{free_port()}/0"
    result = tickwork(env, "doctor")
    assert result.returncode == 1
    assert "[fail] redis:" in result.stdout
    assert "fix: start Redis or correct TICKWORK_REDIS_URL" in result.stdout


def test_doctor_names_each_invalid_setting(env: dict[str, str]) -> None:
    env["TICKWORK_LEASE_TTL_SECONDS"] = "soon"
    result = tickwork(env, "doctor")
    assert result.returncode == 1
    assert "TICKWORK_LEASE_TTL_SECONDS" in result.stdout


def test_invalid_settings_stop_a_daemon_at_start_with_one_line_per_problem(
    env: dict[str, str],
) -> None:
    env["TICKWORK_LEASE_TTL_SECONDS"] = "0"
    env["TICKWORK_REDIS_URL"] = "http://nope"
    result = tickwork(env, "scheduler", "--health-port", "0")
    assert result.returncode == 2
    problems = [line for line in result.stderr.splitlines() if line.startswith("TICKWORK_")]
    assert [p.split(":")[0] for p in problems] == [
        "TICKWORK_REDIS_URL",
        "TICKWORK_LEASE_TTL_SECONDS",
    ]
