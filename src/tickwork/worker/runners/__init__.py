"""Runners by type: k6 (the default), command, webhook, and report (for report schedules).
Each implements ``Runner``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from tickwork.core.runner_specs import CommandSpec, K6Spec, ReportSpec, RunnerSpec, WebhookSpec
from tickwork.store import Store
from tickwork.worker.runners.base import RunInput, Runner, RunnerOptions, Verdict
from tickwork.worker.runners.command import CommandRunner
from tickwork.worker.runners.k6 import K6Runner
from tickwork.worker.runners.webhook import WebhookRunner

__all__ = [
    "REGISTRY",
    "CommandRunner",
    "K6Runner",
    "RunInput",
    "Runner",
    "RunnerOptions",
    "Verdict",
    "WebhookRunner",
    "runner_for",
]


# Keyed by spec class: the spec parser (core.runner_specs) decides the type, and each runner
# takes its own spec class.
REGISTRY: dict[type, Callable[[Any, RunnerOptions], Runner]] = {
    K6Spec: K6Runner,
    CommandSpec: CommandRunner,
    WebhookSpec: WebhookRunner,
}


def _utcnow() -> datetime:
    return datetime.now(UTC)


def runner_for(
    spec: RunnerSpec,
    options: RunnerOptions,
    store: Store | None = None,
    *,
    clock: Callable[[], datetime] = _utcnow,
) -> Runner:
    """The runner of ``spec``. A report runner reads the store, so it needs ``store``, and
    notes on its report when it ran, by ``clock``."""
    if isinstance(spec, ReportSpec):
        # Imported here: the report runner uses the webhook runner's signature, and this
        # package's import must not wait on it.
        from tickwork.worker.runners.report import ReportRunner

        if store is None:
            raise ValueError("a report runner needs the store")
        return ReportRunner(spec, options, store, clock=clock)
    return REGISTRY[type(spec)](spec, options)
