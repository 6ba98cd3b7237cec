"""Real tickwork processes for end-to-end tests: start, find the leader, stop."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tickwork.core import Interval, Schedule
from tickwork.embedded import free_port
from tickwork.store import Store


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    port: int
    log: Path
    args: tuple[str, ...] = ()  # tickwork's arguments, "{port}" where the port goes

    def health(self) -> dict[str, object] | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=1) as r:
                data: dict[str, object] = json.load(r)
                return data
        except OSError:
            return None

    def signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class Processes:
    env: dict[str, str]
    logs: Path
    started: list[Process] = field(default_factory=list)

    def scheduler(self, name: str) -> Process:
        return self._start(name, ("scheduler", "--health-port", "{port}"), free_port())

    def worker(self, name: str, *args: str) -> Process:
        """A ``tickwork worker``; it has no health port (RQ's registry says it is up)."""
        return self._start(name, ("worker", *args), 0)

    def api(self, name: str) -> Process:
        return self._start(name, ("api", "--port", "{port}"), free_port())

    def _start(self, name: str, args: tuple[str, ...], port: int) -> Process:
        process = Process(name, self._spawn(name, args, port), port, self.logs / f"{name}.log")
        process.args = args
        self.started.append(process)
        return process

    def _spawn(self, name: str, args: tuple[str, ...], port: int) -> subprocess.Popen[bytes]:
        with (self.logs / f"{name}.log").open("ab") as handle:
            return subprocess.Popen(
                [sys.executable, "-m", "tickwork", *(a.format(port=port) for a in args)],
                env={**os.environ, **self.env},
                stdout=handle,
                stderr=subprocess.STDOUT,
            )

    def wait_healthy(self, process: Process, timeout_s: float = 60) -> None:
        """Until the process answers on its port, itself: another process given the same
        free port meanwhile (it can happen, if rarely) would answer too. A process that lost
        its port that way is started again on another."""
        deadline = time.monotonic() + timeout_s
        restarts = 0
        while time.monotonic() < deadline:
            if process.health() is not None and _listens(process.popen.pid, process.port):
                return
            if not process.alive:
                if "Address already in use" in process.log.read_text() and restarts < 3:
                    restarts += 1
                    process.port = free_port()
                    process.popen = self._spawn(process.name, process.args, process.port)
                    continue
                raise AssertionError(f"{process.name} exited:\n{process.log.read_text()}")
            time.sleep(0.1)
        raise AssertionError(f"{process.name} not healthy:\n{process.log.read_text()}")

    def leader(self, timeout_s: float = 30) -> Process:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            leaders = [
                p for p in self.started if p.alive and (p.health() or {}).get("role") == "leader"
            ]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.05)
        raise AssertionError("no single leader")

    def stop_all(self) -> None:
        for process in self.started:
            if process.alive:
                process.popen.send_signal(signal.SIGCONT)
                process.popen.terminate()
        stuck = []
        for process in self.started:
            try:
                process.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                try:
                    process.popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    stuck.append(process.name)  # in an uninterruptible wait: say so, go on
        if stuck:
            raise AssertionError(f"still running 10 s after SIGKILL: {', '.join(stuck)}")


def _listens(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (from /proc: Linux; True
    where there is none to read)."""
    listening = set()
    for table in (Path("/proc/net/tcp"), Path("/proc/net/tcp6")):
        try:
            rows = table.read_text().splitlines()[1:]
        except OSError:
            return True
        for row in rows:
            fields = row.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and int(local.rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                listening.add(f"socket:[{inode}]")
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in listening:
                    return True
    return False


def every_second(store: Store, count: int, *, lead_s: int) -> datetime:
    """``count`` schedules (load tests 1..count) firing every second from ``lead_s`` seconds
    from now, overlap allowed; their first instant."""
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=lead_s)
    for load_test_id in range(1, count + 1):
        store.client.hset(store.keys.load_test(load_test_id), mapping={"stack": 1, "project_id": 1})
        store.schedules.put(
            stack=1,
            load_test_id=load_test_id,
            schedule=Schedule(start, Interval(timedelta(seconds=1))),
            request="{}",
            created_by=None,
            now=datetime.now(UTC),
            overlap="allow",
        )
    return start


def scheduler_env(redis_url: str, *, lease_ttl_s: float) -> dict[str, str]:
    """Settings of the processes of one test: keys and a queue of their own, a short lease."""
    return {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": f"e2e{uuid.uuid4().hex[:8]}",
        "TICKWORK_LEASE_TTL_SECONDS": str(lease_ttl_s),
        "TICKWORK_QUEUES": '["e2e-runs"]',
    }


@contextlib.contextmanager
def running(env: dict[str, str], logs: Path) -> Iterator[Processes]:
    """Processes started with ``env``, every one stopped at the end."""
    procs = Processes(env, logs)
    try:
        yield procs
    finally:
        procs.stop_all()
