"""Soak benchmark: hundreds of schedules firing every second for minutes, with a short
retention, through real scheduler and worker processes; does everything kept stay bounded?

Workload: ``--schedules`` (300) Kragle jobs on one timing template with ``config.period`` 1
(``--period``): every second, every schedule is due. (The k6 dialect's cron and recurrence
rules repeat at most every minute; a Kragle period may be 1 second, tickwork's fastest
cadence, so no staggering is needed.) Each job fires its own load test, whose runner is the
cheapest there is: ``{"type": "command", "argv": ["true"]}``. Against one private
``redis-server`` (started here on a free port, AOF ``everysec``; the shared server is never
touched) run ``--schedulers`` (2) ``python -m tickwork scheduler`` processes (one leads) and
``--workers`` (2) ``python -m tickwork worker`` processes, all with default settings except
retention: ``TICKWORK_RUN_RETENTION_DAYS`` is ``--retention-seconds`` (120) as a fraction of
a day, ``TICKWORK_RUNS_PER_LOAD_TEST`` is ``--runs-per-load-test`` (the default 1,000, which
an age of 120 s at one run a second never reaches; 0 turns the count off).

300 fires a second are more than two workers run (about 130 ``true`` runs a second on an idle
host, see bench/workers.py): with the default overlap policy (``skip``) an occurrence whose
load test's previous run has not finished is recorded as a skipped run. So the soak makes
both kinds of record, executed runs and skip records, 300 a second, and retention must
remove 300 a second to stay level.

Every ``--row-seconds`` (60) one row: the minute, the load average, runs fired and skipped
so far, the runs kept (the stack's run index), the queue's length, Redis ``used_memory``
and RSS, the key count (``DBSIZE``), the RSS of each tickwork process, the lateness p50/p99
of the fires created in that row (``created`` - ``scheduled_for`` of each fired run record),
and the records retention removed (the leaders' ``records_retired`` log lines). The run
records are read every 5 s (those created more than 5 s ago, from the stack's run index),
long before retention removes them, so every run is seen exactly once; the check that no
(schedule, occurrence) has two runs and that no occurrence is missing (every second of every
schedule has a fired or skipped run) spans the whole soak.

Verdicts, over the rows after a warm-up of the retention period plus one row: memory,
keys, runs kept and each process's RSS plateau (the last 3 rows within 10 % of each other,
and the fitted trend moving less than 10 % across those rows); RQ's result streams no more
than the executed runs retention keeps; retention leaves fires on time (the p50/p99 lateness
after the warm-up against the rows before anything was old enough to remove); lateness p99
flat after the warm-up (the later half's median at most 1.5 x the earlier half's + 10 ms);
exactly once and no occurrence missed. A breakdown of the keys by pattern, with their
MEMORY USAGE, shows what any growth is made of. The benchmark is run by hand, never in the
test suite:

    .venv/bin/python bench/soak.py [--minutes 10] [--schedules 300] [--quick]

``--quick``: 2 minutes, a 30 s retention and rows every 30 s (a smoke run).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import FrameType

import redis

from fire_processes import Child, chunks, cpu_seconds, log, rss_mb, utcnow, whole_second_after
from fire_results import fmt, percentile, table
from tickwork.core import Interval, Schedule
from tickwork.core.instants import parse_instant, to_us
from tickwork.embedded import EmbeddedServer, free_port
from tickwork.store import Store
from tickwork.store.connection import text_of

PREFIX = "soak"
QUEUE = "soak-runs"
STACK = 1
RUN_FIELDS = ["created", "scheduled_for", "schedule_id", "status", "details"]
READ_EVERY_S = 5.0
READ_LAG_S = 5.0  # runs created this recently may still be in a batch being committed
PLATEAU = 1.10  # the last 3 rows' max / min
FLAT_FACTOR, FLAT_SLACK_S = 1.5, 0.010


@dataclass
class Row:
    at_s: float  # seconds since the first occurrence
    load1: float
    fired: int
    skipped: int
    kept: int
    queued: int
    used_mb: float
    redis_rss_mb: float
    keys: int
    rss: dict[str, float]
    lateness: list[float]  # ascending, seconds: the fires created in this row
    removed: int


@dataclass
class Tally:
    """Every run record read, across the soak."""

    fired: int = 0
    skipped: int = 0
    per_occurrence: Counter[tuple[int, int]] = field(default_factory=Counter)
    seen: dict[int, set[int]] = field(default_factory=lambda: defaultdict(set))  # µs
    lateness: list[float] = field(default_factory=list)  # since the last row
    all_lateness: list[float] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)  # of the runs kept at the end


class Soak:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.server = EmbeddedServer(workdir / "redis")
        self.children: list[Child] = []
        self.schedulers: list[tuple[Child, int]] = []
        self.client: redis.Redis | None = None
        self.tally = Tally()
        self.read_through_us = 0
        self.log_offsets: dict[str, int] = {}
        self.lease_events: Counter[str] = Counter()
        self.first_at = utcnow()
        self.cpu0: dict[str, float] = {}
        self.cpu1: dict[str, float] = {}
        self.memory: list[tuple[str, str]] = []

    # setup and teardown

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
            raise RuntimeError("refusing to soak on port 6379 (the shared server)")
        self.client = redis.Redis.from_url(self.server.url, socket_timeout=60)
        log(f"private redis-server on port {self.server.port} ({self.workdir})")

    def close(self) -> None:
        for child in list(self.children):
            self.stop(child)
        if self.client is not None:
            self.client.close()
        self.server.stop()

    def env(self) -> dict[str, str]:
        args = self.args
        return {
            "TICKWORK_REDIS_URL": self.server.url,
            "TICKWORK_KEY_PREFIX": PREFIX,
            "TICKWORK_QUEUES": json.dumps([QUEUE]),
            "TICKWORK_COMMAND_ALLOWED": json.dumps(["true"]),
            "TICKWORK_WORK_DIR": str(self.workdir / "work"),
            "TICKWORK_RUN_RETENTION_DAYS": repr(args.retention_seconds / 86_400),
            "TICKWORK_RUNS_PER_LOAD_TEST": str(args.runs_per_load_test),
        }

    def spawn(self, name: str, argv: list[str]) -> Child:
        path = self.workdir / f"{name}.log"
        handle = path.open("wb")
        popen = subprocess.Popen(
            argv,
            env={**os.environ, **self.env()},
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
            child.popen.terminate()
            try:
                child.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.popen.kill()
                child.popen.wait()
        with contextlib.suppress(ValueError):
            self.children.remove(child)

    def load_tests(self) -> list[int]:
        """One project, and a load test per schedule whose runner is ``true``."""
        store, now = self.store, utcnow()
        project = store.projects.create(STACK, name="soak", now=now)
        runner = {"type": "command", "argv": ["true"]}
        return [
            store.load_tests.create(
                STACK, project_id=project.id, name=f"soak-{i}", script=None, now=now, runner=runner
            ).id
            for i in range(self.args.schedules)
        ]

    def start_processes(self) -> None:
        work = self.workdir / "work"
        work.mkdir(exist_ok=True)
        for i in range(self.args.workers):
            argv = [sys.executable, "-m", "tickwork", "worker", "--queue", QUEUE]
            self.spawn(f"worker-{i + 1}", argv)
        for i in range(self.args.schedulers):
            port = free_port()
            argv = [sys.executable, "-m", "tickwork", "scheduler", "--health-port", str(port)]
            self.schedulers.append((self.spawn(f"scheduler-{i + 1}", argv), port))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            self.check_alive()
            workers = int(self.redis.scard("rq:workers"))
            if workers >= self.args.workers and self.leader() is not None:
                return
            time.sleep(0.2)
        raise RuntimeError("the workers did not register or no scheduler led within 60 s")

    def leader(self) -> str | None:
        for child, port in self.schedulers:
            with contextlib.suppress(OSError, ValueError):
                url = f"http://127.0.0.1:{port}/healthz"
                with urllib.request.urlopen(url, timeout=2) as reply:
                    if json.load(reply).get("role") == "leader":
                        return child.name
        return None

    def schedule(self, load_test_ids: list[int]) -> datetime:
        """One timing template every ``--period`` seconds from a whole second shortly ahead,
        and a job on it per load test: the API's own store calls."""
        store, now = self.store, utcnow()
        first = whole_second_after(now + timedelta(seconds=3))
        period = timedelta(seconds=self.args.period)
        template = store.kragle.create(
            STACK,
            name="every second",
            once=False,
            config={"period": self.args.period, "timestamp": int(first.timestamp())},
            schedule=Schedule(first, Interval(period)),
            anchor=now.replace(microsecond=0),
            now=now,
            created_by="soak@example.com",
        )
        for load_test_id in load_test_ids:
            store.kragle.bind(
                STACK,
                template_id=template.id,
                load_test_id=load_test_id,
                now=now,
                created_by="soak@example.com",
            )
        return first

    def check_alive(self) -> None:
        for child in self.children:
            if not child.alive:
                raise RuntimeError(
                    f"{child.name} exited with {child.popen.returncode}:\n{child.tail(20)}"
                )

    # reading what happened

    def read_runs(self, *, through: datetime | None) -> None:
        """Tally the runs created since the last read and before ``through`` (None: all)."""
        index = self.store.keys.stack_index(STACK, "runs")
        high = "+inf" if through is None else f"({to_us(through)}"
        ids = [
            text_of(member)
            for member in self.redis.zrangebyscore(index, self.read_through_us, high)
        ]
        if through is not None:
            self.read_through_us = to_us(through)
        tally, keys = self.tally, self.store.keys
        for part in chunks(ids):
            pipe = self.redis.pipeline(transaction=False)
            for run_id in part:
                pipe.hmget(keys.run(int(run_id)), RUN_FIELDS)
            for row in pipe.execute():
                if row[0] is None:
                    continue  # removed meanwhile: cannot happen with retention >= 30 s
                created, scheduled, schedule_id, status, details = (
                    "" if v is None else text_of(v)
                    for v in row  # absent: empty
                )
                if not scheduled:
                    continue  # not a scheduled run (none are started by hand here)
                occurrence = parse_instant(scheduled)
                key = (int(schedule_id), to_us(occurrence))
                tally.per_occurrence[key] += 1
                seen = tally.seen[int(schedule_id)]
                seen.add(to_us(occurrence))
                if status == "skipped":
                    tally.skipped += 1
                    more = json.loads(details or "{}")
                    if more.get("more") and more.get("last_at"):
                        # One record standing for a series: every occurrence up to last_at.
                        step, last = (
                            self.args.period * 1_000_000,
                            to_us(parse_instant(more["last_at"])),
                        )
                        seen.update(range(to_us(occurrence), last + 1, step))
                else:
                    tally.fired += 1
                    lateness = (parse_instant(created) - occurrence).total_seconds()
                    tally.lateness.append(lateness)
                    tally.all_lateness.append(lateness)

    def retired(self) -> int:
        """Records retention removed since the last call (every scheduler's log lines);
        also counts lease changes."""
        removed = 0
        for child, _ in self.schedulers:
            offset = self.log_offsets.get(child.name, 0)
            with child.log.open("rb") as handle:
                handle.seek(offset)
                data = handle.read()
            complete = data[: data.rfind(b"\n") + 1]
            self.log_offsets[child.name] = offset + len(complete)
            for line in complete.splitlines():
                with contextlib.suppress(ValueError):
                    entry = json.loads(line)
                    if not isinstance(entry, dict):
                        continue
                    event = entry.get("event")
                    if event == "records_retired":
                        removed += int(entry.get("count", 0))
                    elif event in {"lease_acquired", "lease_lost", "run_stranded_ended"}:
                        self.lease_events[f"{child.name} {event}"] += 1
        return removed

    def row(self, at: datetime) -> Row:
        info = self.redis.info("memory")
        tally = self.tally
        lateness, tally.lateness = sorted(tally.lateness), []
        return Row(
            at_s=(at - self.first_at).total_seconds(),
            load1=os.getloadavg()[0],
            fired=tally.fired,
            skipped=tally.skipped,
            kept=int(self.redis.zcard(self.store.keys.stack_index(STACK, "runs"))),
            queued=int(self.redis.llen(f"rq:queue:{QUEUE}")),
            used_mb=int(info["used_memory"]) / 2**20,
            redis_rss_mb=int(info["used_memory_rss"]) / 2**20,
            keys=int(self.redis.dbsize()),
            rss={child.name: rss_mb(child.pid) for child in self.children},
            lateness=lateness,
            removed=self.retired(),
        )

    def key_patterns(self, top: int = 14) -> list[tuple[str, int, int]]:
        """Keys by pattern (digits and job ids folded) with their MEMORY USAGE, the largest
        first: what the used memory is made of."""
        counts: Counter[str] = Counter()
        sizes: Counter[str] = Counter()
        names = [text_of(raw) for raw in self.redis.scan_iter(count=5000)]
        for part in chunks(names):
            pipe = self.redis.pipeline(transaction=False)
            for name in part:
                pipe.memory_usage(name, samples=0)
            for name, size in zip(part, pipe.execute(), strict=True):
                pattern = re.sub(r"\d+", "{n}", re.sub(r"fire-\d+-\d+", "{job}", name))
                counts[pattern] += 1
                sizes[pattern] += int(size or 0)
        return [(pattern, counts[pattern], size) for pattern, size in sizes.most_common(top)]

    def memory_breakdown(self) -> list[tuple[str, str]]:
        """Where Redis's used_memory goes at the end (INFO memory)."""
        info = self.redis.info("memory")
        names = [
            "used_memory",
            "used_memory_dataset",
            "used_memory_overhead",
            "mem_clients_normal",
            "mem_aof_buffer",
            "used_memory_scripts",
            "used_memory_rss",
            "allocator_frag_ratio",
        ]
        return [
            (name, f"{int(info[name]) / 2**20:.1f} MB" if "ratio" not in name else str(info[name]))
            for name in names
            if name in info
        ]

    def cpu(self) -> dict[str, float]:
        out = {child.name: cpu_seconds(child.pid) for child in self.children if child.alive}
        info = self.redis.info("cpu")
        out["redis-server"] = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
        return out

    # the soak

    def run(self) -> list[Row]:
        args = self.args
        load_test_ids = self.load_tests()
        self.start_processes()
        log(f"{args.workers} workers registered; {self.leader()} leads")
        self.first_at = self.schedule(load_test_ids)
        self.read_through_us = to_us(self.first_at - timedelta(seconds=1))
        end = self.first_at + timedelta(minutes=args.minutes)
        log(f"{args.schedules} schedules every {args.period} s from {self.first_at:%H:%M:%S}")
        self.cpu0 = self.cpu()
        rows: list[Row] = []
        next_row = self.first_at + timedelta(seconds=args.row_seconds)
        while True:
            now = utcnow()
            self.check_alive()
            self.read_runs(through=now - timedelta(seconds=READ_LAG_S))
            if now >= next_row + timedelta(seconds=READ_LAG_S):
                # The row's runs (created before next_row) have all been read by now.
                rows.append(self.row(next_row))
                print_row(rows[-1], args, header=len(rows) == 1)
                next_row += timedelta(seconds=args.row_seconds)
                if next_row > end + timedelta(seconds=1):
                    break
            time.sleep(READ_EVERY_S)
        self.cpu1 = self.cpu()
        self.memory = self.memory_breakdown()
        # All at once, so that no standby takes the lease over as the leader stops: no more
        # fires, and what is left can be read whole.
        for child, _ in self.schedulers:
            child.popen.terminate()
        for child, _ in self.schedulers:
            self.stop(child)
        self.read_runs(through=None)
        self.retired()
        self.tally.statuses = self.kept_statuses()
        return rows

    def kept_statuses(self) -> Counter[str]:
        """The statuses of the runs retention still keeps (did the runs pass?)."""
        index = self.store.keys.stack_index(STACK, "runs")
        ids = [int(text_of(member)) for member in self.redis.zrange(index, 0, -1)]
        found: Counter[str] = Counter()
        for part in chunks(ids):
            pipe = self.redis.pipeline(transaction=False)
            for run_id in part:
                pipe.hget(self.store.keys.run(run_id), "status")
            found.update(text_of(status) for status in pipe.execute() if status is not None)
        return found


