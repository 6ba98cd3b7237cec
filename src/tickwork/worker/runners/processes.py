"""Supervising a child process for the k6 and command runners.

The child gets its own session (so a stop reaches everything it started), a minimal
environment (the worker's secrets, such as the Redis URL, are not passed on), its output in a
file (no pipe to fill up), and on Linux a parent-death signal: when the worker is killed with
SIGKILL, the load test stops with it rather than hammering the target for an hour with nobody
left to record the result.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

OUTPUT_TAIL_BYTES = 16_384
"""How much of the end of a child's output is kept with the run."""

POLL_S = 0.1
"""How often the supervisor looks at the child, the cancel flag and the clock."""

PASSED_THROUGH = (
    "PATH",
    "LANG",
    "LC_ALL",
    "TZ",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
)
"""The worker's environment variables a child inherits; everything else it is given."""

GROUP_GONE_S = 5.0
"""How long a stopped run waits for the processes it was sent SIGKILL to to be gone."""

_PR_SET_PDEATHSIG = 1


@dataclass(frozen=True, slots=True)
class Ended:
    exit_code: int | None
    stopped: str | None  # "cancelled" or "timed_out" when the supervisor stopped it
    duration_s: float
    output_tail: str


def child_env(work_dir: Path, extra: Mapping[str, str]) -> dict[str, str]:
    base = {name: os.environ[name] for name in PASSED_THROUGH if name in os.environ}
    return {**base, "HOME": str(work_dir), "TMPDIR": str(work_dir), **extra}


def supervise(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    time_limit_s: float,
    cancel: threading.Event,
    output: Path,
    grace_s: float,
) -> Ended:
    """Run ``argv`` to its end, or stop it on ``cancel`` or at the time limit. OSError when
    it cannot be started."""
    started = time.monotonic()
    deadline = started + time_limit_s
    with output.open("wb") as sink:
        child = subprocess.Popen(  # noqa: S603  (argv comes from a validated runner spec)
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_parent_death_signal(),  # noqa: PLW1509  (one async-signal-safe syscall)
        )
    stopped: str | None = None
    watch = _ExitWatch(child)
    try:
        while True:
            if watch.exited(POLL_S):
                break
            if cancel.is_set():
                stopped = "cancelled"
            elif time.monotonic() >= deadline:
                stopped = "timed_out"
            if stopped is not None:
                _stop(child, grace_s)
                break
    finally:
        # Also on an exception raised into this frame (RQ's job timeout, a cold shutdown):
        # nothing the run started may outlive it.
        watch.close()
        _kill_group(child)
    return Ended(child.returncode, stopped, time.monotonic() - started, tail(output))


class _ExitWatch:
    """Waits for the child's exit with a timeout. On Linux a pidfd wakes it the moment the
    child exits; ``Popen.wait(timeout=)`` instead polls with sleeps of up to 50 ms, which
    would add that much to every short run."""

    def __init__(self, child: subprocess.Popen[bytes]) -> None:
        self._child = child
        try:
            self._pidfd: int | None = os.pidfd_open(child.pid)
        except (AttributeError, OSError):
            self._pidfd = None

    def exited(self, timeout_s: float) -> bool:
        if self._pidfd is None:
            try:
                self._child.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                return False
            return True
        readable, _, _ = select.select([self._pidfd], [], [], timeout_s)
        if readable:
            self._child.wait()
        return bool(readable)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def tail(path: Path, limit: int = OUTPUT_TAIL_BYTES) -> str:
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - limit))
            data = handle.read()
    except OSError:
        return ""
    text = data.decode("utf-8", errors="replace")
    if size > limit and "\n" in text:
        text = text.split("\n", 1)[1]  # start at a line boundary
    return text


def _stop(child: subprocess.Popen[bytes], grace_s: float) -> None:
    """SIGTERM to the group (k6 then stops gracefully and writes its summary), SIGKILL after
    the grace period."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(child.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        child.wait(timeout=grace_s)


def _kill_group(child: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    _wait_until_gone(child.pid, GROUP_GONE_S)


def _wait_until_gone(pgid: int, timeout_s: float) -> None:
    """SIGKILL is delivered asynchronously: each process of the group dies when the kernel
    next schedules it, which on a busy host can be after the child itself was reaped. Wait
    for that, so that a run reported as ended has really stopped everything it started (a
    load test never hammers its target on after its run says it is over). Gives up after
    ``timeout_s`` (a process stuck in an uninterruptible wait dies when that wait ends)."""
    deadline = time.monotonic() + timeout_s
    while _group_runs(pgid) and time.monotonic() < deadline:
        time.sleep(0.005)


def _group_runs(pgid: int) -> bool:
    """Whether a process of group ``pgid`` still runs. Zombies do not count: an orphan's
    zombie waits for init to reap it, which some container inits never do."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False  # the common case: nothing of the group is left at all
    except PermissionError:
        pass
    try:
        entries = os.scandir("/proc")
    except OSError:
        return False  # no /proc (not Linux): the SIGKILL sent is all that can be done
    with entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/stat", "rb") as stat:
                    line = stat.read()
            except OSError:
                continue  # it ended while we looked
            # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses.
            fields = line[line.rfind(b")") + 2 :].split()
            if len(fields) > 2 and int(fields[2]) == pgid and fields[0] not in (b"Z", b"X"):
                return True
    return False


@functools.cache
def _parent_death_signal() -> Callable[[], None] | None:
    if not sys.platform.startswith("linux"):
        return None
    # Resolved here, before fork: the child only makes the call, which takes no lock.
    prctl = ctypes.CDLL(None, use_errno=True).prctl

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)

    return arm
