"""Fire-path benchmark: N occurrences due at one instant, through real scheduler processes.

Workload: N one-shot schedules (``Schedule(at, Once())``, one per load test) all due at the
same whole-second instant. Each system runs as its own process against one private
``redis-server`` (started here on a free port, AOF ``everysec`` as ``EmbeddedServer`` sets it;
the database is flushed between runs; the shared server is never touched):

* tickwork: ``python -m tickwork scheduler`` as the only (so leading) daemon, default settings
  (batch size 500 unless ``--batch-size``), schedules written in bulk with the same records
  ``Schedules.put`` makes (the first one is made by ``put`` itself and compared).
* rq cron (rq 3.x ``rq cron CONFIG``): N ``cron.register(noop, queue, args=(i,), cron=...)``
  entries whose cron string names the instant's minute, hour, day and month, so every entry is
  due at that one whole minute. rq cron matches minutes only, so its instant is the next whole
  minute after it has loaded its config; tickwork's and rq-scheduler's is a whole second.
* rq-scheduler: N ``Scheduler.enqueue_at(instant, func, i)``, then ``rqscheduler --interval``
  (1 s by default): the peer polls, so up to one interval of its lag is its polling period.

Peers run with logging at WARNING (no line per job), which flatters them: tickwork logs one
line per batch at INFO. No worker runs, so every job stays in its queue to be counted.

Per run: fire lag p50/p99/max (tickwork: run record ``created`` - ``scheduled_for``; peers: the
RQ job's ``enqueued_at`` - the instant), fires/s = N / (last lag), "all in queue" (when this
script, polling LLEN every 50 ms, first saw all N jobs: the same yardstick for every system;
tickwork stamps ``created`` before its batch is sent, so its max lag understates visibility by
up to one batch's commit, which its last ``fire_batch_committed`` log line also shows), the
scheduler process's CPU seconds (utime+stime from /proc, from just before the instant until it
is idle again, and per fire; for tickwork from the moment it leads, so that the planning and
encoding it does ahead of the instant count, and are also shown on their own) and peak RSS
(VmHWM), the Redis server's CPU seconds and the commands sent per fire over the same span (INFO
commandstats; the script's own LLEN/INFO excluded), and an exactly-once check (jobs in the
queue, one per schedule, and for tickwork one run record per schedule and job). A peer still
short of N ``--timeout`` seconds after the instant is stopped and reported with what it did.
``--profile DIR`` records the tickwork leader with py-spy (collapsed stacks; the figures of a
profiled run are skewed).

``--jitter S`` gives every tickwork schedule ``jitter_seconds=S`` (issue 16): the N runs are
then planned over S seconds after the instant. Its lag is then created - planned instant (the
scheduler's own lateness), and a histogram of the planned instants shows the spread; the peers
have no jitter, so run it with ``--systems tickwork``.

Idle: each system holding the largest N (100,000) entries of which none is due (a day away):
scheduler CPU seconds and Redis commands/s over ``--idle-seconds`` (INFO deltas on the private
server, the benchmark's own two INFO calls subtracted).

The machine is shared: systems run interleaved, the order rotated each round, sizes below
``--single-round-from`` repeated ``--repeats`` times; a figure is the median over rounds and a
ratio the median of per-round ratios (tickwork / peer: below 1 means tickwork is lower).

    .venv/bin/python bench/fire.py [--sizes 1000,10000,100000] [--quick]

rq-scheduler is a benchmark-only dependency: ``.venv/bin/pip install rq-scheduler``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from types import FrameType
from typing import Any

import redis

from fire_processes import (
    CHUNK,
    Child,
    chunks,
    cpu_seconds,
    log,
    parse_rq_time,
    peak_rss_mb,
    sleep_until,
    utcnow,
    whole_minute_after,
    whole_second_after,
)
from fire_results import RQ_CRON, RQ_SCHEDULER, SYSTEMS, TICKWORK, Fire, Idle, environment, report
from tickwork.core import Once, Schedule, format_instant, next_after, parse_instant
from tickwork.core.instants import ONE_MICROSECOND, to_us
from tickwork.embedded import EmbeddedServer, free_port
from tickwork.store import ScheduleRecord, Store
from tickwork.store.audit import INTERNAL
from tickwork.store.connection import text_of
from tickwork.store.schedules import K6Schedule

PREFIX = "bench"
QUEUE = "bench-runs"
STACK = 1
RQ_CRON_REGISTRY = "rq:cron_schedulers"  # rq.cron_scheduler_registry.get_registry_key()
RUN_FIELDS = ["created", "scheduled_for", "schedule_id", "job_id", "status", "details"]
BIN = Path(sys.executable).parent

RQ_CRON_CONFIG = '''"""rq cron config written by bench/fire.py: N entries due at one minute."""

import os

from rq import cron


def noop(i: int) -> None:
    """Never executed: no worker runs during the benchmark."""


_CRON = os.environ["BENCH_CRON"]
_QUEUE = os.environ["BENCH_QUEUE"]
for _i in range(int(os.environ["BENCH_N"])):
    cron.register(noop, _QUEUE, args=(_i,), cron=_CRON, name=f"bench-{_i}")
'''


def _rq_scheduler_problem() -> str | None:
    try:
        from rq_scheduler import Scheduler  # noqa: F401  (bench-only dependency)
    except Exception as exc:  # any import failure is reported in the table
        return f"{type(exc).__name__}: {exc}"
    return None


RQS_PROBLEM = _rq_scheduler_problem()


# -- the bench ---------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.server = EmbeddedServer(workdir / "redis")
        self.children: list[Child] = []
        self.spawned = 0
        self.client: redis.Redis | None = None

    # setup and teardown

    def start(self) -> None:
        self.server.start()
        if self.server.port == 6379:
            raise RuntimeError("refusing to benchmark on port 6379 (the shared server)")
        self.client = redis.Redis.from_url(self.server.url, socket_timeout=60)
        log(f"private redis-server on port {self.server.port} ({self.workdir})")

    def close(self) -> None:
        for child in self.children:
            self.stop(child)
        if self.client is not None:
            self.client.close()
        self.server.stop()

    @property
    def redis(self) -> redis.Redis:
        assert self.client is not None
        return self.client

    def flush(self) -> None:
        # Only ever our own server, started above on a free port.
        assert self.server.process is not None
        assert self.server.port != 6379
        self.redis.flushdb()

    def spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> Child:
        self.spawned += 1
        path = self.workdir / f"{self.spawned:02d}-{name}.log"
        handle = path.open("wb")
        popen = subprocess.Popen(
            argv,
            env={**os.environ, **(env or {})},
            cwd=self.workdir,  # no stray .env file is read
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
            child.popen.send_signal(signal.SIGCONT)
            child.popen.terminate()
            try:
                child.popen.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait()
        with contextlib.suppress(ValueError):
            self.children.remove(child)

    # server-side figures

    def redis_info(self) -> tuple[float, int, dict[str, int]]:
        """The server's CPU seconds, commands processed, and calls per command (1 command)."""
        info = self.redis.info("everything")
        calls = {
            key.removeprefix("cmdstat_"): int(value["calls"])
            for key, value in info.items()
            if key.startswith("cmdstat_")
        }
        cpu = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return cpu, int(info["total_commands_processed"]), calls

    def redis_cpu(self) -> float:
        return self.redis_info()[0]

    def wait_landed(self, child: Child, n: int, instant: datetime, fire: Fire) -> None:
        """Poll the queue's length until it holds N jobs, the timeout passes, or it died."""
        deadline = instant + timedelta(seconds=self.args.timeout + self.args.jitter)
        queue_key = f"rq:queue:{QUEUE}"
        while True:
            landed = int(self.redis.llen(queue_key))
            if landed >= n:
                fire.observed_s = (utcnow() - instant).total_seconds()
                return
            if not child.alive:
                fire.note = f"exited with {child.popen.returncode}: {child.tail(3)}"
                return
            if utcnow() > deadline:
                fire.note = (
                    f"stopped {self.args.timeout:.0f} s after the instant: "
                    f"{landed:,} of {n:,} enqueued"
                )
                return
            time.sleep(0.05)

    def measure(
        self, child: Child, n: int, instant: datetime, fire: Fire, *, from_now: bool = False
    ) -> None:
        """CPU and Redis CPU from just before the instant (``from_now``: from this call, to
        count work done ahead of the instant) until the process is idle again."""
        if from_now:
            cpu_ahead = cpu_seconds(child.pid)
            redis0, _, calls0 = self.redis_info()
            sleep_until(instant - timedelta(seconds=0.5))
            cpu0 = cpu_seconds(child.pid)
            fire.extra["cpu_ahead_s"] = cpu0 - cpu_ahead
            cpu0 = cpu_ahead
        else:
            sleep_until(instant - timedelta(seconds=0.5))
            cpu0 = cpu_seconds(child.pid)
            redis0, _, calls0 = self.redis_info()
        self.wait_landed(child, n, instant, fire)
        if child.alive:
            child.wait_idle()
        if child.alive:
            fire.cpu_s = cpu_seconds(child.pid) - cpu0
            fire.rss_mb = peak_rss_mb(child.pid)
        redis1, _, calls1 = self.redis_info()
        fire.redis_cpu_s = redis1 - redis0
        fire.redis_commands = sum(
            count - calls0.get(name, 0)
            for name, count in calls1.items()
            if name not in {"llen", "info"}  # the benchmark's own polling
        )
        self.stop(child)

    def rq_jobs(self) -> list[tuple[str, datetime | None, str]]:
        """(job id, enqueued_at, description) of every job in the benchmark queue."""
        ids = [text_of(raw) for raw in self.redis.lrange(f"rq:queue:{QUEUE}", 0, -1)]
        out: list[tuple[str, datetime | None, str]] = []
        for part in chunks(ids):
            pipe = self.redis.pipeline(transaction=False)
            for job_id in part:
                pipe.hmget(f"rq:job:{job_id}", ["enqueued_at", "description"])
            for job_id, (enqueued, description) in zip(part, pipe.execute(), strict=True):
                out.append(
                    (
                        job_id,
                        parse_rq_time(text_of(enqueued)) if enqueued else None,
                        text_of(description) if description else "",
                    )
                )
        return out

    def peer_figures(self, fire: Fire, key: Callable[[str, str], str]) -> None:
        jobs = self.rq_jobs()
        fire.jobs = len(jobs)
        fire.distinct = len({key(job_id, description) for job_id, _, description in jobs})
        fire.lags = sorted(
            (enqueued - fire.instant).total_seconds() for _, enqueued, _ in jobs if enqueued
        )

    # tickwork

    def load_schedules(self, n: int, at: datetime) -> None:
        """N one-shot schedules at ``at``, one per load test, as ``Schedules.put`` writes them."""
        store = Store(self.redis, PREFIX)
        keys = store.keys
        now = utcnow()
        request = json.dumps({"starts": format_instant(at), "recurrence_rule": None})
        schedule = Schedule(at, Once())
        next_at = next_after(schedule, now - ONE_MICROSECOND)
        assert next_at == at

        def record(i: int) -> ScheduleRecord:
            return ScheduleRecord(
                id=i,
                stack=STACK,
                load_test_id=i,
                schedule=schedule,
                owner=K6Schedule(request_echo=request),
                deactivated=False,
                created_by="bench@example.com",
                fired_through=now - ONE_MICROSECOND,
                next_at=next_at,
                version=1,
                since=now - ONE_MICROSECOND,
                jitter_s=self.args.jitter,
            )

        self.redis.hset(keys.load_test(1), mapping={"stack": STACK, "project_id": 1})
        first = store.schedules.put(
            stack=STACK,
            load_test_id=1,
            schedule=schedule,
            request=request,
            created_by="bench@example.com",
            now=now,
            jitter_s=self.args.jitter,
        )
        assert first == record(1), (first, record(1))
        for part in chunks(range(2, n + 1), CHUNK // 8):
            pipe = self.redis.pipeline(transaction=False)
            for i in part:
                pipe.hset(keys.load_test(i), mapping={"stack": STACK, "project_id": 1})
                pipe.set(keys.load_test_schedule(i), i)
                pipe.zadd(keys.stack_index(STACK, "schedules"), {str(i): i})
                store.schedules.write(pipe, record(i))
                # put's audit entry too: a schedule's trail exists before its first fire.
                feed, trail, body = store.audit.entry(
                    stack=STACK,
                    kind="schedule",
                    resource_id=i,
                    action="created",
                    actor=INTERNAL,
                    at=now,
                    entry_id=f"bench-{i}",
                )
                pipe.zadd(feed, {body: to_us(now)})
                pipe.zadd(trail, {body: to_us(now)})
            pipe.execute()
        self.redis.set(keys.ids("schedule"), n)

    def start_leader(self) -> tuple[Child, int]:
        port = free_port()
        env = {
            "TICKWORK_REDIS_URL": self.server.url,
            "TICKWORK_KEY_PREFIX": PREFIX,
            "TICKWORK_QUEUES": json.dumps([QUEUE]),
            "TICKWORK_FIRE_BATCH_SIZE": str(self.args.batch_size),
        }
        child = self.spawn(
            "tickwork",
            [sys.executable, "-m", "tickwork", "scheduler", "--health-port", str(port)],
            env,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not child.alive:
                raise RuntimeError(f"tickwork scheduler exited:\n{child.tail()}")
            with contextlib.suppress(OSError, ValueError):
                url = f"http://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=1) as reply:
                    if json.load(reply).get("role") == "leader":
                        return child, port
            time.sleep(0.05)
        raise RuntimeError(f"tickwork scheduler did not lead within 30 s:\n{child.tail()}")

    def run_tickwork(self, n: int) -> Fire:
        per_schedule_s = 0.0003
        for _ in range(3):
            self.flush()
            instant = whole_second_after(utcnow() + timedelta(seconds=4 + n * per_schedule_s))
            self.load_schedules(n, instant)
            leader, _ = self.start_leader()
            if utcnow() < instant - timedelta(seconds=1):
                break
            log(f"tickwork: setup of {n:,} overran the instant; retrying with more margin")
            self.stop(leader)
            per_schedule_s *= 2
        else:
            return Fire(TICKWORK, n, instant, error="setup kept overrunning the instant")
        fire = Fire(TICKWORK, n, instant)
        profiler = self.profile(leader, f"tickwork-{n}") if self.args.profile else None
        self.measure(leader, n, instant, fire, from_now=True)
        if profiler is not None:
            profiler.popen.send_signal(signal.SIGINT)  # py-spy writes its file on SIGINT
            with contextlib.suppress(subprocess.TimeoutExpired):
                profiler.popen.wait(timeout=30)
            self.stop(profiler)
        self.tickwork_figures(fire, leader)
        return fire

    def profile(self, child: Child, name: str) -> Child:
        """py-spy sampling ``child`` (collapsed stacks; figures of profiled runs are skewed)."""
        out = Path(self.args.profile) / f"{name}.txt"
        out.parent.mkdir(parents=True, exist_ok=True)
        argv = [str(BIN / "py-spy"), "record", "--pid", str(child.pid), "--format", "raw"]
        profiler = self.spawn("py-spy", [*argv, "--rate", "100", "-o", str(out)])
        time.sleep(1.0)
        return profiler

    def tickwork_figures(self, fire: Fire, leader: Child) -> None:
        keys = Store(self.redis, PREFIX).keys
        last_id = int(self.redis.get(keys.ids("run")) or 0)
        runs: list[tuple[datetime, datetime | None, str, str, str]] = []
        planned: list[datetime] = []
        for part in chunks(range(1, last_id + 1)):
            pipe = self.redis.pipeline(transaction=False)
            for run_id in part:
                pipe.hmget(keys.run(run_id), RUN_FIELDS)
            for row in pipe.execute():
                if row[0] is None:
                    continue
                created, scheduled, schedule_id, job_id, status, details = (
                    "" if v is None else text_of(v)
                    for v in row  # absent: empty
                )
                planned_for = json.loads(details or "{}").get("planned_for")
                planned.append(parse_instant(planned_for or scheduled or created))
                runs.append(
                    (
                        parse_instant(created),
                        parse_instant(scheduled) if scheduled else None,
                        schedule_id,
                        job_id,
                        status,
                    )
                )
        fire.runs = len(runs)
        fire.lags = sorted(
            (created - plan).total_seconds()
            for (created, scheduled, *_), plan in zip(runs, planned, strict=True)
            if scheduled
        )
        fire.planned_s = sorted((plan - fire.instant).total_seconds() for plan in planned)
        per_schedule = Counter(schedule_id for _, _, schedule_id, _, _ in runs)
        if any(count > 1 for count in per_schedule.values()):
            fire.problems.append("a schedule has two runs")
        if any(scheduled != fire.instant for _, scheduled, *_ in runs):
            fire.problems.append("a run for another instant")
        statuses = Counter(status for *_, status in runs)
        if set(statuses) - {"created"}:
            fire.problems.append(f"statuses {dict(statuses)}")
        jobs = self.rq_jobs()
        job_ids = {job_id for job_id, _, _ in jobs}
        fire.jobs = len(jobs)
        fire.distinct = len(job_ids)
        if job_ids != {job_id for *_, job_id, _ in runs}:
            fire.problems.append("jobs and runs differ")
        enqueued = sorted(
            (when - fire.instant).total_seconds() for _, when, _ in jobs if when is not None
        )
        if enqueued:
            fire.extra["job_enqueued_max_s"] = enqueued[-1]
        # The last fire_batch_committed log line is written just after the last EXEC returned.
        committed = [
            datetime.fromisoformat(entry["ts"])
            for entry in _json_lines(leader.log)
            if entry.get("event") == "fire_batch_committed"
        ]
        if committed:
            fire.extra["batches"] = len(committed)
            fire.extra["last_commit_logged_s"] = (max(committed) - fire.instant).total_seconds()

    # rq cron

    def spawn_rq_cron(self, n: int, instant: datetime) -> Child:
        """``rq cron`` with N entries whose cron string is due at ``instant`` only."""
        config = self.workdir / "rq_cron_bench.py"
        config.write_text(RQ_CRON_CONFIG)
        local = instant.astimezone()  # rq cron matches cron fields in local time
        env = {
            "BENCH_N": str(n),
            "BENCH_QUEUE": QUEUE,
            "BENCH_CRON": f"{local.minute} {local.hour} {local.day} {local.month} *",
        }
        argv = [str(BIN / "rq"), "cron", str(config), "--url", self.server.url]
        return self.spawn("rq-cron", [*argv, "--logging-level", "warning"], env)

    def run_rq_cron(self, n: int) -> Fire:
        per_entry_s = 0.0005
        for _ in range(2):
            self.flush()
            instant = whole_minute_after(utcnow() + timedelta(seconds=8 + n * per_entry_s))
            child = self.spawn_rq_cron(n, instant)
            while child.alive and not self.redis.zcard(RQ_CRON_REGISTRY):
                if utcnow() > instant:
                    break
                time.sleep(0.1)
            if not child.alive:
                return Fire(RQ_CRON, n, instant, error=f"rq cron exited: {child.tail(5)}")
            if utcnow() < instant - timedelta(seconds=1):
                break
            log(f"rq cron: loading {n:,} entries overran the instant; retrying")
            self.stop(child)
            per_entry_s *= 2
        else:
            return Fire(RQ_CRON, n, instant, error="loading kept overrunning the instant")
        fire = Fire(RQ_CRON, n, instant)
        self.measure(child, n, instant, fire)
        self.peer_figures(fire, lambda _, description: description)
        return fire

    # rq-scheduler

    def load_rq_scheduler(self, n: int, at: datetime) -> None:
        from rq_scheduler import Scheduler

        scheduler = Scheduler(queue_name=QUEUE, connection=self.redis)
        for i in range(n):
            scheduler.enqueue_at(at, "bench_noop.noop", i)

    def spawn_rqscheduler(self) -> Child:
        interval = str(self.args.rqs_interval)
        argv = [str(BIN / "rqscheduler"), "--url", self.server.url, "--interval", interval]
        return self.spawn("rqscheduler", [*argv, "--quiet"])

    def run_rq_scheduler(self, n: int) -> Fire:
        if RQS_PROBLEM:
            return Fire(RQ_SCHEDULER, n, utcnow(), error=RQS_PROBLEM)
        per_job_s = 0.0005
        for _ in range(3):
            self.flush()
            instant = whole_second_after(utcnow() + timedelta(seconds=4 + n * per_job_s))
            self.load_rq_scheduler(n, instant)
            child = self.spawn_rqscheduler()
            time.sleep(1.0)
            if not child.alive:
                return Fire(RQ_SCHEDULER, n, instant, error=f"rqscheduler exited: {child.tail(5)}")
            if utcnow() < instant - timedelta(seconds=1):
                break
            log(f"rq-scheduler: setup of {n:,} overran the instant; retrying")
            self.stop(child)
            per_job_s *= 2
        else:
            return Fire(RQ_SCHEDULER, n, instant, error="setup kept overrunning the instant")
        fire = Fire(RQ_SCHEDULER, n, instant)
        self.measure(child, n, instant, fire)
        self.peer_figures(fire, lambda _, description: description)
        if not fire.lags and not fire.note:
            fire.error = f"nothing enqueued: {child.tail(5)}"
        return fire

    def run(self, system: str, n: int) -> Fire:
        log(f"{system}: {n:,} due at one instant")
        runner = {
            TICKWORK: self.run_tickwork,
            RQ_CRON: self.run_rq_cron,
            RQ_SCHEDULER: self.run_rq_scheduler,
        }[system]
        try:
            fire = runner(n)
        except Exception as exc:  # one failed run is reported, the others still run
            fire = Fire(system, n, utcnow(), error=f"{type(exc).__name__}: {exc}")
        finally:
            for child in list(self.children):
                self.stop(child)
        fire.extra["load1"] = os.getloadavg()[0]
        log(
            f"{system}: {n:,} -> max lag {fire.lag(1.0):.3f} s, exactly once {fire.exactly_once}"
            f"{', ' + fire.note if fire.note else ''}{', ' + fire.error if fire.error else ''}"
        )
        return fire

    # idle

    def idle(self, system: str, n: int) -> Idle:
        log(f"{system}: idle with {n:,} entries a day away, {self.args.idle_seconds:.0f} s")
        result = Idle(system, n, self.args.idle_seconds)
        self.flush()
        far = whole_second_after(utcnow() + timedelta(days=1))
        child: Child | None = None
        try:
            if system == TICKWORK:
                self.load_schedules(n, far)
                child, _ = self.start_leader()
            elif system == RQ_CRON:
                child = self.spawn_rq_cron(n, far)
                while child.alive and not self.redis.zcard(RQ_CRON_REGISTRY):
                    time.sleep(0.1)
            else:
                if RQS_PROBLEM:
                    result.error = RQS_PROBLEM
                    return result
                self.load_rq_scheduler(n, far)
                child = self.spawn_rqscheduler()
            time.sleep(2.0)
            if not child.alive:
                result.error = f"exited: {child.tail(3)}"
                return result
            child.wait_idle(limit_s=60)
            cpu0 = cpu_seconds(child.pid)
            redis0, commands0, calls0 = self.redis_info()
            time.sleep(self.args.idle_seconds)
            cpu1 = cpu_seconds(child.pid)
            redis1, commands1, calls1 = self.redis_info()
            result.cpu_s = cpu1 - cpu0
            result.redis_cpu_s = redis1 - redis0
            result.commands = commands1 - commands0 - 1  # our own INFO
            calls1["info"] = calls1.get("info", 0) - 1
            result.by_command = {
                name: calls1[name] - calls0.get(name, 0)
                for name in calls1
                if calls1[name] - calls0.get(name, 0) > 0
            }
            result.rss_mb = peak_rss_mb(child.pid)
        except Exception as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            if child is not None:
                self.stop(child)
        return result


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict):
                yield entry


# -- report ------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sizes", default=None, help="N, comma-separated (1000,10000,100000)")
    parser.add_argument("--quick", action="store_true", help="1,000 only, one round, short idle")
    parser.add_argument("--repeats", type=int, default=2, help="rounds for small sizes")
    parser.add_argument(
        "--single-round-from", type=int, default=100_000, help="sizes from here run once"
    )
    parser.add_argument("--systems", default=",".join(SYSTEMS), help="subset to run")
    parser.add_argument("--batch-size", type=int, default=500, help="TICKWORK_FIRE_BATCH_SIZE")
    parser.add_argument("--rqs-interval", type=float, default=1.0, help="rqscheduler --interval")
    parser.add_argument("--timeout", type=float, default=300.0, help="peer give-up, seconds")
    parser.add_argument("--idle-seconds", type=float, default=60.0)
    parser.add_argument("--idle-size", type=int, default=None, help="default: the largest N")
    parser.add_argument("--no-idle", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy record the tickwork leader")
    parser.add_argument(
        "--jitter", type=int, default=0, help="jitter_seconds of the tickwork schedules"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes = args.sizes or "1000"
        args.repeats = 1
        args.idle_seconds = min(args.idle_seconds, 5.0)
        args.timeout = min(args.timeout, 60.0)
    sizes = [int(s) for s in (args.sizes or "1000,10000,100000").split(",")]
    systems = [s.strip() for s in args.systems.split(",")]
    if unknown := set(systems) - set(SYSTEMS):
        parser.error(f"unknown systems {sorted(unknown)}; choose from {SYSTEMS}")
    if RQS_PROBLEM and RQ_SCHEDULER in systems:
        print(
            f"rq-scheduler unavailable ({RQS_PROBLEM}); it is a benchmark-only dependency: "
            ".venv/bin/pip install rq-scheduler. Its rows will show the error.",
            file=sys.stderr,
        )

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    print(environment(args), flush=True)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="tickwork-bench-fire-"))
    bench = Bench(args, workdir)
    rounds: list[list[Fire]] = []
    idles: list[Idle] = []
    try:
        bench.start()
        for round_no in range(args.repeats):
            this_round: list[Fire] = []
            for n in sizes:
                if round_no > 0 and n >= args.single_round_from:
                    continue
                shift = round_no % len(systems)
                for system in systems[shift:] + systems[:shift]:
                    this_round.append(bench.run(system, n))
            rounds.append(this_round)
        if not args.no_idle:
            idle_n = args.idle_size or max(sizes)
            idles = [bench.idle(system, idle_n) for system in systems]
    finally:
        bench.close()
        if args.keep:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    report(rounds, idles, args, started)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