# -- report ------------------------------------------------------------------------------------


def _columns(args: argparse.Namespace) -> list[str]:
    procs = [f"scheduler-{i + 1}" for i in range(args.schedulers)]
    procs += [f"worker-{i + 1}" for i in range(args.workers)]
    return procs


def print_row(row: Row, args: argparse.Namespace, *, header: bool) -> None:
    procs = _columns(args)
    names = [
        "min",
        "load1",
        "fired",
        "skipped",
        "runs kept",
        "queued",
        "used_memory MB",
        "Redis RSS MB",
        "keys",
        *(f"{p} RSS MB" for p in procs),
        "lateness p50 / p99 ms",
        "removed",
    ]
    if header:
        print("| " + " | ".join(names) + " |")
        print("|" + "|".join("---:" for _ in names) + "|")
    cells = [
        f"{row.at_s / 60:.1f}",
        f"{row.load1:.1f}",
        f"{row.fired:,}",
        f"{row.skipped:,}",
        f"{row.kept:,}",
        f"{row.queued:,}",
        fmt(row.used_mb, 1),
        fmt(row.redis_rss_mb, 1),
        f"{row.keys:,}",
        *(fmt(row.rss.get(p, math.nan), 1) for p in procs),
        f"{fmt(percentile(row.lateness, 0.5) * 1000, 0)} / "
        f"{fmt(percentile(row.lateness, 0.99) * 1000, 0)}",
        f"{row.removed:,}",
    ]
    print("| " + " | ".join(cells) + " |", flush=True)


