"""The API's Prometheus metrics, on a registry of the app's own (no import-time globals).

Requests are labelled by route template (``/cloud/v6/schedules/{id}``), never by raw path,
so the number of series stays bounded whatever clients send. Schedule counts are read at
scrape time with one ZCARD per stack: no scan, whatever the number of schedules.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tickwork.errors import StoreUnavailable
from tickwork.store import Store

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _ScheduleStates(Collector):
    def __init__(self, store: Store, stacks: frozenset[int]) -> None:
        self._store = store
        self._stacks = sorted(stacks)

    def _family(self) -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "tickwork_schedules",
            "Schedules by state: active (due index: will fire) or inactive (deactivated or "
            "expired), over the stacks the API's tokens cover",
            labels=["state"],
        )

    def describe(self) -> Iterable[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        try:
            active, total = self._store.schedule_counts(self._stacks)
        except StoreUnavailable:
            return  # /metrics still answers; readiness reports the store
        family.add_metric(["active"], active)
        family.add_metric(["inactive"], max(total - active, 0))
        yield family


class ApiMetrics:
    def __init__(self, store: Store, stacks: frozenset[int]) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "tickwork_api_requests_total",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "tickwork_api_request_duration_seconds",
            "HTTP request latency by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.registry.register(_ScheduleStates(store, stacks))


class MetricsMiddleware:
    """Plain ASGI middleware: counts every response, 404s and 413s included."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, observed)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            method = scope["method"] if scope["method"] in _METHODS else "other"
            self.metrics.requests.labels(template, method, str(status)).inc()
            self.metrics.latency.labels(template, method).observe(time.perf_counter() - started)
