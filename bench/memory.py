"""Memory per item: what a schedule, a fired run (queued, then ended), a skipped record and
an audit entry cost in Redis, and what retention leaves behind.

On a private ``redis-server`` (started here on a free port, AOF ``everysec``; the shared
server is never touched), ``--count`` (10,000) of each, written the way tickwork writes them:

1. load tests: one project, N load tests whose runner is ``{"type": "command", "argv":
   ["true"]}`` (``LoadTests.create``, as the API's POST does, with its audit entry);
2. schedules: a k6 schedule per load test (``parse_create_schedule`` and ``Schedules.put``, as
   the API's POST schedule does): cron ``* * * * *`` in UTC starting at a whole minute M, so
   that all N are due at M and again at M+1; the cost includes its hash, its due-index and
   stack-index entries, the load test's pointer and the "created" audit entry;
3. fired runs, queued: a real ``python -m tickwork scheduler`` fires M (no worker yet): each
   run's hash, its RQ job hash, its entries in the queue, the stack's and load test's run
   indexes, the schedule's ledger and ``unclaimed``;
4. skipped records: at M+1 every load test still has its unfinished run, so the default
   overlap policy records N skips (then the scheduler is stopped);
5. fired runs, ended: two ``python -m tickwork worker --burst`` run the N jobs (``true``):
   what a finished run costs = (3) + the growth while they ran;
6. after retention: ``Retention.sweep`` (the leader's own step, called here until it finds
   nothing) removes every finished run and skip record: what is left per run;
7. audit entries: N "updated" entries with one change (``Audit.queue``, as every change
   writes them: the stack's feed and the resource's trail).

Each figure is the ``used_memory`` delta over the step divided by N (INFO read 3 times after
a quiet second, the median kept; Redis's own dictionaries grow in powers of two, so a step
can carry a rehash: N is large to spread it). The cross-check sums ``MEMORY USAGE`` (``SAMPLES
0``) of one item's own keys plus its share of the shared indexes (their MEMORY USAGE / N).

    .venv/bin/python bench/memory.py [--count 10000] [--keep]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import redis

from fire_processes import Child, chunks, log, utcnow, whole_minute_after
from fire_results import table
from tickwork.core.instants import format_instant
from tickwork.dialects.k6 import parse_create_schedule
from tickwork.embedded import EmbeddedServer
from tickwork.store import Store
from tickwork.store.audit import Actor, Change
from tickwork.store.connection import text_of
from tickwork.store.queue import JOB_KEY_PREFIX

PREFIX = "mem"
QUEUE = "mem-runs"
STACK = 1
ACTOR = Actor("perf@example.com", "api")
PUT_S = 0.004  # a guess at one schedule PUT on a busy host, to pick M with room to spare


@dataclass
class Step:
    name: str
    what: str
    delta: int = 0  # used_memory bytes over the step
    per_item: float = 0.0
    keys: list[tuple[str, float]] = field(default_factory=list)  # MEMORY USAGE cross-check

    @property
    def cross_check(self) -> float:
        return sum(size for _, size in self.keys)


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.n: int = args.count
        self.workdir = workdir
        self.server = EmbeddedServer(workdir / "redis")
        self.client: redis.Redis | None = None
        self.children: list[Child] = []
        self.steps: list[Step] = []
        self.load_test_ids: list[int] = []
        self.schedule_ids: list[int] = []

    @property
    def redis(self) -> redis.Redis:
        assert self.client is not None
        return self.client

    @property
    def store(self) -> Store:
        return Store(self.redis, PREFIX)

    def start(self) -> None:
        self.server.start()
        if self.server.port == 6379:
            raise RuntimeError("refusing to measure on port 6379 (the shared server)")
        self.client = redis.Redis.from_url(self.server.url, socket_timeout=120)
        log(f"private redis-server on port {self.server.port} ({self.workdir})")

    def close(self) -> None:
        for child in list(self.children):
            self.stop(child)
        if self.client is not None:
            self.client.close()
        self.server.stop()

    def spawn(self, name: str, argv: list[str]) -> Child:
        path = self.workdir / f"{name}.log"
        handle = path.open("ab")
        env = {
            **os.environ,
            "TICKWORK_REDIS_URL": self.server.url,
            "TICKWORK_KEY_PREFIX": PREFIX,
            "TICKWORK_QUEUES": json.dumps([QUEUE]),
            "TICKWORK_COMMAND_ALLOWED": json.dumps(["true"]),
            "TICKWORK_WORK_DIR": str(self.workdir / "work"),
            # Nothing is removed while it is measured; step 6 calls retention itself.
            "TICKWORK_RUN_RETENTION_DAYS": "0",
            "TICKWORK_RUNS_PER_LOAD_TEST": "0",
        }
        popen = subprocess.Popen(
            argv,
            env=env,
            cwd=self.workdir,
            stdout=handle,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        handle.close()
        child = Child(name, popen, path)
        self.children.append(child)
        return child

    def stop(self, child: Child) -> None:
        if child.alive:
            child.popen.terminate()
            try:
                child.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait()
        with contextlib.suppress(ValueError):
            self.children.remove(child)

    # measuring

    def used(self) -> int:
        """used_memory once writes have settled: the median of 3 reads a second apart."""
        time.sleep(1.0)
        reads = []
        for _ in range(3):
            reads.append(int(self.redis.info("memory")["used_memory"]))
            time.sleep(0.3)
        return int(statistics.median(reads))

    def usage(self, key: str) -> float:
        return float(self.redis.memory_usage(key, samples=0) or 0)

    def shared(self, key: str, items: int | None = None) -> tuple[str, float]:
        """A shared index's MEMORY USAGE per item it holds."""
        return (f"{key} / {items or self.n:,}", self.usage(key) / (items or self.n))

    def own(self, key: str) -> tuple[str, float]:
        return (key, self.usage(key))

    def step(self, name: str, what: str, action: Callable[[], None]) -> Step:
        before = self.used()
        started = time.monotonic()
        action()
        after = self.used()
        result = Step(name, what, after - before, (after - before) / self.n)
        self.steps.append(result)
        log(
            f"{name}: {result.per_item:,.0f} B each ({time.monotonic() - started:.0f} s; "
            f"load {os.getloadavg()[0]:.1f})"
        )
        return result

    def wait(self, what: str, done: Callable[[], bool], limit_s: float) -> None:
        deadline = time.monotonic() + limit_s
        while not done():
            for child in self.children:
                if not child.alive and child.popen.returncode not in (0, None):
                    raise RuntimeError(f"{child.name} exited:\n{child.tail(20)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.2)

    # the items

    def create_load_tests(self) -> None:
        store, now = self.store, utcnow()
        project = store.projects.create(STACK, name="memory", now=now)
        runner = {"type": "command", "argv": ["true"]}
        self.load_test_ids = [
            store.load_tests.create(
                STACK, project_id=project.id, name=f"lt-{i}", script=None, now=now, runner=runner
            ).id
            for i in range(self.n)
        ]

    def create_schedules(self, first: datetime) -> None:
        body = json.dumps(
            {
                "starts": format_instant(first),
                "cron": {"schedule": "* * * * *", "time_zone": "UTC"},
            }
        ).encode()
        request, schedule = parse_create_schedule(body)
        store = self.store
        for load_test_id in self.load_test_ids:
            record = store.schedules.put(
                stack=STACK,
                load_test_id=load_test_id,
                schedule=schedule,
                request=request.model_dump_json(),
                created_by=ACTOR.who,
                now=utcnow(),
                overlap=request.overlap,
                catch_up_s=request.catch_up_seconds,
                actor=ACTOR,
            )
            self.schedule_ids.append(record.id)
        if utcnow() >= first - timedelta(seconds=5):
            raise RuntimeError("creating the schedules overran their first minute; rerun")

    def runs(self) -> int:
        return int(self.redis.zcard(self.store.keys.stack_index(STACK, "runs")))

    def fire(self, first: datetime) -> None:
        argv = [sys.executable, "-m", "tickwork", "scheduler", "--health-port", "0"]
        self.spawn("scheduler", argv)
        log(f"scheduler started; the {self.n:,} fire at {first:%H:%M:%S}")
        queue_key = f"rq:queue:{QUEUE}"
        self.wait("the fires", lambda: int(self.redis.llen(queue_key)) >= self.n, 180)

    def skip(self) -> None:
        self.wait("the skips", lambda: self.runs() >= 2 * self.n, 180)
        time.sleep(1.0)  # the leader's log line and metrics follow the commit
        for child in list(self.children):
            self.stop(child)

    def run_jobs(self) -> None:
        (self.workdir / "work").mkdir(exist_ok=True)
        workers = [
            self.spawn(f"worker-{i + 1}", [*_worker_argv(), "--burst"])
            for i in range(self.args.workers)
        ]
        queue_key = f"rq:queue:{QUEUE}"
        deadline = time.monotonic() + 3600
        while any(worker.alive for worker in workers):
            if time.monotonic() > deadline:
                raise RuntimeError("the workers did not finish the runs within an hour")
            time.sleep(1.0)
        left = int(self.redis.llen(queue_key))
        if left:
            raise RuntimeError(f"{left} jobs left in the queue: {workers[0].tail(10)}")
        for worker in workers:
            self.stop(worker)

    def retire(self) -> None:
        far = utcnow() + timedelta(days=1)
        while self.store.retention.sweep(before=far, limit=1000):
            pass

    def audit(self) -> None:
        store, now = self.store, utcnow()
        change = (Change("cron.schedule", "* * * * *", "*/5 * * * *"),)
        for part in chunks(self.schedule_ids, 500):
            with self.redis.pipeline() as pipe:
                pipe.multi()
                for schedule_id in part:
                    store.audit.queue(
                        pipe,
                        stack=STACK,
                        kind="schedule",
                        resource_id=schedule_id,
                        action="updated",
                        actor=ACTOR,
                        at=now,
                        changes=change,
                    )
                pipe.execute()

    # the bench

    def run(self) -> None:
        keys, n = self.store.keys, self.n
        lt = self.step(
            "load test", "hash, name indexes, 'created' audit entry", self.create_load_tests
        )
        first_lt = self.load_test_ids[0]
        lt.keys = [
            self.own(keys.load_test(first_lt)),
            self.own(keys.audit_of("load_test", str(first_lt))),
            self.shared(keys.stack_index(STACK, "load_tests")),
            self.shared(keys.audit_feed(STACK, "load_test")),
        ]
        first = whole_minute_after(utcnow() + timedelta(seconds=20 + n * PUT_S))
        sched = self.step(
            "schedule (k6 cron)",
            "hash, due index, stack index, load test pointer, 'created' audit entry",
            lambda: self.create_schedules(first),
        )
        sid = self.schedule_ids[0]
        sched.keys = [
            self.own(keys.schedule(sid)),
            self.own(keys.load_test_schedule(first_lt)),
            self.own(keys.audit_of("schedule", str(sid))),
            self.shared(keys.due),
            self.shared(keys.stack_index(STACK, "schedules")),
            self.shared(keys.audit_feed(STACK, "schedule")),
        ]
        queued = self.step(
            "fired run, queued",
            "run hash, RQ job hash, queue entry, run indexes, ledger entry, unclaimed",
            lambda: self.fire(first),
        )
        first_run = self.first_run_id()
        job = JOB_KEY_PREFIX + text_of(self.redis.hget(keys.run(first_run), "job_id") or b"")
        queued_run_key = self.own(keys.run(first_run))
        queued_job_key = self.own(job)
        small = [keys.load_test_runs(first_lt), keys.schedule_ledger(sid)]
        small_queued = [self.own(key) for key in small]
        queued.keys = [
            queued_run_key,
            queued_job_key,
            *small_queued,  # new keys holding one entry
            self.own(keys.load_test_last_run(first_lt)),
            self.shared(f"rq:queue:{QUEUE}"),
            self.shared(keys.stack_index(STACK, "runs")),
            self.shared(keys.unclaimed),
        ]
        skipped = self.step(
            "skipped record",
            "run hash (status skipped, reason), run indexes, ledger entry",
            self.skip,
        )
        skip_id = self.skip_run_id()
        skipped.keys = [
            self.own(keys.run(skip_id)),
            *((f"{key}, its 2nd entry", self.usage(key) - size) for key, size in small_queued),
            (
                f"{keys.stack_index(STACK, 'runs')}, growth per skip",
                self.usage(keys.stack_index(STACK, "runs")) / n - queued.keys[-2][1],
            ),
        ]
        ended = self.step(
            "fired run, growth as it ends",
            "status history, result; RQ result stream and finished registry entry",
            self.run_jobs,
        )
        finished = Step(
            "fired run, ended",
            "queued + growth as it ends: kept until retention removes it",
            queued.delta + ended.delta,
            queued.per_item + ended.per_item,
        )
        finished.keys = [
            self.own(keys.run(first_run)),
            self.own(job),
            self.own(f"rq:results:{job.removeprefix(JOB_KEY_PREFIX)}"),
            self.own(keys.run_executed(first_run)),
            self.shared(f"rq:finished:{QUEUE}"),
            self.shared(keys.stack_index(STACK, "runs"), 2 * n),
        ]
        ended.keys = [
            ("run hash, ended - queued", self.usage(keys.run(first_run)) - queued_run_key[1]),
            ("RQ job hash, ended - queued", self.usage(job) - queued_job_key[1]),
            self.own(f"rq:results:{job.removeprefix(JOB_KEY_PREFIX)}"),
            self.own(keys.run_executed(first_run)),
            self.shared(f"rq:finished:{QUEUE}"),
        ]
        self.steps.insert(self.steps.index(ended) + 1, finished)
        left = self.step(
            "left per fired run after retention",
            "retention removed the run and its skip record: what stays (RQ's entry, 1 h)",
            self.retire,
        )
        left.delta += queued.delta + skipped.delta + ended.delta
        left.per_item += queued.per_item + skipped.per_item + ended.per_item
        left.keys = [
            self.own(f"rq:results:{job.removeprefix(JOB_KEY_PREFIX)}"),
            self.shared(f"rq:finished:{QUEUE}"),
            self.own(keys.run(first_run)),
            self.own(job),
        ]
        audit = self.step("audit entry", "the stack's feed and the resource's trail", self.audit)
        audit.keys = [
            (
                f"{keys.audit_of('schedule', str(sid))}, its 2nd entry",
                self.usage(keys.audit_of("schedule", str(sid))) - sched.keys[2][1],
            ),
            (
                f"{keys.audit_feed(STACK, 'schedule')}, per entry (2 N now)",
                self.usage(keys.audit_feed(STACK, "schedule")) / (2 * n),
            ),
        ]

    def first_run_id(self) -> int:
        index = self.store.keys.stack_index(STACK, "runs")
        return int(text_of(self.redis.zrange(index, 0, 0)[0]))

    def skip_run_id(self) -> int:
        index = self.store.keys.stack_index(STACK, "runs")
        for raw in self.redis.zrange(index, -1, -1):
            return int(text_of(raw))
        raise RuntimeError("no skip record")


def _worker_argv() -> list[str]:
    return [sys.executable, "-m", "tickwork", "worker", "--queue", QUEUE]


def report(bench: Bench, args: argparse.Namespace, started: datetime) -> None:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(
        f"# Memory per item ({started:%Y-%m-%d %H:%M} UTC)\n\n"
        f"{args.count:,} of each on a private redis-server "
        f"({bench.redis.info('server')['redis_version']}, AOF everysec); "
        f"used_memory deltas / N; {os.cpu_count()} CPUs, load average {load} at the end.\n"
    )
    rows = [
        [
            step.name,
            f"{step.per_item:,.0f}",
            f"{step.cross_check:,.0f}" if step.keys else "—",
            step.what,
        ]
        for step in bench.steps
    ]
    print(table(["item", "bytes each (used_memory)", "MEMORY USAGE sum", "made of"], rows))
    print("\n## MEMORY USAGE of one item's keys (SAMPLES 0; shared indexes per item)\n")
    detail = [
        [step.name, f"`{key}`", f"{size:,.0f}"] for step in bench.steps for key, size in step.keys
    ]
    print(table(["item", "key", "bytes"], detail))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--count", type=int, default=10_000, help="N of each item")
    parser.add_argument("--workers", type=int, default=2, help="workers running the N runs")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    started = datetime.now(UTC)
    workdir = Path(tempfile.mkdtemp(prefix="tickwork-bench-memory-"))
    bench = Bench(args, workdir)
    try:
        bench.start()
        bench.run()
        report(bench, args, started)
    finally:
        bench.close()
        if args.keep:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