def _slope_per_min(rows: Sequence[Row], value: list[float]) -> float:
    if len(rows) < 2:
        return math.nan
    xs = [row.at_s / 60 for row in rows]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(value)
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, value, strict=True)) / var


def _plateau(rows: Sequence[Row], values: list[float], unit: str, digits: int = 1) -> str:
    """Level: the last 3 rows within 10 % of each other, and no trend over the rows after the
    warm-up (the fitted slope times their span under 10 % of their mean: a steady leak can
    pass the first test when something else shrinks meanwhile)."""
    last = values[-3:]
    if len(last) < 2 or min(last) <= 0:
        return "too short to judge"
    ratio = max(last) / min(last)
    slope = _slope_per_min(rows, values)
    drift = slope / statistics.fmean(values)
    span_min = (rows[-1].at_s - rows[0].at_s) / 60
    level = ratio <= PLATEAU and abs(drift) * span_min <= PLATEAU - 1
    shown = ", ".join(fmt(v, digits) for v in last)
    return (
        f"{'yes' if level else 'NO'} (last {len(last)} rows {shown} {unit}: max/min "
        f"{ratio:.3f}; trend after warm-up {fmt(slope, digits + 1)} {unit}/min, "
        f"{drift * 100:+.1f} %/min over {span_min:.0f} min)"
    )


