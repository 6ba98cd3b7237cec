"""Rate limits: how much one tenant's burst costs another tenant's latency, measured with wrk.

    python bench/limits.py [--duration 20] [--rounds 3] [--burst 1000] [--burst-every 2]

One real ``tickwork api`` process (``python -m tickwork api``, one uvicorn process as
``tickwork api`` runs) serves two tenants: token A in stack 1 and token B in stack 2, each
with one stored schedule. B runs a steady load; A bursts. Each run is one of:

    on  B alone        limits on (the settings' defaults unless ``--rate``, ``--rate-burst``,
                       ``--stack-rate``, ``--stack-rate-burst`` say otherwise: 50 requests/s
                       per token with bursts of 200, 100/s per stack with bursts of 400);
                       B's steady load alone: ``--b-connections`` wrk connections
                       each sending GET /cloud/v6/schedules/{id} and waiting ``--b-delay-ms``
                       between requests (about 40 requests/s: within B's own limit), for
                       ``--duration`` s
    on  B + A          the same, while A sends bursts of ``--burst`` GETs of its own schedule
                       as fast as ``--burst-connections`` connections can, one burst every
                       ``--burst-every`` s (or back to back when a burst takes longer), from
                       1 s into B's run until 1 s before its end
    on  B + A healthz  the same bursts sent to /healthz instead (never limited, the cheapest
                       route, nothing read from Redis): the cost of receiving A's requests at
                       all, the floor under what any answer to them (a 429 included) can cost
    off B alone        limits off (``TICKWORK_RATE_LIMIT_PER_SECOND=0`` and the stack's), a
    off B + A          process of its own: what A's bursts cost B without the limits

It prints B's requests/s, p50 and p99 (wrk's, the median of ``--rounds`` runs; the
workloads alternate run by run, so other load on the machine falls on all alike), B's
non-2xx answers (there must be none), A's requests served and refused (429) per burst and
how long a burst took, and each B + A workload's p99 over B alone's on the same process.

Needs ``wrk`` (``apt-get install wrk``) and ``redis-server``: a private one is started
(``tickwork.embedded``, as the standalone mode runs it) unless ``--redis-url`` names one; a
shared server's database may be a test session's, which flushes it under the benchmark.
Everything is written under fresh key prefixes, deleted at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis

from tickwork.embedded import EmbeddedServer

TOKEN_A = "bench-limits-tenant-a-0123456789"
TOKEN_B = "bench-limits-tenant-b-0123456789"
STACK_A, STACK_B = 1, 2
WORKLOADS = (
    ("on", "B alone"),
    ("on", "B + A"),
    ("on", "B + A healthz"),
    ("off", "B alone"),
    ("off", "B + A"),
)
LIMITS_OFF = {
    "TICKWORK_RATE_LIMIT_PER_SECOND": "0",
    "TICKWORK_STACK_RATE_LIMIT_PER_SECOND": "0",
}

STEADY = """
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["X-Stack-Id"] = "{stack}"
wrk.path = "{path}"
function delay()
  return {delay_ms}
end
"""

# One thread, stopped once the burst's last answer is in. wrk itself sleeps out its -d unless
# interrupted: the script leaves a file, and SIGINT from here makes wrk print its figures.
BURST = """
wrk.headers["Authorization"] = "Bearer {token}"
wrk.headers["X-Stack-Id"] = "{stack}"
wrk.path = "{path}"
local answered = 0
function response(status, headers, body)
  answered = answered + 1
  if answered == {count} then
    wrk.thread:stop()
    io.open("{done}", "w"):close()
  end
