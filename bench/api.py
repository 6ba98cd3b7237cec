"""API throughput and tail latency with many stored schedules, measured with wrk.

    python bench/api.py [--sizes 1000 100000] [--duration 5] [--rounds 3]

For each size a store (a key prefix of its own) is filled to that many schedules and served
by its own ``uvicorn`` process running ``create_app`` (through
``tickwork.api.server:app_from_environment``, as ``tickwork api`` does). ``wrk`` drives three
workloads against each, the sizes alternating run by run (``--rounds`` runs of
``--duration`` seconds each), so that other load on the machine falls on every size alike:

    create  POST /cloud/v6/load_tests/{id}/schedule   (set the schedule of one of 1,000 load
                                                      tests, picked at random: a full create
                                                      path, overwriting and keeping the id)
    get     GET  /cloud/v6/schedules/{id}             (random stored schedule)
    list    GET  /cloud/v6/schedules?$top=1000&$skip= (random page of 1,000)

It prints the median run's requests/s, p50 and p99 latency per workload and size, and the
ratio of the largest size to the smallest: get and list read one hash per item through the
per-stack ZSET index, so their cost should not grow with the number of schedules stored.

Needs ``wrk`` (``apt-get install wrk``) and a Redis (``--redis-url``, default db 11 on
127.0.0.1). Everything is written under fresh key prefixes, deleted at the end.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis

from tickwork.dialects.k6 import parse_create_schedule
from tickwork.store import ScheduleRecord, Store
from tickwork.store.schedules import K6Schedule

TOKEN = "bench-token-0123456789abcdef"
STACK = 1
CREATE_POOL = 1000  # load tests whose schedules the create workload overwrites
SEED_BATCH = 2000
NOW = datetime.now(UTC).replace(microsecond=0)

CREATE_BODY = json.dumps(
    {
        "starts": (NOW + timedelta(days=30)).isoformat().replace("+00:00", "Z"),
        "recurrence_rule": {"frequency": "HOURLY", "interval": 2},
    }
)

LUA = {
    "create": """
wrk.method = "POST"
wrk.body = [[{body}]]
wrk.headers["Content-Type"] = "application/json"
{auth}
request = function()
  return wrk.format(nil, "/cloud/v6/load_tests/" .. math.random({first}, {last}) .. "/schedule")
end
""",
    "get": """
{auth}
request = function()
  return wrk.format(nil, "/cloud/v6/schedules/" .. math.random({first}, {last}))
end
""",
    "list": """
{auth}
request = function()
  return wrk.format(nil, "/cloud/v6/schedules?$top=1000&$skip=" .. math.random(0, {last}))