def _ms(values: Sequence[float]) -> str:
    return "-".join(f"{v * 1000:.0f}" for v in (min(values), max(values))) + " ms"


def _lateness_verdicts(rows: list[Row], after: list[Row], args: argparse.Namespace) -> list[str]:
    out = []
    # Before anything is old enough to remove, retention has no work: fires on their own.
    before = [r for r in rows if r.at_s <= args.retention_seconds and r.lateness]
    after = [r for r in after if r.lateness]
    if before and after:
        b50, a50 = ([percentile(r.lateness, 0.5) for r in part] for part in (before, after))
        b99, a99 = ([percentile(r.lateness, 0.99) for r in part] for part in (before, after))
        on_time = (
            statistics.median(a50) <= statistics.median(b50) + 0.020
            and statistics.median(a99) <= FLAT_FACTOR * statistics.median(b99) + FLAT_SLACK_S
        )
        out.append(
            f"- retention leaves fires on time: {'yes' if on_time else 'NO'} (rows before any "
            f"removal: p50 {_ms(b50)}, p99 {_ms(b99)}; rows after warm-up: p50 {_ms(a50)}, "
            f"p99 {_ms(a99)})"
        )
    if len(after) >= 2:
        half = len(after) // 2
        p99 = [percentile(r.lateness, 0.99) for r in after]
        first, second = statistics.median(p99[:half]), statistics.median(p99[half:])
        flat = second <= FLAT_FACTOR * first + FLAT_SLACK_S
        out.append(
            f"- lateness p99 flat after warm-up: {'yes' if flat else 'NO'} (median p99 of the "
            f"first {half} rows {first * 1000:.0f} ms, of the last {len(p99) - half} "
            f"{second * 1000:.0f} ms)"
        )
    else:
        out.append("- lateness p99 flat after warm-up: too short to judge")
    return out


