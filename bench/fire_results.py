"""What bench/fire.py measures and how it prints it: one run's figures (Fire, Idle) and the
report (medians over rounds, ratios to the peers in the same rounds)."""

from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version

TICKWORK, RQ_CRON, RQ_SCHEDULER = "tickwork", "rq cron", "rq-scheduler"
SYSTEMS = (TICKWORK, RQ_CRON, RQ_SCHEDULER)


# -- results -----------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence."""
    if not ordered:
        return math.nan
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


@dataclass
class Fire:
    system: str
    n: int
    instant: datetime
    lags: list[float] = field(default_factory=list)  # ascending, seconds
    jobs: int = 0  # RQ jobs found in the queue
    distinct: int = 0  # distinct schedules (or entries) those jobs belong to
    runs: int | None = None  # tickwork run records
    problems: list[str] = field(default_factory=list)
    cpu_s: float = math.nan
    rss_mb: float = math.nan
    redis_cpu_s: float = math.nan
    redis_commands: int = 0  # commands the scheduler sent (the benchmark's own polls excluded)
    observed_s: float = math.nan  # when the benchmark first saw all N in the queue
    note: str = ""
    error: str = ""
    extra: dict[str, float] = field(default_factory=dict)
    planned_s: list[float] = field(default_factory=list)  # tickwork: planned - instant

    @property
    def fires_per_s(self) -> float:
        last = self.lags[-1] if self.lags else math.nan
        return len(self.lags) / last if last > 0 else math.nan

    def lag(self, q: float) -> float:
        return percentile(self.lags, q)

    @property
    def exactly_once(self) -> str:
        if self.error:
            return "—"
        issues = list(self.problems)
        if self.jobs != self.n:
            issues.append(f"{self.jobs} jobs for {self.n}")
        if self.distinct != self.jobs:
            issues.append(f"{self.jobs - self.distinct} duplicates")
        if self.runs is not None and self.runs != self.n:
            issues.append(f"{self.runs} runs for {self.n}")
        return "yes" if not issues else "NO: " + "; ".join(issues)


@dataclass
class Idle:
    system: str
    n: int
    seconds: float
    cpu_s: float = math.nan
    commands: int = 0
    redis_cpu_s: float = math.nan
    by_command: dict[str, int] = field(default_factory=dict)
    rss_mb: float = math.nan
    error: str = ""


def fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return f"{value:,.{digits}f}"


