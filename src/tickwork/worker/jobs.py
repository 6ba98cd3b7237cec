"""The RQ entry points. A job carries a run id (or a notification event id) and a key
prefix, as JSON; nothing else.

The worker process installs its WorkerConfig with ``configure`` (the CLI builds it from the
settings); a process that did not (a bare ``rq worker``) runs with the defaults, in which
commands are not allowed and webhooks cannot be signed.
"""

from __future__ import annotations

import re
from typing import Any

from rq import get_current_job

from tickwork.store import Store
from tickwork.worker.executor import WorkerConfig, execute
from tickwork.worker.metrics import WorkerMetrics
from tickwork.worker.notify import Notifier, NotifyOptions

_PREFIX = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_EVENT_ID = re.compile(r"^[a-z]+-[A-Za-z0-9_-]{1,64}$")
_config: WorkerConfig | None = None
_metrics: WorkerMetrics | None = None
_notify: NotifyOptions | None = None


def configure(config: WorkerConfig, metrics: WorkerMetrics | None = None) -> None:
    """Install the configuration ``run_test`` uses in this process, and where it counts."""
    global _config, _metrics
    _config, _metrics = config, metrics


def configure_notifications(options: NotifyOptions) -> None:
    """Install the notification settings ``notify`` uses in this process."""
    global _notify  # noqa: PLW0603
    _notify = options


def current_config() -> WorkerConfig:
    global _config  # noqa: PLW0603
    if _config is None:
        _config = WorkerConfig()
    return _config


def run_test(run_id: int, prefix: str) -> dict[str, Any]:
    """Execute test run ``run_id``, at most once however often the job is delivered."""
    # Job data comes from Redis: check its shape before it names keys.
    if isinstance(run_id, bool) or not isinstance(run_id, int) or run_id < 1:
        raise TypeError(f"run_id must be a positive integer, not {run_id!r}")
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise TypeError(f"prefix {prefix!r} is not a key prefix")
    job = get_current_job()
    if job is None:
        raise RuntimeError("run_test runs inside an RQ job; call execute() directly otherwise")
    ended = execute(Store(job.connection, prefix), run_id, current_config())
    if ended is not None and _metrics is not None:
        _metrics.ended(ended)
    # None: another delivery executed the run, or the run was ended by someone else.
    return {
        "run_id": run_id,
        "status": ended.status if ended else None,
        "result": ended.result if ended else None,
    }


def notify(event_id: str, prefix: str) -> dict[str, Any]:
    """Send the notifications of event ``event_id`` (tickwork.worker.notify): each (event,
    channel) at most once however often the job is delivered."""
    if not isinstance(event_id, str) or not _EVENT_ID.match(event_id):
        raise TypeError(f"event_id {event_id!r} is not a notification event id")
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise TypeError(f"prefix {prefix!r} is not a key prefix")
    job = get_current_job()
    if job is None:
        raise RuntimeError("notify runs inside an RQ job; use worker.notify.Notifier otherwise")
    notifier = Notifier(
        Store(job.connection, prefix), current_config().runners, _notify or NotifyOptions()
    )
    sent = notifier.handle(event_id)
    return {
        "event_id": event_id,
        "deliveries": [
            {"channel_id": d.channel_id, "event_id": d.event_id, "status": d.status} for d in sent
        ],
    }