def verdicts(
    rows: list[Row], soak: Soak, patterns: list[tuple[str, int, int]], args: argparse.Namespace
) -> list[str]:
    warm_s = args.retention_seconds + args.row_seconds
    after = [row for row in rows if row.at_s >= warm_s] or rows[-2:]
    out = [f"- warm-up: the first {warm_s:.0f} s (retention + one row); {len(after)} rows after it"]
    out.append("- memory plateaus: " + _plateau(after, [r.used_mb for r in after], "MB", digits=1))
    out.append("- keys plateau: " + _plateau(after, [float(r.keys) for r in after], "keys", 0))
    out.append(
        "- runs kept plateau: "
        + _plateau(after, [float(r.kept) for r in after], "runs", 0)
        + f"; {args.schedules} schedules x {args.retention_seconds:.0f} s / {args.period} s "
        f"= {args.schedules * args.retention_seconds / args.period:,.0f} expected"
    )
    for name in _columns(args):
        values = [r.rss.get(name, math.nan) for r in after]
        out.append(f"- {name} RSS plateaus: " + _plateau(after, values, "MB", digits=1))
    executed = sum(
        count
        for status, count in soak.tally.statuses.items()
        if status not in {"skipped", "created", "running"}
    )
    results = sum(n for pattern, n, _ in patterns if pattern.startswith("rq:results:"))
    bounded = results <= 1.1 * executed + args.schedules
    out.append(
        f"- RQ's keys bounded by retention: {'yes' if bounded else 'NO'} ({results:,} RQ "
        f"result streams (rq:results:*) for {executed:,} executed runs kept)"
    )
    out += _lateness_verdicts(rows, after, args)
    out.append(
        f"- every fire: p50 {fmt(soak_lateness(soak, 0.5) * 1000, 0)} ms, p99 "
        f"{fmt(soak_lateness(soak, 0.99) * 1000, 0)} ms, max "
        f"{fmt(soak_lateness(soak, 1.0) * 1000, 0)} ms"
    )
    tally = soak.tally
    duplicates = sum(count - 1 for count in tally.per_occurrence.values() if count > 1)
    step = args.period * 1_000_000
    missing = sum((max(s) - min(s)) // step + 1 - len(s) for s in tally.seen.values() if s)
    occurrences = len(tally.per_occurrence)
    out.append(
        f"- exactly once: {'yes' if duplicates == 0 else 'NO'} ({occurrences:,} occurrences of "
        f"{len(tally.seen)} schedules, {tally.fired:,} fired and {tally.skipped:,} skipped; "
        f"{duplicates} with a second run)"
    )
    out.append(
        f"- no occurrence missed: {'yes' if missing == 0 else 'NO'} ({missing} seconds of a "
        "schedule, between its first and last run, with neither a run nor a skip record)"
    )
    return out


def soak_lateness(soak: Soak, q: float) -> float:
    return percentile(sorted(soak.tally.all_lateness), q)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--schedules", type=int, default=300)
    parser.add_argument("--period", type=int, default=1, help="seconds between occurrences")
    parser.add_argument("--schedulers", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--retention-seconds", type=float, default=None, help="default 120")
    parser.add_argument(
        "--runs-per-load-test", type=int, default=1000, help="TICKWORK_RUNS_PER_LOAD_TEST"
    )
    parser.add_argument("--row-seconds", type=float, default=None, help="default 60")
    parser.add_argument("--quick", action="store_true", help="2 minutes, 30 s retention")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = 2.0
    args.retention_seconds = args.retention_seconds or (30.0 if args.quick else 120.0)
    args.row_seconds = args.row_seconds or (30.0 if args.quick else 60.0)
    if args.retention_seconds < 30:
        parser.error("--retention-seconds must be at least 30 (runs are read 10 s after)")

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_term)
    print(header(args), flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="tickwork-bench-soak-"))
    soak = Soak(args, workdir)
    rows: list[Row] = []
    failure = ""
    try:
        soak.start()
        rows = soak.run()
        patterns = soak.key_patterns()
    except RuntimeError as exc:
        failure = str(exc)
        patterns = []
    finally:
        soak.close()
        if args.keep or failure:
            log(f"logs kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if failure:
        print(f"\n**The soak stopped: {failure}**")
        return 1
    report(rows, soak, patterns, args)
    return 0


def header(args: argparse.Namespace) -> str:
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"# Soak ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"{os.cpu_count()} CPUs, load average {load} at start (a shared host). "
        f"{args.schedules} Kragle jobs every {args.period} s (runner: command `true`), "
        f"{args.schedulers} schedulers, {args.workers} workers, private redis-server (AOF "
        f"everysec); retention {args.retention_seconds:.0f} s "
        f"(TICKWORK_RUN_RETENTION_DAYS={args.retention_seconds / 86_400:.6f}), "
        f"TICKWORK_RUNS_PER_LOAD_TEST={args.runs_per_load_test}; {args.minutes:g} minutes, a "
        f"row every {args.row_seconds:.0f} s.\n"
    )


