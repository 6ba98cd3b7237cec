"""The image's HEALTHCHECK: ask the tickwork process in the container where its own command
line says it serves, whatever its role.

One image runs every role, and each answers on a port of its own, or on none:

    tickwork api | standalone   /healthz on --host, --port                  (127.0.0.1:8080)
    tickwork scheduler          /healthz on --health-host, --health-port    (127.0.0.1:8081; 0: off)
    tickwork worker             /metrics on --metrics-host, --metrics-port  (off unless given)

Docker runs the check as a second process beside the role, so the check reads the role and
its flags from that process's command line in /proc. It follows whatever command the container
was given (``docker run IMAGE scheduler --health-port 9000`` included), with no per-role
variable to keep in step with the command.

Exit status 0: the endpoint answered 200, or the command serves nothing to ask (a worker
without --metrics-port, a scheduler with --health-port 0, a one-off command such as doctor);
such a container lives exactly as long as its process. 1: the endpoint did not answer 200 in
time, or no tickwork process is in the container.

    python healthcheck.py [PID]   # PID: the tickwork process (default: PID 1, else the first)

Standard library only: it runs with the image's Python and needs nothing from tickwork, whose
import would cost more than the check itself.
"""

from __future__ import annotations

import http.client
import os
import sys
import urllib.request
from typing import NamedTuple

TIMEOUT_S = 4.0  # under the HEALTHCHECK --timeout (5 s), so the check reports why it failed

# role: (host flag, port flag, default port, path); the defaults are `tickwork ROLE --help`'s
# (tests/unit/test_image_healthcheck.py holds them to the CLI's own parser).
ROLES = {
    "api": ("--host", "--port", 8080, "/healthz"),
    "standalone": ("--host", "--port", 8080, "/healthz"),
    "scheduler": ("--health-host", "--health-port", 8081, "/healthz"),
    "worker": ("--metrics-host", "--metrics-port", 0, "/metrics"),
}
DEFAULT_HOST = "127.0.0.1"
# A process listening on every address answers on loopback (a lookup table: nothing binds).
LOOPBACK = {"0.0.0.0": "127.0.0.1", "::": "::1"}  # noqa: S104


class Endpoint(NamedTuple):
    host: str
    port: int
    path: str

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"


def option(args: list[str], flag: str) -> str | None:
    """The value of ``flag`` in ``args`` (``--flag V`` or ``--flag=V``; the last one wins, as
    with argparse)."""
    value = None
    for index, arg in enumerate(args):
        if arg == "--":
            break
        if arg == flag and index + 1 < len(args):
            value = args[index + 1]
        elif arg.startswith(flag + "="):
            value = arg.removeprefix(flag + "=")
    return value


def endpoint(command: list[str]) -> Endpoint | None:
    """Where ``tickwork COMMAND...`` answers a health check, or None if it serves nothing."""
    if not command or command[0] not in ROLES:
        return None
    host_flag, port_flag, default_port, path = ROLES[command[0]]
    port = int(option(command[1:], port_flag) or default_port)
    if port == 0:
        return None
    host = option(command[1:], host_flag) or DEFAULT_HOST
    return Endpoint(LOOPBACK.get(host, host), port, path)


def tickwork_command(pid: int) -> list[str] | None:
    """The arguments after ``tickwork`` in process ``pid``'s command line, if it runs tickwork
    (``/opt/tickwork/bin/tickwork ROLE ...`` in the image, ``python -m tickwork ROLE ...``)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            raw = cmdline.read()
    except OSError:
        return None
    argv = [arg.decode(errors="replace") for arg in raw.removesuffix(b"\0").split(b"\0")]
    for index, arg in enumerate(argv):
        if os.path.basename(arg) == "tickwork":
            return argv[index + 1 :]
    return None


def find_command() -> list[str] | None:
    """PID 1's command when it is tickwork (the image's ENTRYPOINT), else the first tickwork
    process (under an init such as ``docker run --init``)."""
    others = sorted(
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and int(entry) not in (1, os.getpid())
    )
    for pid in (1, *others):
        command = tickwork_command(pid)
        if command is not None:
            return command
    return None


def check(target: Endpoint) -> tuple[bool, str]:
    # No proxy: HTTP_PROXY set for a runner's outgoing calls must not catch a loopback check.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(target.url, timeout=TIMEOUT_S) as response:
            status = response.status
    except (OSError, http.client.HTTPException) as exc:  # refused, timed out, not 2xx
        return False, f"{target.url}: {exc}"
    return status == 200, f"{target.url}: {status}"


def main(argv: list[str]) -> int:
    command = tickwork_command(int(argv[1])) if len(argv) > 1 else find_command()
    if command is None:
        print("healthcheck: no tickwork process in this container", file=sys.stderr)
        return 1
    try:
        target = endpoint(command)
    except ValueError as exc:  # a port that is no number: the process refused it too
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 1
    if target is None:
        print(f"healthcheck: `tickwork {' '.join(command[:1])}` serves nothing to ask; up")
        return 0
    healthy, report = check(target)
    print(f"healthcheck: {report}", file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