def median(values: Iterable[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return statistics.median(kept) if kept else math.nan


def table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(
    fires: list[list[Fire]], idles: list[Idle], args: argparse.Namespace, started: float
) -> None:
    """``fires``: one list per round, each holding every (system, size) of that round."""
    by_key: dict[tuple[str, int], list[Fire]] = {}
    for round_fires in fires:
        for fire in round_fires:
            by_key.setdefault((fire.system, fire.n), []).append(fire)
    sizes = sorted({n for _, n in by_key})

    print("\n## Fire: N one-shot schedules due at the same instant\n")
    header = [
        "system",
        "N",
        "rounds",
        "lag p50 s",
        "lag p99 s",
        "lag max s",
        "all in queue s",
        "fires/s",
        "CPU s",
        "CPU µs/fire",
        "peak RSS MB",
        "Redis CPU s",
        "Redis cmds/fire",
        "exactly once",
        "note",
    ]
    rows = []
    for n in sizes:
        for system in SYSTEMS:
            runs = by_key.get((system, n), [])
            if not runs:
                continue
            notes = sorted({f.error or f.note for f in runs if f.error or f.note})
            if system == TICKWORK:
                commit = median(f.extra.get("last_commit_logged_s", math.nan) for f in runs)
                job = median(f.extra.get("job_enqueued_max_s", math.nan) for f in runs)
                batches = median(f.extra.get("batches", math.nan) for f in runs)
                ahead = median(f.extra.get("cpu_ahead_s", math.nan) for f in runs)
                notes.append(
                    f"last batch logged {fmt(commit)} s; max job enqueued_at lag {fmt(job)} s; "
                    f"{fmt(batches, 0)} batches; CPU s include {fmt(ahead, 2)} s of work "
                    "ahead of the instant"
                )
            notes.append("load " + "/".join(fmt(f.extra.get("load1", math.nan), 1) for f in runs))
            rows.append(
                [
                    system,
                    f"{n:,}",
                    str(len(runs)),
                    fmt(median(f.lag(0.5) for f in runs)),
                    fmt(median(f.lag(0.99) for f in runs)),
                    fmt(median(f.lag(1.0) for f in runs)),
                    fmt(median(f.observed_s for f in runs)),
                    fmt(median(f.fires_per_s for f in runs), 0),
                    fmt(median(f.cpu_s for f in runs), 2),
                    fmt(median(f.cpu_s / max(len(f.lags), 1) * 1e6 for f in runs), 0),
                    fmt(median(f.rss_mb for f in runs), 0),
                    fmt(median(f.redis_cpu_s for f in runs), 2),
                    fmt(median(f.redis_commands / max(len(f.lags), 1) for f in runs), 1),
                    "; ".join(sorted({f.exactly_once for f in runs})),
                    "; ".join(notes),
                ]
            )
    print(table(header, rows))

    print("\n## Ratios tickwork / peer (median of per-round ratios; < 1: tickwork lower)\n")
    metrics: list[tuple[str, Callable[[Fire], float]]] = [
        ("lag p50", lambda f: f.lag(0.5)),
        ("lag p99", lambda f: f.lag(0.99)),
        ("lag max", lambda f: f.lag(1.0)),
        ("all in queue", lambda f: f.observed_s),
        ("fires/s", lambda f: f.fires_per_s),
        ("CPU s", lambda f: f.cpu_s),
        ("peak RSS", lambda f: f.rss_mb),
        ("Redis CPU", lambda f: f.redis_cpu_s),
    ]
    rows = []
    for n in sizes:
        for peer in (RQ_CRON, RQ_SCHEDULER):
            ratios: dict[str, list[float]] = {name: [] for name, _ in metrics}
            partial = False
            for round_fires in fires:
                mine = next((f for f in round_fires if f.system == TICKWORK and f.n == n), None)
                theirs = next((f for f in round_fires if f.system == peer and f.n == n), None)
                if mine is None or theirs is None or mine.error or theirs.error:
                    continue
                partial |= len(theirs.lags) < n
                for name, get in metrics:
                    a, b = get(mine), get(theirs)
                    if b and not math.isnan(a) and not math.isnan(b):
                        ratios[name].append(a / b)
            if not any(ratios.values()):
                continue
            cells = [fmt(median(ratios[name]), 3) for name, _ in metrics]
            rows.append(
                [f"tickwork / {peer}", f"{n:,}", *cells, "peer incomplete" if partial else ""]
            )
    print(table(["ratio", "N", *(name for name, _ in metrics), "note"], rows))

    print("\n## Targets (issue 4)\n")
    rows = []
    for n, limit in ((10_000, 0.5), (100_000, 5.0)):
        runs = by_key.get((TICKWORK, n), [])
        if not runs or args.jitter > 0:  # with jitter the herd is spread on purpose
            continue
        worst = max((f.lag(1.0) for f in runs if f.lags), default=math.nan)
        seen = max((f.observed_s for f in runs), default=math.nan)
        rows.append(
            [
                f"last of {n:,} enqueued within {limit} s",
                f"max lag {fmt(worst)} s; all in queue {fmt(seen)} s",
                "met" if worst <= limit and seen <= limit else "NOT met",
            ]
        )
    for idle in idles:
        if idle.system == TICKWORK and not idle.error:
            share = idle.cpu_s / idle.seconds
            rows.append(
                [
                    f"idle leader with {idle.n:,} schedules costs next to nothing",
                    f"{share * 100:.2f}% of a core, {idle.commands / idle.seconds:.1f} Redis cmd/s",
                    "met" if share < 0.01 else "NOT met",
                ]
            )
    print(table(["target", "tickwork (worst round)", "verdict"], rows))

    if idles:
        print(f"\n## Idle: entries a day away, over {args.idle_seconds:.0f} s\n")
        rows = []
        for idle in idles:
            top = sorted(idle.by_command.items(), key=lambda kv: -kv[1])[:6]
            rows.append(
                [
                    idle.system,
                    f"{idle.n:,}",
                    fmt(idle.cpu_s, 3),
                    f"{idle.cpu_s / idle.seconds * 100:.2f}%" if not idle.error else "—",
                    fmt(idle.commands / idle.seconds, 2) if not idle.error else "—",
                    fmt(idle.redis_cpu_s, 3),
                    fmt(idle.rss_mb, 0),
                    ", ".join(f"{name} {count}" for name, count in top) or idle.error,
                ]
            )
        print(
            table(
                [
                    "system",
                    "entries",
                    "CPU s",
                    "core share",
                    "Redis cmd/s",
                    "Redis CPU s",
                    "RSS MB",
                    "commands in the window",
                ],
                rows,
            )
        )

    if args.jitter > 0:
        for fire in (f for round_fires in fires for f in round_fires):
            if fire.system == TICKWORK and fire.planned_s:
                print(jitter_spread(fire, args.jitter))

    print(f"\nTotal wall time {time.monotonic() - started:.0f} s.")


def environment(args: argparse.Namespace) -> str:
    def ver(name: str) -> str:
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    server = subprocess.run(
        [shutil.which("redis-server") or "redis-server", "--version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.split()
    redis_version = next((w.split("=")[1] for w in server if w.startswith("v=")), "?")
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"# Fire benchmark ({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)\n\n"
        f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {load} at "
        f"start; redis-server {redis_version} (private, AOF everysec); redis-py {ver('redis')}, "
        f"rq {ver('rq')}, rq-scheduler {ver('rq-scheduler')}; tickwork batch size "
        f"{args.batch_size}, rqscheduler --interval {args.rqs_interval} s, peer timeout "
        f"{args.timeout:.0f} s. Workload: one-shot schedules (tickwork, rq-scheduler: a whole "
        "second; rq cron: the cron string of one whole minute), no worker running."
    )


def jitter_spread(fire: Fire, jitter_s: int, buckets: int = 12) -> str:
    """Where ``jitter_s`` put the N runs: planned instants per slice of the window, and
    whether any was planned before its instant or ran before its planned instant."""
    width = jitter_s / buckets
    counts = [0] * buckets
    for offset in fire.planned_s:
        counts[min(int(offset // width), buckets - 1)] += 1
    expected = len(fire.planned_s) / buckets
    rows = [
        [
            f"{i * width:5.1f}-{(i + 1) * width:5.1f}",
            f"{count:,}",
            f"{count / expected:.2f}",
            "#" * round(40 * count / max(counts)),
        ]
        for i, count in enumerate(counts)
    ]
    early = sum(1 for offset in fire.planned_s if offset < 0)
    before_plan = sum(1 for lag in fire.lags if lag < 0)
    return (
        f"\n## Jitter {jitter_s} s: planned instants of {fire.n:,} runs due at one instant\n\n"
        + table(["s after instant", "runs", "/ even share", ""], rows)
        + f"\n\nplanned before the instant: {early}; created before the planned instant: "
        f"{before_plan}; lag after the planned instant p50 {fmt(fire.lag(0.5))} s, "
        f"p99 {fmt(fire.lag(0.99))} s, max {fmt(fire.lag(1.0))} s; exactly once: "
        f"{fire.exactly_once}"
    )
