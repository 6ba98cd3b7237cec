"""The ``tickwork worker`` process: an RQ SimpleWorker, a reaper thread, and a job guard.

Why SimpleWorker (the job runs in the worker process) rather than RQ's forking Worker:

- The heavy work already runs in a child (k6 or the command), in its own session; a second
  process per job (the "work horse") would add a fork per run and isolate nothing more.
- A kill -9 of the worker must end the run with it. With a forking Worker the horse is put in
  its own process group and survives its parent: the run would go on, unobserved, with RQ's
  bookkeeping gone. Here the process that holds the heartbeat is the one that dies, the child
  follows through its parent-death signal, and the reaper ends the run within a bound.
- RQ's job timeout and a cold shutdown (a second SIGTERM) raise inside the job's own frame,
  so the job stops its child and records an ending before it unwinds. A first SIGTERM is a
  warm shutdown: the current run finishes, then the worker exits.

The job guard: RQ imports whatever function a job names. JSON instead of pickle keeps the
data inert, but a job written straight into Redis could still name ``os.system``; the guard
refuses any function but ``run_test`` and ``notify`` (notifications) and every callback,
before anything is imported.

Every worker also takes notify jobs (the queue ``{prefix}-notifications``), after its own
queues: a run due now goes first, a message waits for the next free moment.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from prometheus_client import start_http_server
from rq import SimpleWorker
from rq.job import Job
from rq.serializers import JSONSerializer

from tickwork.errors import JobRefused, StoreUnavailable
from tickwork.store import Executions, Store
from tickwork.store.connection import translated
from tickwork.store.notifications import NOTIFY_FUNCTION, notify_queue_name
from tickwork.store.queue import JOB_FUNCTION
from tickwork.worker import jobs
from tickwork.worker.executor import WorkerConfig
from tickwork.worker.metrics import WorkerMetrics
from tickwork.worker.notify import NotifyOptions

log = logging.getLogger("tickwork.worker")

REAP_BATCH = 100
_BACKOFF_MIN_S = 0.5  # retries while Redis is down or full, doubling up to the max
_BACKOFF_MAX_S = 5.0


class GuardedJob(Job):
    """An RQ job that can only ever call ``tickwork.worker.jobs.run_test`` or ``.notify``."""

    @property
    def func(self) -> Callable[..., Any]:
        allowed: dict[str, Callable[..., Any]] = {
            JOB_FUNCTION: jobs.run_test,
            NOTIFY_FUNCTION: jobs.notify,
        }
        found = allowed.get(self.func_name or "") if self.instance is None else None
        if found is None:
            raise JobRefused(
                f"job {self.id} names {self.func_name!r}; workers run only run_test and notify"
            )
        return found

    @property
    def success_callback(self) -> None:
        return None

    @property
    def failure_callback(self) -> None:
        return None

    @property
    def stopped_callback(self) -> None:
        return None


class TickworkWorker(SimpleWorker):
    """RQ's SimpleWorker that rides out a Redis that is down or full, and whose own cold
    shutdown is not logged as a failed job.

    RQ retries a refused connection while it waits for a job, but quits its loop on anything
    else Redis answers with, such as an out-of-memory refusal of its heartbeat or dequeue.
    Here every step of the loop that talks to Redis waits and tries again instead (logging
    once per change of state); a job dequeued but not claimed when Redis failed is left to
    the leader's stranded-run check, which ends its run.
    """

    _store_problem: str | None = None
    _backoff_s = _BACKOFF_MIN_S

    def dequeue_job_and_maintain_ttl(self, *args: Any, **kwargs: Any) -> Any:
        while True:
            try:
                with translated():
                    result = super().dequeue_job_and_maintain_ttl(*args, **kwargs)
            except StoreUnavailable as exc:
                self._unavailable(exc)
                if self._stop_requested:
                    return None
                continue
            self._available()
            return result

    def heartbeat(self, *args: Any, **kwargs: Any) -> Any:
        try:
            with translated():
                return super().heartbeat(*args, **kwargs)
        except StoreUnavailable as exc:
            self._unavailable(exc, wait=False)  # the next step that needs Redis waits
            return None

    def check_for_suspension(self, *args: Any, **kwargs: Any) -> None:
        try:
            with translated():
                super().check_for_suspension(*args, **kwargs)
        except StoreUnavailable as exc:
            self._unavailable(exc)  # the next dequeue waits for Redis too

    def run_maintenance_tasks(self) -> None:
        try:
            with translated():
                super().run_maintenance_tasks()
        except StoreUnavailable as exc:
            self._unavailable(exc, wait=False)

    def execute_job(self, job: Job, queue: Any) -> Any:
        try:
            with translated():
                return super().execute_job(job, queue)
        except StoreUnavailable as exc:
            log.warning("job_not_executed", extra={"job_id": job.id, "error": str(exc)})
            self._unavailable(exc)
            return None

    def _unavailable(self, exc: StoreUnavailable, *, wait: bool = True) -> None:
        if self._store_problem is None:
            log.warning("store_unavailable", extra={"error": str(exc), "code": exc.code})
        self._store_problem = str(exc)
        if wait:
            time.sleep(self._backoff_s)
            self._backoff_s = min(self._backoff_s * 2, _BACKOFF_MAX_S)

    def _available(self) -> None:
        if self._store_problem is not None:
            log.info("store_available", extra={"after": self._store_problem})
        self._store_problem = None
        self._backoff_s = _BACKOFF_MIN_S

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        # A cold shutdown (a second SIGTERM or SIGINT) raises SystemExit inside the job, which
        # records the run's ending (worker_stopped) as it unwinds: a stop that was asked for,
        # not an error to print a traceback for.
        if len(exc_info) > 1 and isinstance(exc_info[1], SystemExit):
            return
        super().handle_exception(job, *exc_info)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class Reaper:
    """Ends runs whose worker stopped heartbeating; every worker process runs one."""

    def __init__(
        self,
        executions: Executions,
        *,
        interval_s: float,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        self._executions = executions
        self._interval_s = interval_s
        self._clock = clock
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="reaper", daemon=True)
        self._unavailable = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def reap_once(self) -> int:
        try:
            reaped = self._executions.reap(now=self._clock(), limit=REAP_BATCH)
        except StoreUnavailable as exc:
            if not self._unavailable:
                self._unavailable = True
                log.warning("reap_failed", extra={"error": str(exc)})
            return 0
        self._unavailable = False
        if reaped:
            log.warning(
                "runs_reaped",
                extra={"count": len(reaped), "run_ids": [run.id for run in reaped]},
            )
        return len(reaped)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval_s):
            while self.reap_once() == REAP_BATCH:
                pass  # a full batch: more may be waiting


def serve(
    store: Store,
    *,
    queue_names: list[str],
    config: WorkerConfig,
    burst: bool = False,
    metrics_address: tuple[str, int] | None = None,
    notify: NotifyOptions | None = None,
) -> bool:
    """Work the queues until stopped (or, with ``burst``, until they are empty). Whether any
    job was executed. With ``metrics_address``, Prometheus metrics are served there.
    ``notify``: the notification settings (default: NotifyOptions's)."""
    metrics = WorkerMetrics()
    if metrics_address is not None:
        host, port = metrics_address
        start_http_server(port, addr=host, registry=metrics.registry)
    jobs.configure(config, metrics)
    jobs.configure_notifications(notify or NotifyOptions())
    notifications = notify_queue_name(store.prefix)
    queue_names = [*queue_names, *([] if notifications in queue_names else [notifications])]
    reaper = Reaper(store.executions, interval_s=config.heartbeat_s)
    worker = TickworkWorker(
        queue_names,  # names: the worker builds the queues with its job class and serializer
        connection=store.rq_connection,
        serializer=JSONSerializer,
        job_class=GuardedJob,
    )
    reaper.reap_once()
    reaper.start()
    log.info(
        "worker_started",
        extra={"worker": config.name, "rq_name": worker.name, "queues": queue_names},
    )
    try:
        worked: bool = worker.work(burst=burst, logging_level="WARNING")
    finally:
        reaper.stop()
        log.info("worker_stopped", extra={"worker": config.name})
    return worked
