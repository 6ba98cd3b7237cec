"""The scheduler's Prometheus metrics, on a registry of its own (no import-time globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.leader = Gauge("tickwork_scheduler_leader", "1 while this process leads", registry=r)
        self.term = Gauge("tickwork_scheduler_term", "Lease term held (0 when standby)", registry=r)
        self.last_loop = Gauge(
            "tickwork_scheduler_last_loop_timestamp_seconds",
            "Unix time of the last loop iteration",
            registry=r,
        )
        self.fires = Counter("tickwork_fires_total", "Occurrences fired as test runs", registry=r)
        self.fire_lag = Histogram(
            "tickwork_fire_lag_seconds",
            "Enqueue time minus occurrence instant",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        self.skipped = Counter(
            "tickwork_skipped_occurrences_total",
            "Occurrences recorded as skipped, by reason",
            ["reason"],
            registry=r,
        )
        self.renewals = Counter("tickwork_lease_renewals_total", "Lease renewals", registry=r)
        self.losses = Counter(
            "tickwork_lease_losses_total", "Leases lost while leading", registry=r
        )
        self.ahead = Gauge(
            "tickwork_fires_ahead",
            "Fires planned and encoded ahead of their instant, not yet committed",
            registry=r,
        )
        self.conflicts = Counter(
            "tickwork_fire_conflicts_total",
            "Schedules left out of a fire batch because they changed meanwhile (re-read at once)",
            registry=r,
        )
