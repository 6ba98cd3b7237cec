"""Worker benchmark: runs per second and queueing delay, tickwork beside plain RQ.

Workload: a trivial command (``true``) per run, so what is measured is the machinery around it.

* tickwork: N run records in status ``created`` with their RQ jobs, written as the scheduler
  writes them (record + job in one MULTI, 100 a transaction), for a load test whose runner is
  ``{"type": "command", "argv": ["true"]}``; W ``python -m tickwork worker`` processes
  (SimpleWorker, JSON jobs, job guard, reaper thread, heartbeat/abort watch, claim at most
  once, private work directory, status writes). Delay = the run's ``created`` -> ``running``.
* plain RQ: the same number of jobs calling ``subprocess.check_call(["true"])`` (JSON
  serializer, same timeouts and TTLs, no tickwork code in the job or the worker), W
  ``rq worker -w rq.worker.SimpleWorker -S json`` processes. Delay = the job's RQ
  ``enqueued_at`` -> ``started_at``.

Two phases per (system, W), workers started and registered first:
* backlog: N jobs enqueued at once; runs/s = N / (last job's ``ended_at`` - first job's
  ``enqueued_at``), from RQ's own timestamps for both systems.
* paced: ``--rate`` jobs a second for ``--paced-seconds``, well under capacity; the delay
  p50/p95 there is the dispatch latency, not time spent behind a backlog.
Redis commands per run (INFO ``total_commands_processed`` delta over the backlog phase, the
benchmark's own polling subtracted approximately by polling the same way for both).

Everything runs against a private ``redis-server`` started here (the shared one is never
touched). Systems alternate, the order rotated each round; a figure is the median over
``--rounds`` and a ratio the median of per-round ratios (tickwork / plain RQ).

    .venv/bin/python bench/workers.py [--runs 400] [--rounds 3] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import redis
from rq import Queue, Worker
from rq.registry import FailedJobRegistry, FinishedJobRegistry
from rq.serializers import JSONSerializer

from tickwork.embedded import EmbeddedServer
from tickwork.store import RunRecord, StatusEntry, Store
from tickwork.store.connection import text_of
from tickwork.store.queue import JOB_TIMEOUT_S, enqueue_run, queue, run_job_id

QUEUE = "bench"
PREFIX = "bench"
LOAD_TEST = 1
CHUNK = 100


@dataclass
class Phase:
    runs_per_s: float
    delays_ms: list[float]
    commands_per_run: float


@dataclass
class Result:
    system: str
    workers: int
    backlog: Phase
    paced: Phase


def _rq_time(raw: bytes | None) -> datetime:
    if raw is None:
        raise SystemExit("an RQ job has no timestamp: did it run?")
    return datetime.fromisoformat(text_of(raw).replace("Z", "+00:00"))


class System:
    name = ""

    def __init__(self, client: redis.Redis, url: str, logs: Path) -> None:
        self.client = client
        self.url = url
        self.logs = logs
        self.queue = Queue(QUEUE, connection=client, serializer=JSONSerializer)

    def prepare(self) -> None:
        pass

    def worker_argv(self) -> list[str]:
        raise NotImplementedError

    def worker_env(self) -> dict[str, str]:
        return dict(os.environ)

    def enqueue(self, count: int) -> list[str]:
        raise NotImplementedError

    def delays_ms(self, job_ids: list[str]) -> list[float]:
        raise NotImplementedError


class Tickwork(System):
    name = "tickwork"

    def prepare(self) -> None:
        self.store = Store(self.client, PREFIX)
        key = self.store.keys.load_test(LOAD_TEST)
        self.client.hset(key, mapping={"id": LOAD_TEST, "stack": 1, "project_id": 1})
        self.client.hset(key, "runner", json.dumps({"type": "command", "argv": ["true"]}))
        self.rq_queue = queue(self.client, QUEUE)
        self.rq_queue.get_redis_server_version()

    def worker_argv(self) -> list[str]:
        return [sys.executable, "-m", "tickwork", "worker", "--queue", QUEUE]

    def worker_env(self) -> dict[str, str]:
        return {
            **os.environ,
            "TICKWORK_REDIS_URL": self.url,
            "TICKWORK_KEY_PREFIX": PREFIX,
            "TICKWORK_QUEUES": json.dumps([QUEUE]),
            "TICKWORK_COMMAND_ALLOWED": '["true"]',
        }

    def enqueue(self, count: int) -> list[str]:
        ids = []
        for start in range(0, count, CHUNK):
            size = min(CHUNK, count - start)
            first = int(self.client.incrby(self.store.keys.ids("run"), size)) - size + 1
            now = datetime.now(UTC)
            with self.client.pipeline() as pipe:
                pipe.multi()
                for run_id in range(first, first + size):
                    run = RunRecord(
                        id=run_id,
                        stack=1,
                        load_test_id=LOAD_TEST,
                        project_id=1,
                        created=now,
                        status_history=(StatusEntry("created", now),),
                        job_id=run_job_id(run_id),
                    )
                    self.store.runs.queue_create(pipe, run)
                    enqueue_run(
                        pipe, self.rq_queue, run_id=run_id, prefix=PREFIX, job_id=run.job_id or ""
                    )
                    ids.append(run_job_id(run_id))
                pipe.execute()
        return ids

    def delays_ms(self, job_ids: list[str]) -> list[float]:
        delays = []
        for job_id in job_ids:
            run = self.store.runs.get_any(int(job_id.removeprefix("run-")))
            if run is None or run.result != "passed":
                raise SystemExit(f"tickwork run {job_id} did not pass: {run}")
            running = next(e.entered for e in run.status_history if e.type == "running")
            delays.append((running - run.created).total_seconds() * 1000)
        return delays


class PlainRq(System):
    name = "plain RQ"

    def worker_argv(self) -> list[str]:
        rq = str(Path(sys.executable).with_name("rq"))
        return [
            rq,
            "worker",
            "-u",
            self.url,
            "-w",
            "rq.worker.SimpleWorker",
            "-S",
            "json",
            "--logging_level",
            "WARNING",
            QUEUE,
        ]

    def enqueue(self, count: int) -> list[str]:
        ids = []
        for start in range(0, count, CHUNK):
            with self.client.pipeline() as pipe:
                for _ in range(min(CHUNK, count - start)):
                    job = self.queue.enqueue_call(
                        "subprocess.check_call",
                        args=(["true"],),
                        timeout=JOB_TIMEOUT_S,
                        result_ttl=86_400,
                        failure_ttl=7 * 86_400,
                        pipeline=pipe,
                    )
                    ids.append(job.id)
                pipe.execute()
        return ids

    def delays_ms(self, job_ids: list[str]) -> list[float]:
        pipe = self.client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(f"rq:job:{job_id}", ["enqueued_at", "started_at"])
        return [
            (_rq_time(started) - _rq_time(enqueued)).total_seconds() * 1000
            for enqueued, started in pipe.execute()
        ]


def _wait(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def _commands(client: redis.Redis) -> int:
    return int(client.info("stats")["total_commands_processed"])


def _span_s(client: redis.Redis, job_ids: list[str]) -> float:
    pipe = client.pipeline(transaction=False)
    for job_id in job_ids:
        pipe.hmget(f"rq:job:{job_id}", ["enqueued_at", "ended_at"])
    rows = pipe.execute()
    first = min(_rq_time(enqueued) for enqueued, _ in rows)
    last = max(_rq_time(ended) for _, ended in rows)
    return (last - first).total_seconds()


def measure(system: System, workers: int, args: argparse.Namespace) -> Result:
    client = system.client
    client.flushdb()
    system.prepare()
    finished = FinishedJobRegistry(QUEUE, connection=client, serializer=JSONSerializer)
    failed = FailedJobRegistry(QUEUE, connection=client, serializer=JSONSerializer)
    log = (system.logs / f"{system.name.replace(' ', '-')}-{workers}.log").open("ab")
    processes = [
        subprocess.Popen(
            system.worker_argv(), env=system.worker_env(), stdout=log, stderr=subprocess.STDOUT
        )
        for _ in range(workers)
    ]
    try:
        _wait(lambda: Worker.count(queue=system.queue) == workers, 30, "workers to register")

        def done(count: int) -> Callable[[], bool]:
            def check() -> bool:
                if failed.count:
                    raise SystemExit(f"{system.name}: {failed.count} jobs failed")
                return finished.count >= count

            return check

        before = _commands(client)
        backlog = system.enqueue(args.runs)
        _wait(done(args.runs), 600, "the backlog")
        commands = _commands(client) - before
        span = _span_s(client, backlog)
        backlog_phase = Phase(args.runs / span, system.delays_ms(backlog), commands / args.runs)

        paced: list[str] = []
        interval = 1 / args.rate
        started = time.monotonic()
        for i in range(int(args.rate * args.paced_seconds)):
            time.sleep(max(0.0, started + i * interval - time.monotonic()))
            paced.extend(system.enqueue(1))
        _wait(done(args.runs + len(paced)), 60, "the paced jobs")
        paced_phase = Phase(0.0, system.delays_ms(paced), 0.0)
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)
        log.close()
    return Result(system.name, workers, backlog_phase, paced_phase)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(results: list[Result], args: argparse.Namespace) -> None:
    print(
        f"\n{args.runs} runs per backlog, paced {args.rate}/s for {args.paced_seconds} s, "
        f"{args.rounds} rounds, median over rounds; ratio = tickwork / plain RQ\n"
    )
    print(
        "| workers | tickwork runs/s | plain RQ runs/s | ratio | tickwork delay p50 / p95 (ms) "
        "| plain RQ delay p50 / p95 (ms) | ratio p50 | Redis cmds/run tickwork / RQ |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for workers in args.workers:
        mine = [r for r in results if r.workers == workers and r.system == "tickwork"]
        peer = [r for r in results if r.workers == workers and r.system == "plain RQ"]

        def med(rows: list[Result], pick: Callable[[Result], float]) -> float:
            return statistics.median(pick(row) for row in rows)

        rate_ratio = statistics.median(
            a.backlog.runs_per_s / b.backlog.runs_per_s for a, b in zip(mine, peer, strict=True)
        )
        delay_ratio = statistics.median(
            _pct(a.paced.delays_ms, 0.5) / _pct(b.paced.delays_ms, 0.5)
            for a, b in zip(mine, peer, strict=True)
        )
        print(
            f"| {workers} "
            f"| {med(mine, lambda r: r.backlog.runs_per_s):.0f} "
            f"| {med(peer, lambda r: r.backlog.runs_per_s):.0f} "
            f"| {rate_ratio:.2f} "
            f"| {med(mine, lambda r: _pct(r.paced.delays_ms, 0.5)):.1f} / "
            f"{med(mine, lambda r: _pct(r.paced.delays_ms, 0.95)):.1f} "
            f"| {med(peer, lambda r: _pct(r.paced.delays_ms, 0.5)):.1f} / "
            f"{med(peer, lambda r: _pct(r.paced.delays_ms, 0.95)):.1f} "
            f"| {delay_ratio:.2f} "
            f"| {med(mine, lambda r: r.backlog.commands_per_run):.0f} / "
            f"{med(peer, lambda r: r.backlog.commands_per_run):.0f} |"
        )
    print(
        "\nbacklog delay (created/enqueued -> running/started) p50, ms: "
        + ", ".join(
            f"{w} worker(s) tickwork {med_backlog(results, 'tickwork', w):.0f} / "
            f"RQ {med_backlog(results, 'plain RQ', w):.0f}"
            for w in args.workers
        )
    )


def med_backlog(results: list[Result], system: str, workers: int) -> float:
    return statistics.median(
        _pct(r.backlog.delays_ms, 0.5)
        for r in results
        if r.system == system and r.workers == workers
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=400, help="jobs in the backlog phase")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="1,2,4", help="worker counts, comma-separated")
    parser.add_argument("--rate", type=float, default=10.0, help="paced jobs per second")
    parser.add_argument("--paced-seconds", type=float, default=3.0)
    args = parser.parse_args(argv)
    args.workers = [int(w) for w in args.workers.split(",")]
    print(
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"redis-server private (AOF everysec)"
    )
    with tempfile.TemporaryDirectory(prefix="tickwork-bench-") as tmp:
        server = EmbeddedServer(Path(tmp) / "redis").start()
        try:
            client = redis.Redis.from_url(server.url)
            logs = Path(tmp) / "logs"
            logs.mkdir()
            systems: list[System] = [
                Tickwork(client, server.url, logs),
                PlainRq(client, server.url, logs),
            ]
            results = []
            for round_no in range(args.rounds):
                for workers in args.workers:
                    order = systems if (round_no + workers) % 2 == 0 else systems[::-1]
                    for system in order:
                        result = measure(system, workers, args)
                        results.append(result)
                        print(
                            f"round {round_no + 1} {system.name:>8} x{workers}: "
                            f"{result.backlog.runs_per_s:6.0f} runs/s, paced delay p50 "
                            f"{_pct(result.paced.delays_ms, 0.5):6.1f} ms",
                            flush=True,
                        )
            report(results, args)
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