def report(
    rows: list[Row], soak: Soak, patterns: list[tuple[str, int, int]], args: argparse.Namespace
) -> None:
    print("\n## Verdicts\n")
    for line in verdicts(rows, soak, patterns, args):
        print(line)
    span = rows[-1].at_s if rows else math.nan
    cpu = [
        [name, fmt((soak.cpu1[name] - soak.cpu0.get(name, 0.0)) / span * 100, 1)]
        for name in soak.cpu1
    ]
    print("\n## CPU over the soak (% of one core)\n")
    print(table(["process", "CPU %"], cpu))
    print("\n## Redis memory at the end (INFO memory)\n")
    print(table(["field", "value"], soak.memory))
    print("\n## Keys at the end, by pattern\n")
    rows_ = [
        [f"`{p}`", f"{n:,}", f"{size / 2**20:.2f}", f"{size / n:,.0f}"] for p, n, size in patterns
    ]
    print(table(["pattern", "keys", "MEMORY USAGE MB", "bytes per key"], rows_))
    statuses = soak.tally.statuses
    if soak.lease_events:
        print("\nScheduler events: " + ", ".join(f"{k}: {v}" for k, v in soak.lease_events.items()))
    if statuses:
        print("Runs kept at the end: " + ", ".join(f"{k} {v:,}" for k, v in statuses.items()))
    print(f"\nLoad average at the end: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    raise SystemExit(main())
