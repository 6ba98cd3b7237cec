"""`tickwork standalone` brought up as a user would, used through the API, stopped cleanly."""

from __future__ import annotations

import fcntl
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest

from tickwork.embedded import EmbeddedServer, free_port
from tickwork.store import RunRecord, Store, connect

pytestmark = pytest.mark.slow


def _call(url: str, token: str, method: str = "GET", body: object = None) -> Any:
    request = urllib.request.Request(
        url,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={
            "Authorization": f"Bearer {token}",
            "X-Stack-Id": "1",
            "Content-Type": "application/json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


def read_banner(process: subprocess.Popen[str], timeout_s: float = 60) -> str:
    """The banner's lines, up to its last; AssertionError if it is not printed in time (the
    lines are read by a thread, so a silent process cannot hang the test)."""
    assert process.stdout is not None
    stdout = process.stdout
    lines: queue.Queue[str] = queue.Queue()

    def read() -> None:
        for line in iter(stdout.readline, ""):
            lines.put(line)
            if line.startswith("Ctrl-C stops everything."):
                return
        lines.put("")

    threading.Thread(target=read, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        try:
            line = lines.get(timeout=left)
        except queue.Empty:
            break
        if not line:
            break
        seen.append(line)
        if line.startswith("Ctrl-C stops everything."):
            return "".join(seen)
    raise AssertionError("no banner:\n" + "".join(seen))


def _env(**extra: str) -> dict[str, str]:
    return {**{k: v for k, v in os.environ.items() if not k.startswith("TICKWORK_")}, **extra}


def _command(data_dir: Path, port: int, python: str = sys.executable) -> list[str]:
    return [
        python,
        "-m",
        "tickwork",
        "standalone",
        "--port",
        str(port),
        "--data-dir",
        str(data_dir),
    ]


def start_standalone(
    tmp_path: Path,
    python: str = sys.executable,
    *,
    env: dict[str, str] | None = None,
    stderr: Path | None = None,
) -> tuple[subprocess.Popen[str], str]:
    """A standalone on tmp_path/data, started as from a terminal: the leader of a process
    group of its own, which a Ctrl-C (os.killpg) reaches whole."""
    errors = stderr.open("w") if stderr is not None else subprocess.DEVNULL
    process = subprocess.Popen(
        _command(tmp_path / "data", free_port(), python),
        env=env or _env(),
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
        process_group=0,
    )
    if stderr is not None:
        errors.close()  # type: ignore[union-attr]
    try:
        return process, read_banner(process)
    except BaseException:
        _stop(process)
        raise


def _stop(process: subprocess.Popen[str], signum: int = signal.SIGTERM) -> int:
    if process.poll() is None:
        process.send_signal(signum)
    try:
        code = process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        code = process.wait(timeout=10)
    if process.stdout is not None:
        process.stdout.close()
    return code


def test_standalone_runs_a_real_k6_test_and_stops_leaving_nothing_behind(
    tmp_path: Path,
) -> None:
    process, banner = start_standalone(tmp_path)
    try:
        parts = _parts(process.pid)
        redis_port = re.search(r"redis://127\.0\.0\.1:(\d+)", banner)
        assert redis_port is not None, banner
        assert "curl" in banner
        base, secret = _api(banner)

        run = _call(f"{base}/cloud/v6/load_tests/1/start", secret, "POST")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            run = _call(f"{base}/cloud/v6/test_runs/{run['id']}", secret)
            if run["status"] in ("completed", "aborted"):
                break
            time.sleep(0.5)
        assert (run["status"], run["result"]) == ("completed", "passed")
    finally:
        code = _stop(process)
    assert code == 0
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", int(redis_port.group(1))), timeout=1).close()
    assert _alive(parts) == []
    assert _redis_servers(tmp_path / "data") == []


def _api(banner: str) -> tuple[str, str]:
    api = re.search(r"API:\s+(\S+)", banner)
    token = re.search(r"token:\s+(\S+)", banner)
    assert api is not None, banner
    assert token is not None, banner
    return api.group(1), token.group(1)


def _parts(pid: int) -> list[int]:
    """The standalone's child processes: its Redis, scheduler and worker."""
    found = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False, timeout=10
    )
    return [int(part) for part in found.stdout.split()]


def _alive(pids: list[int]) -> list[int]:
    alive = []
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    return alive


def _redis_servers(data_dir: Path) -> list[int]:
    """The Redis servers working in data_dir/redis (a server runs in its --dir and retitles
    itself, so its working directory names it, not its command line)."""
    where = str((data_dir / "redis").resolve())
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            with suppress(OSError):
                if os.readlink(proc / "cwd") == where:
                    found.append(int(proc.name))
    return found


def _start_running(banner: str, argv: list[str]) -> int:
    """A command load test started now; its run's id, once the worker runs it."""
    base, token = _api(banner)
    load_test = _call(
        f"{base}/cloud/v6/projects/1/load_tests",
        token,
        "POST",
        {"name": "sleeper", "runner": {"type": "command", "argv": argv}},
    )
    run = _call(f"{base}/cloud/v6/load_tests/{load_test['id']}/start", token, "POST")
    deadline = time.monotonic() + 30
    while _call(f"{base}/cloud/v6/test_runs/{run['id']}", token)["status"] != "running":
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.1)
    run_id: int = run["id"]
    return run_id


def _recorded(data_dir: Path, run_id: int) -> RunRecord:
    """The run as the standalone's Redis kept it on disk (read once the standalone is gone)."""
    server = EmbeddedServer(data_dir / "redis").start()
    try:
        return Store(connect(server.url), "tw").runs.get(1, run_id)
    finally:
        server.stop()


def _until_text(path: Path, text: str, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while text not in path.read_text():
        assert time.monotonic() < deadline, f"{text!r} never came:\n{path.read_text()}"
        time.sleep(0.05)


def _events(stderr: str) -> list[str]:
    """The event names of the parts' JSON log lines, in order."""
    return [json.loads(line)["event"] for line in stderr.splitlines() if line.startswith("{")]


@pytest.mark.timeout(180)
def test_ctrl_c_lets_the_running_run_end_then_stops_every_part_with_redis_last(
    tmp_path: Path,
) -> None:
    errors = tmp_path / "stderr"
    env = _env(TICKWORK_COMMAND_ALLOWED='["sleep"]')
    process, banner = start_standalone(tmp_path, env=env, stderr=errors)
    try:
        parts = _parts(process.pid)
        assert len(parts) == 3, parts  # Redis, scheduler, worker
        run_id = _start_running(banner, ["sleep", "2"])
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole group
        code = process.wait(timeout=90)
    finally:
        _stop(process)

    stderr = errors.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert stderr.rstrip().endswith("tickwork: stopped")
    events = _events(stderr)
    # The scheduler first (no new fires), the worker after its run, Redis last: the run's
    # ending was written while Redis still ran.
    assert events.index("scheduler_stopped") < events.index("worker_stopped")
    assert events.index("run_finished") < events.index("worker_stopped")
    assert _alive(parts) == []
    assert _redis_servers(tmp_path / "data") == []
    run = _recorded(tmp_path / "data", run_id)
    assert (run.status, run.result, run.details["reason"]) == ("completed", "passed", "passed")


@pytest.mark.timeout(180)
def test_a_second_ctrl_c_aborts_the_running_run_and_records_why(tmp_path: Path) -> None:
    errors = tmp_path / "stderr"
    env = _env(TICKWORK_COMMAND_ALLOWED='["sleep"]')
    process, banner = start_standalone(tmp_path, env=env, stderr=errors)
    try:
        parts = _parts(process.pid)
        run_id = _start_running(banner, ["sleep", "600"])
        os.killpg(process.pid, signal.SIGINT)
        _until_text(errors, "tickwork: stopping")  # the first one was taken
        os.killpg(process.pid, signal.SIGINT)
        code = process.wait(timeout=90)
    finally:
        _stop(process)

    stderr = errors.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr
    assert _alive(parts) == []
    assert _redis_servers(tmp_path / "data") == []
    run = _recorded(tmp_path / "data", run_id)
    assert (run.status, run.result, run.details["reason"]) == ("aborted", "error", "worker_stopped")


@pytest.mark.timeout(180)
def test_a_second_standalone_on_a_data_directory_in_use_names_the_first_and_starts_nothing(
    tmp_path: Path,
) -> None:
    first, banner = start_standalone(tmp_path)
    try:
        api, _ = _api(banner)
        port = free_port()
        second = subprocess.run(
            _command(tmp_path / "data", port),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert second.returncode != 0
        assert second.stdout == ""  # no banner
        (line,) = second.stderr.splitlines()
        assert f"pid {first.pid}" in line
        assert api in line
        assert len(_redis_servers(tmp_path / "data")) == 1  # the first one's only
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()

        # Killed outright, the first frees the directory once its parts have followed it.
        first.kill()
        first.wait(timeout=10)
        with (tmp_path / "data" / "lock").open("a") as lock:
            deadline = time.monotonic() + 30
            while True:
                try:
                    fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    assert time.monotonic() < deadline, "the lock outlived the standalone"
                    time.sleep(0.1)
                else:
                    fcntl.flock(lock, fcntl.LOCK_UN)
                    break
        third, _ = start_standalone(tmp_path)
        assert _stop(third) == 0
    finally:
        _stop(first)


@pytest.mark.timeout(120)
def test_a_busy_port_stops_the_standalone_before_its_banner_with_one_line_naming_it(
    tmp_path: Path,
) -> None:
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()  # it answers: a connection to it succeeds
        port = other.getsockname()[1]
        result = subprocess.run(
            _command(tmp_path / "data", port),
            env=_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert result.stdout == ""  # no banner advertising the other process's address
    assert result.stderr.splitlines() == [
        f"tickwork: port {port} on 127.0.0.1 is in use by another process; stop it, or pass --port"
    ]
    assert not (tmp_path / "data" / "redis").exists()  # nothing started