end
""",
}
AUTH = f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\nwrk.headers["X-Stack-Id"] = "{STACK}"'


@dataclass(frozen=True)
class Result:
    size: int
    workload: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _seed_pool(store: Store) -> tuple[int, int]:
    """The create workload's load tests, each with a schedule, written the API's way: the
    first ``CREATE_POOL`` schedules stored."""
    project = store.projects.create(STACK, name=f"bench {uuid.uuid4().hex}", now=NOW)
    request, schedule = parse_create_schedule(CREATE_BODY)
    ids = []
    for n in range(CREATE_POOL):
        test = store.load_tests.create(
            STACK, project_id=project.id, name=f"lt {n}", script=b"export default () => {}", now=NOW
        )
        store.schedules.put(
            stack=STACK,
            load_test_id=test.id,
            schedule=schedule,
            request=request.model_dump_json(),
            created_by="bench@example.com",
            now=NOW,
        )
        ids.append(test.id)
    return ids[0], ids[-1]


def _seed_schedules(store: Store, count: int) -> None:
    """Add ``count`` schedules (each of its own load test), written with the store's own
    ``write`` in pipelines, so seeding 100,000 takes seconds, not minutes."""
    client, keys = store.client, store.keys
    remaining = count
    while remaining:
        batch = min(remaining, SEED_BATCH)
        last_id = int(client.incrby(keys.ids("schedule"), batch))
        pipe = client.pipeline(transaction=False)
        for schedule_id in range(last_id - batch + 1, last_id + 1):
            starts = NOW + timedelta(minutes=schedule_id % 100_000)
            body = json.dumps(
                {
                    "starts": starts.isoformat().replace("+00:00", "Z"),
                    "recurrence_rule": {"frequency": "DAILY"},
                }
            )
            request, schedule = parse_create_schedule(body)
            load_test_id = 10_000_000 + schedule_id  # not in the pool: reads do not look it up
            record = ScheduleRecord(
                id=schedule_id,
                stack=STACK,
                load_test_id=load_test_id,
                schedule=schedule,
                owner=K6Schedule(request_echo=request.model_dump_json()),
                deactivated=False,
                created_by="bench@example.com",
                fired_through=NOW,
                next_at=starts,
                version=1,
            )
            pipe.set(keys.load_test_schedule(load_test_id), schedule_id)
            pipe.zadd(keys.stack_index(STACK, "schedules"), {str(schedule_id): schedule_id})
            store.schedules.write(pipe, record)
        pipe.execute()
        remaining -= batch


def _serve(redis_url: str, prefix: str, port: int, workers: int) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": prefix,
        "TICKWORK_TOKENS": json.dumps([{"token": TOKEN, "email": "b@example.com", "stacks": [1]}]),
        # the API itself is measured, not its rate limits (bench/limits.py measures those)
        "TICKWORK_RATE_LIMIT_PER_SECOND": "0",
        "TICKWORK_STACK_RATE_LIMIT_PER_SECOND": "0",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tickwork.api.server:app_from_environment",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--no-access-log",
            "--log-level",
            "warning",
        ],
        env=env,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.kill()
    raise SystemExit("uvicorn did not become ready")


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def _wrk(
    url: str, script: str, *, duration_s: int, connections: int, threads: int
) -> tuple[float, float, float, int]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
    try:
        out = subprocess.run(
            [
                "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration_s}s",
                "--timeout",
                "30s",
                "--latency",
                "-s",
                handle.name,
                url,
            ],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    finally:
        Path(handle.name).unlink()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"\s50%\s+([\d.]+)(us|ms|s|m)\b", out)
    p99 = re.search(r"\s99%\s+([\d.]+)(us|ms|s|m)\b", out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out
    )
    failed = int(errors.group(1)) if errors else 0
    if socket_errors:
        failed += sum(int(n) for n in socket_errors.groups())
    if p50 is None or p99 is None:
        raise SystemExit(f"unexpected wrk output:\n{out}")
    return rps, _ms(*p50.groups()), _ms(*p99.groups()), failed


def _delete_prefix(client: redis.Redis, prefix: str) -> None:
    batch: list[bytes] = []
    for key in client.scan_iter(match=f"{prefix}:*", count=5000):
        batch.append(key)
        if len(batch) >= 5000:
            client.unlink(*batch)
            batch.clear()
    if batch:
        client.unlink(*batch)


@dataclass
class Target:
    """One store filled to ``size`` schedules, served by its own uvicorn."""

    size: int
    store: Store
    pool: tuple[int, int]
    server: subprocess.Popen[bytes] | None = None
    url: str = ""


def _scripts(target: Target) -> dict[str, str]:
    first, last = target.pool
    return {
        "create": LUA["create"].format(body=CREATE_BODY, auth=AUTH, first=first, last=last),
        "get": LUA["get"].format(auth=AUTH, first=1, last=target.size),
        "list": LUA["list"].format(auth=AUTH, last=max(target.size - 1000, 0)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/11")
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=[1000, 100_000], help=f"each >= {CREATE_POOL}"
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="runs per workload and size")
    parser.add_argument("--connections", type=int, default=16, help="for create and get")
    parser.add_argument("--list-connections", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn worker processes")
    args = parser.parse_args()
    if min(args.sizes) < CREATE_POOL:
        raise SystemExit(f"every size must be at least {CREATE_POOL}")
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    client = redis.Redis.from_url(args.redis_url)
    targets = [
        Target(size, Store(client, f"bench{uuid.uuid4().hex[:8]}"), (0, 0))
        for size in sorted(args.sizes)
    ]
    results: list[Result] = []
    try:
        for target in targets:
            started = time.monotonic()
            target.pool = _seed_pool(target.store)
            _seed_schedules(target.store, target.size - CREATE_POOL)
            print(
                f"stored {target.size:,} schedules in {time.monotonic() - started:.1f} s",
                flush=True,
            )
            port = _free_port()
            target.server = _serve(args.redis_url, target.store.keys.prefix, port, args.workers)
            target.url = f"http://127.0.0.1:{port}"
        # Sizes alternate run by run, so that whatever else loads the machine meanwhile
        # weighs on every size alike; the table shows the median run of each.
        for workload in ("create", "get", "list"):
            connections = args.connections if workload != "list" else args.list_connections
            for round_ in range(args.rounds):
                for target in targets:
                    rps, p50, p99, errors = _wrk(
                        target.url,
                        _scripts(target)[workload],
                        duration_s=args.duration,
                        connections=connections,
                        threads=args.threads,
                    )
                    results.append(Result(target.size, workload, rps, p50, p99, errors))
                    print(
                        f"  {workload:<6} round {round_ + 1} {target.size:>9,} stored "
                        f"{rps:9.1f} req/s  p50 {p50:8.2f} ms  p99 {p99:8.2f} ms  errors {errors}",
                        flush=True,
                    )
    finally:
        for target in targets:
            if target.server is not None:
                target.server.terminate()
                target.server.wait(timeout=20)
            _delete_prefix(client, target.store.keys.prefix)

    _report(results, args)


def _report(results: list[Result], args: argparse.Namespace) -> None:
    reply_parser = "hiredis" if importlib.util.find_spec("hiredis") else "pure Python"
    print()
    print(
        f"wrk -t{args.threads} -c{args.connections} (list: -c{args.list_connections}) "
        f"-d{args.duration}s x {args.rounds} rounds, sizes alternating; uvicorn --workers "
        f"{args.workers}; {os.cpu_count()} CPUs; redis-py reply parser: {reply_parser}"
    )
    print("median of the rounds:")
    print(f"{'workload':<8} {'stored':>9} {'req/s':>9} {'p50 ms':>9} {'p99 ms':>9} {'errors':>7}")
    sizes = sorted({r.size for r in results})
    medians: dict[tuple[str, int], tuple[float, float, float]] = {}
    for workload in ("create", "get", "list"):
        for size in sizes:
            runs = [r for r in results if r.workload == workload and r.size == size]
            row = (
                statistics.median([r.rps for r in runs]),
                statistics.median([r.p50_ms for r in runs]),
                statistics.median([r.p99_ms for r in runs]),
            )
            medians[(workload, size)] = row
            errors = sum(r.errors for r in runs)
            print(
                f"{workload:<8} {size:>9,} {row[0]:>9.1f} {row[1]:>9.2f} {row[2]:>9.2f} {errors:>7}"
            )
    if len(sizes) > 1:
        small, large = sizes[0], sizes[-1]
        print(f"\nratio {large:,} / {small:,} stored (1.00 = no growth)")
        for workload in ("create", "get", "list"):
            a, b = medians[(workload, small)], medians[(workload, large)]
            print(
                f"{workload:<8} req/s x{b[0] / a[0]:5.2f}   p50 x{b[1] / a[1]:5.2f}   "
                f"p99 x{b[2] / a[2]:5.2f}"
            )


if __name__ == "__main__":
    main()