end
"""


@dataclass(frozen=True)
class Latency:
    rps: float
    p50_ms: float
    p99_ms: float
    failed: int  # non-2xx answers and socket errors


@dataclass
class Bursts:
    count: int = 0
    requests: int = 0
    refused: int = 0
    seconds: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    limits: str  # "on" / "off"
    workload: str  # "B alone", "B + A", "B + A healthz"
    b: Latency
    bursts: Bursts


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _serve(
    redis_url: str, prefix: str, limits: dict[str, str]
) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    env = (
        os.environ
        | limits
        | {
            "TICKWORK_REDIS_URL": redis_url,
            "TICKWORK_KEY_PREFIX": prefix,
            "TICKWORK_QUEUES": json.dumps([f"{prefix}-runs"]),
            "TICKWORK_TOKENS": json.dumps(
                [
                    {"token": TOKEN_A, "email": "a@example.com", "stacks": [STACK_A]},
                    {"token": TOKEN_B, "email": "b@example.com", "stacks": [STACK_B]},
                ]
            ),
        }
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "tickwork", "api", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return server, url
        except httpx.HTTPError:
            pass
        if server.poll() is not None:
            raise SystemExit(f"tickwork api exited with {server.returncode}")
        time.sleep(0.2)
    server.kill()
    raise SystemExit("tickwork api did not become ready")


def _schedule_path(url: str, token: str, stack: int) -> str:
    """A project, a load test and its schedule for the tenant; the schedule's path."""
    headers = {"Authorization": f"Bearer {token}", "X-Stack-Id": str(stack)}
    with httpx.Client(base_url=url, headers=headers, timeout=10) as http:

        def post(path: str, body: dict[str, object]) -> dict[str, object]:
            while (response := http.post(path, json=body)).status_code == 429:
                time.sleep(int(response.headers["retry-after"]))  # a --rate-burst under 3
            response.raise_for_status()
            created: dict[str, object] = response.json()
            return created

        project = post("/cloud/v6/projects", {"name": uuid.uuid4().hex})
        load_test = post(
            f"/cloud/v6/projects/{project['id']}/load_tests",
            {"name": "bench", "script": "export default () => {}"},
        )
        schedule = post(
            f"/cloud/v6/load_tests/{load_test['id']}/schedule",
            {"starts": "2099-01-01T00:00:00Z", "recurrence_rule": {"frequency": "DAILY"}},
        )
        return f"/cloud/v6/schedules/{schedule['id']}"


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _wrk_args(script: str, *, duration_s: float, connections: int) -> tuple[list[str], Path]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    argv = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "30s",
        "--latency",
        "-s",
        handle.name,
    ]
    return argv, Path(handle.name)


def _failed(out: str) -> int:
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    return (int(non_2xx.group(1)) if non_2xx else 0) + (
        sum(int(n) for n in sockets.groups()) if sockets else 0
    )


def _latency(out: str) -> Latency:
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s|m)\b", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s|m)\b", out)
    if rps is None or p50 is None or p99 is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return Latency(float(rps.group(1)), _ms(*p50.groups()), _ms(*p99.groups()), _failed(out))


def _burst(url: str, path: str, args: argparse.Namespace, bursts: Bursts) -> None:
    done = Path(tempfile.mkdtemp(prefix="tw-burst-")) / "done"
    script = BURST.format(token=TOKEN_A, stack=STACK_A, path=path, count=args.burst, done=done)
    argv, script_path = _wrk_args(script, duration_s=60, connections=args.burst_connections)
    try:
        started = time.monotonic()
        wrk = subprocess.Popen([*argv, url], stdout=subprocess.PIPE, text=True)
        while not done.exists() and wrk.poll() is None:
            time.sleep(0.005)
        bursts.seconds.append(time.monotonic() - started)
        wrk.send_signal(signal.SIGINT)
        out, _ = wrk.communicate(timeout=30)
    finally:
        script_path.unlink()
        done.unlink(missing_ok=True)
        done.parent.rmdir()
    sent = re.search(r"(\d+) requests in", out)
    bursts.count += 1
    bursts.requests += int(sent.group(1)) if sent else 0
    bursts.refused += _failed(out)


