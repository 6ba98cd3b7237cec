"""The worker's Prometheus metrics, on a registry of its own, served with --metrics-port."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from tickwork.core.runs import RunRecord

DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200)
DELAY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class WorkerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.runs = Counter(
            "tickwork_runs_total",
            "Runs this worker ended, by status and result",
            ["status", "result"],
            registry=r,
        )
        self.duration = Histogram(
            "tickwork_run_duration_seconds",
            "Time from running to ended",
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.delay = Histogram(
            "tickwork_run_queue_delay_seconds",
            "Time from created to running",
            buckets=DELAY_BUCKETS,
            registry=r,
        )

    def ended(self, run: RunRecord) -> None:
        self.runs.labels(run.status, run.result or "").inc()
        running = next((e.entered for e in run.status_history if e.type == "running"), None)
        if running is not None:
            self.delay.observe(max(0.0, (running - run.created).total_seconds()))
            if run.ended is not None:
                self.duration.observe(max(0.0, (run.ended - running).total_seconds()))