def _measure(
    url: str, b_path: str, a_path: str | None, args: argparse.Namespace
) -> tuple[Latency, Bursts]:
    script = STEADY.format(token=TOKEN_B, stack=STACK_B, path=b_path, delay_ms=args.b_delay_ms)
    argv, script_path = _wrk_args(script, duration_s=args.duration, connections=args.b_connections)
    bursts = Bursts()
    try:
        started = time.monotonic()
        steady = subprocess.Popen([*argv, url], stdout=subprocess.PIPE, text=True)
        if a_path is not None:
            time.sleep(1)
            end = started + args.duration - 1
            while time.monotonic() < end:
                slot = time.monotonic()
                _burst(url, a_path, args, bursts)
                time.sleep(max(0.0, min(slot + args.burst_every, end) - time.monotonic()))
        out, _ = steady.communicate(timeout=args.duration + 60)
    finally:
        script_path.unlink()
    return _latency(out), bursts


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    keys = list(client.scan_iter(match=f"{prefix}:*", count=5000))
    for start in range(0, len(keys), 5000):
        client.unlink(*keys[start : start + 5000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", help="default: a private redis-server")
    parser.add_argument("--duration", type=int, default=20, help="seconds of B's load per run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per workload and mode")
    parser.add_argument("--b-connections", type=int, default=4)
    parser.add_argument("--b-delay-ms", type=int, default=90, help="between B's requests")
    parser.add_argument("--burst", type=int, default=1000, help="requests in one burst of A's")
    parser.add_argument("--burst-connections", type=int, default=50)
    parser.add_argument("--burst-every", type=float, default=2.0, help="seconds")
    parser.add_argument("--rate", type=float, default=50, help="per token, limits on")
    parser.add_argument("--rate-burst", type=int, default=200, help="per token, limits on")
    parser.add_argument("--stack-rate", type=float, default=100, help="limits on")
    parser.add_argument("--stack-rate-burst", type=int, default=400, help="limits on")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    with tempfile.TemporaryDirectory(prefix="tw-bench-limits-") as data_dir:
        private = None if args.redis_url else EmbeddedServer(Path(data_dir)).start()
        try:
            runs = _bench(private.url if private else args.redis_url, args)
        finally:
            if private is not None:
                private.stop()
    _report(runs, args)


def _bench(redis_url: str, args: argparse.Namespace) -> list[Run]:
    client = redis.Redis.from_url(redis_url)
    limits_on = {
        "TICKWORK_RATE_LIMIT_PER_SECOND": f"{args.rate:g}",
        "TICKWORK_RATE_LIMIT_BURST": str(args.rate_burst),
        "TICKWORK_STACK_RATE_LIMIT_PER_SECOND": f"{args.stack_rate:g}",
        "TICKWORK_STACK_RATE_LIMIT_BURST": str(args.stack_rate_burst),
    }
    modes = {"on": limits_on, "off": LIMITS_OFF}
    prefixes = {mode: f"benchlim{uuid.uuid4().hex[:8]}" for mode in modes}
    servers: dict[str, tuple[subprocess.Popen[bytes], str]] = {}
    runs: list[Run] = []
    try:
        paths: dict[str, dict[str, str]] = {}
        for mode, limits in modes.items():
            servers[mode] = _serve(redis_url, prefixes[mode], limits)
            url = servers[mode][1]
            paths[mode] = {
                "A": _schedule_path(url, TOKEN_A, STACK_A),
                "B": _schedule_path(url, TOKEN_B, STACK_B),
            }
        for round_ in range(args.rounds):
            for mode, workload in WORKLOADS:
                time.sleep(4)  # A's buckets full again, the server idle
                a_path = {"B alone": None, "B + A": paths[mode]["A"]}.get(workload, "/healthz")
                b, bursts = _measure(servers[mode][1], paths[mode]["B"], a_path, args)
                runs.append(Run(mode, workload, b, bursts))
                print(
                    f"  round {round_ + 1} limits {mode:<3} {workload:<13} "
                    f"B {b.rps:6.1f} req/s  p50 {b.p50_ms:7.2f} ms  p99 {b.p99_ms:7.2f} ms  "
                    f"B failed {b.failed}"
                    + (
                        f"  A: {bursts.count} bursts, {bursts.requests} requests, "
                        f"{bursts.refused} refused"
                        if a_path
                        else ""
                    ),
                    flush=True,
                )
    finally:
        for server, _ in servers.values():
            server.terminate()
            server.wait(timeout=20)
        for prefix in prefixes.values():
            _delete_prefix(client, prefix)
    return runs


def _report(runs: list[Run], args: argparse.Namespace) -> None:
    print()
    print(
        f"B: wrk -t1 -c{args.b_connections}, {args.b_delay_ms} ms between requests, "
        f"{args.duration} s x {args.rounds} rounds; A: {args.burst} requests per burst over "
        f"{args.burst_connections} connections, one burst every {args.burst_every:g} s; "
        f"one tickwork api process; {os.cpu_count()} CPUs"
    )
    print("median of the rounds:")
    print(
        f"{'limits':<7} {'workload':<13} {'B req/s':>8} {'B p50 ms':>9} {'B p99 ms':>9} "
        f"{'B failed':>9} {'A served/burst':>15} {'A refused/burst':>16} {'burst s':>8}"
    )
    p99: dict[tuple[str, str], float] = {}
    for mode, workload in WORKLOADS:
        chosen = [r for r in runs if r.limits == mode and r.workload == workload]
        p99[(mode, workload)] = statistics.median(r.b.p99_ms for r in chosen)
        bursts = sum(r.bursts.count for r in chosen)
        a_cols = (
            f"{(sum(r.bursts.requests - r.bursts.refused for r in chosen) / bursts):>15.0f} "
            f"{(sum(r.bursts.refused for r in chosen) / bursts):>16.0f} "
            f"{statistics.median(s for r in chosen for s in r.bursts.seconds):>8.2f}"
            if bursts
            else f"{'-':>15} {'-':>16} {'-':>8}"
        )
        print(
            f"{mode:<7} {workload:<13} {statistics.median(r.b.rps for r in chosen):>8.1f} "
            f"{statistics.median(r.b.p50_ms for r in chosen):>9.2f} "
            f"{p99[(mode, workload)]:>9.2f} {sum(r.b.failed for r in chosen):>9} {a_cols}"
        )
    print()
    for mode, workload in WORKLOADS:
        if workload != "B alone":
            ratio = p99[(mode, workload)] / p99[(mode, "B alone")]
            print(f"limits {mode:<3} {workload:<13}: B's p99 / B alone's = x{ratio:.2f}")


if __name__ == "__main__":
    main()
