"""The ``tickwork`` command: one entry point, a subcommand per role or task."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from tickwork.core import format_instant
from tickwork.core.instants import InstantError
from tickwork.errors import Problem, SettingsError, ValidationError

if TYPE_CHECKING:
    from tickwork.settings import Settings
    from tickwork.store import Store

EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tickwork",
        description="A distributed scheduler that triggers test runs on time, exactly once.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    preview = commands.add_parser(
        "preview",
        help="print the next occurrences of a schedule",
        description="Print the next occurrences of a schedule, one ISO-8601 UTC instant a "
        "line. BODY is a k6 CreateScheduleRequest JSON document ('-' reads standard input). "
        "An invalid BODY or option prints what is wrong on stderr, one line per field (with "
        "--json, the API's error body), and exits with status 2.",
    )
    preview.add_argument("body", metavar="BODY", help="CreateScheduleRequest JSON, or '-'")
    preview.add_argument(
        "--after",
        metavar="ISO",
        help="list occurrences strictly after this instant: a date-time (UTC without an "
        "offset) or a date (its midnight, UTC); default: now",
    )
    preview.add_argument(
        "--limit",
        type=int,
        default=10,
        metavar="N",
        help="how many occurrences to print (default: 10)",
    )
    preview.add_argument(
        "--json",
        action="store_true",
        help="print the occurrences as a JSON array, and errors as the API's error body",
    )
    preview.set_defaults(handler=_preview)

    api = commands.add_parser(
        "api",
        help="serve the REST API (k6 Cloud v6 schedules, load tests, test runs)",
        description="Serve the REST API with uvicorn: the k6 Cloud REST API v6 resources "
        "under /cloud/v6, /healthz, /readyz, /metrics, the OpenAPI document at /openapi.json "
        "and docs at /docs. Reads TICKWORK_REDIS_URL, TICKWORK_KEY_PREFIX, TICKWORK_TOKENS, "
        "TICKWORK_QUEUES, TICKWORK_MAX_BODY_BYTES and TICKWORK_PUBLIC_URL, and the request "
        "rate limits, shared by every API process through Redis (0: no limit): "
        "TICKWORK_RATE_LIMIT_PER_SECOND and TICKWORK_RATE_LIMIT_BURST per token (and per "
        "client address without one; default 50/s, bursts of 200), "
        "TICKWORK_STACK_RATE_LIMIT_PER_SECOND and TICKWORK_STACK_RATE_LIMIT_BURST per stack "
        "(default 100/s, bursts of 400). Past a limit: 429 rate_limited with Retry-After.",
    )
    api.add_argument(
        "--host", default="127.0.0.1", metavar="H", help="address to listen on (default: 127.0.0.1)"
    )
    api.add_argument(
        "--port", type=int, default=8080, metavar="P", help="port to listen on (default: 8080)"
    )
    api.set_defaults(handler=_api)

    standalone = commands.add_parser(
        "standalone",
        help="run everything in one command (embedded Redis, API, scheduler, worker)",
        description="Run the API, one scheduler and one worker in one command. Without "
        "TICKWORK_REDIS_URL it starts a private, persistent Redis-compatible server with its "
        "data under the data directory; without TICKWORK_TOKENS it makes a token and prints "
        "it, with the export line that points the tickwork CLI at it and the commands (CLI "
        "and curl) that schedule the example load test. SIGTERM or Ctrl-C stops every part.",
    )
    standalone.add_argument(
        "--host",
        default="127.0.0.1",
        metavar="H",
        help="address the API listens on (default: 127.0.0.1)",
    )
    standalone.add_argument(
        "--port",
        type=int,
        default=8080,
        metavar="P",
        help="port the API listens on (default: 8080)",
    )
    standalone.add_argument(
        "--data-dir",
        metavar="DIR",
        type=Path,
        default=None,
        help="where the embedded server and the token live (default: "
        "$TICKWORK_DATA_DIR or ~/.local/share/tickwork)",
    )
    standalone.set_defaults(handler=_standalone)

    scheduler = commands.add_parser(
        "scheduler",
        help="run a scheduler daemon (run two or more; one leads)",
        description="Run a scheduler daemon. Daemons elect a leader through a lease in Redis; "
        "the leader enqueues each due occurrence of each active schedule as exactly one test "
        "run. Reads TICKWORK_REDIS_URL, TICKWORK_KEY_PREFIX, TICKWORK_LEASE_TTL_SECONDS, "
        "TICKWORK_CATCH_UP_WINDOW_SECONDS, TICKWORK_FIRE_BATCH_SIZE, "
        "TICKWORK_FIRE_LOOKAHEAD_SECONDS and TICKWORK_QUEUES (the "
        "first queue receives the runs), and the retention settings (TICKWORK_*_RETENTION_*, "
        "TICKWORK_NOTIFY_RETENTION_DAYS). SIGTERM or SIGINT hands the lease back at once.",
    )
    scheduler.add_argument(
        "--health-host",
        default="127.0.0.1",
        metavar="H",
        help="address of /healthz, /readyz, /metrics (default: 127.0.0.1)",
    )
    scheduler.add_argument(
        "--health-port",
        type=int,
        default=8081,
        metavar="P",
        help="port of the health endpoints (default: 8081; 0 disables)",
    )
    scheduler.set_defaults(handler=_scheduler)

    worker = commands.add_parser(
        "worker",
        help="run a worker that executes test runs (run as many as you like)",
        description="Run an RQ worker that executes queued test runs with their load test's "
        "runner (k6, command or webhook) and records each result. Reads TICKWORK_REDIS_URL, "
        "TICKWORK_KEY_PREFIX, TICKWORK_QUEUES, TICKWORK_RUN_TIMEOUT_SECONDS, "
        "TICKWORK_RUN_HEARTBEAT_SECONDS, TICKWORK_K6_PATH, TICKWORK_WEBHOOK_SECRET, "
        "TICKWORK_EGRESS_ALLOW_PRIVATE, TICKWORK_EGRESS_ALLOWED_CIDRS, "
        "TICKWORK_COMMAND_ALLOWED, TICKWORK_WORK_DIR, and for reports TICKWORK_SMTP_URL (or "
        "TICKWORK_SMTP_HOST and TICKWORK_SMTP_PORT), TICKWORK_SMTP_FROM and "
        "TICKWORK_PUBLIC_URL; it also sends notifications (the queue {prefix}-notifications, "
        "after its own), reading TICKWORK_NOTIFY_QUIET_SECONDS and "
        "TICKWORK_NOTIFY_RETRY_SECONDS. The first SIGTERM or SIGINT lets "
        "the current run finish; a second one stops it, recorded as aborted.",
    )
    worker.add_argument(
        "--queue",
        action="append",
        dest="queues",
        metavar="NAME",
        help="a queue to take runs from, repeatable, in priority order (default: TICKWORK_QUEUES)",
    )
    worker.add_argument("--burst", action="store_true", help="exit once the queues are empty")
    worker.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="H",
        help="address of the Prometheus metrics (default: 127.0.0.1)",
    )
    worker.add_argument(
        "--metrics-port",
        type=int,
        default=0,
        metavar="P",
        help="serve Prometheus metrics on this port (default: 0, off)",
    )
    worker.set_defaults(handler=_worker)

    doctor = commands.add_parser(
        "doctor",
        help="check the configuration and the services it points at",
        description="Check the settings, Redis (reachable, version, AOF persistence, "
        "eviction policy), the k6 binary and this machine's clock against Redis's, and say "
        "what to fix. When a tickwork standalone runs from the data directory "
        "(TICKWORK_DATA_DIR or the default) and TICKWORK_REDIS_URL names no other, the Redis "
        "it started is the one checked. Exits 1 when a check fails, 0 otherwise (warnings "
        "included).",
    )
    doctor.set_defaults(handler=_doctor)

    from tickwork.client_commands import add_parsers

    add_parsers(commands, _settings)
    return parser


def _doctor(args: argparse.Namespace) -> int:
    from tickwork.doctor import exit_status, run_checks
    from tickwork.worker.runners.k6 import find_k6

    findings = run_checks(_settings, find_k6)
    for finding in findings:
        print(finding.line())
    return exit_status(findings)


def _settings() -> Settings:
    from tickwork.settings import load_settings

    return load_settings()


def _refuses_store(store: Store, settings: Settings, role: str) -> bool:
    """Whether ``role`` must not start on this Redis (it may evict keys); said in one line.
    With TICKWORK_ALLOW_EVICTING_REDIS it starts, logs why loudly, and is never ready."""
    from tickwork.errors import StoreUnsafe

    try:
        problem = store.refuse_if_unsafe(allow_evicting=settings.allow_evicting_redis)
    except StoreUnsafe as exc:
        print(
            f"tickwork {role}: {exc} (TICKWORK_ALLOW_EVICTING_REDIS=true runs it anyway, "
            "never ready)",
            file=sys.stderr,
        )
        return True
    if problem is not None:
        logging.getLogger("tickwork").error("store_unsafe", extra={"problem": problem})
    return False


def _standalone(args: argparse.Namespace) -> int:
    from tickwork import standalone
    from tickwork.logs import configure_logging

    configure_logging("WARNING")
    return standalone.run(
        host=args.host, port=args.port, data_dir=args.data_dir or standalone.default_data_dir()
    )


def _api(args: argparse.Namespace) -> int:
    from tickwork.api.server import serve
    from tickwork.logs import configure_logging
    from tickwork.store import Store, connect

    settings = _settings()
    configure_logging()
    client = connect(settings.redis_url)
    try:
        if _refuses_store(Store(client, settings.key_prefix), settings, "api"):
            return 1
    finally:
        client.close()
    serve(settings, host=args.host, port=args.port)
    return 0


def _scheduler(args: argparse.Namespace) -> int:
    from tickwork.logs import configure_logging
    from tickwork.scheduler.firing import Firer
    from tickwork.scheduler.health import serve_health
    from tickwork.scheduler.housekeeping import RetentionPolicy
    from tickwork.scheduler.loop import Scheduler
    from tickwork.store import Store, connect
    from tickwork.store.queue import queue

    settings = _settings()
    configure_logging()
    client = connect(settings.redis_url)
    store = Store(client, settings.key_prefix)
    if _refuses_store(store, settings, "scheduler"):
        return 1
    firer = Firer(
        store,
        queue(client, settings.queues[0]),
        clock=_utcnow,
        catch_up=timedelta(seconds=settings.catch_up_window_seconds),
        batch_size=settings.fire_batch_size,
        lookahead=timedelta(seconds=settings.fire_lookahead_seconds),
    )
    retention = RetentionPolicy(
        run_retention=timedelta(days=settings.run_retention_days)
        if settings.run_retention_days
        else None,
        runs_per_load_test=settings.runs_per_load_test or None,
        max_queued=timedelta(seconds=settings.run_max_queued_seconds),
        audit_retention=timedelta(days=settings.audit_retention_days)
        if settings.audit_retention_days
        else None,
        notification_retention=timedelta(days=settings.notify_retention_days)
        if settings.notify_retention_days
        else None,
    )
    daemon = Scheduler(
        store,
        firer,
        lease_ttl=timedelta(seconds=settings.lease_ttl_seconds),
        retention=retention,
    )
    health = (
        serve_health(daemon, store, args.health_host, args.health_port)
        if args.health_port
        else None
    )
    _on_signals(daemon.stop)
    try:
        daemon.run()
    finally:
        if health is not None:
            health.shutdown()
    return 0


def _worker(args: argparse.Namespace) -> int:
    import logging
    from pathlib import Path

    from tickwork.core.egress import EgressPolicy
    from tickwork.logs import configure_logging
    from tickwork.store import Store, connect
    from tickwork.worker.daemon import serve
    from tickwork.worker.executor import WorkerConfig
    from tickwork.worker.notify import NotifyOptions
    from tickwork.worker.reports.mail import SmtpOptions
    from tickwork.worker.runners import RunnerOptions

    settings = _settings()
    configure_logging()
    # RQ adds its own stdout handler unless its logger already has one: give it ours.
    rq_logger = logging.getLogger("rq")
    rq_logger.handlers[:] = logging.getLogger("tickwork").handlers
    rq_logger.propagate = False
    secret = settings.webhook_secret
    smtp = None
    if settings.smtp_url is not None:
        smtp = SmtpOptions.from_url(settings.smtp_url.get_secret_value(), sender=settings.smtp_from)
    elif settings.smtp_host:
        smtp = SmtpOptions(settings.smtp_host, settings.smtp_port, sender=settings.smtp_from)
    config = WorkerConfig(
        runners=RunnerOptions(
            k6_path=settings.k6_path,
            command_allowed=tuple(settings.command_allowed),
            webhook_secret=secret.get_secret_value() if secret is not None else None,
            egress=EgressPolicy.from_settings(
                allow_private=settings.egress_allow_private,
                allowed_cidrs=settings.egress_allowed_cidrs,
            ),
            smtp=smtp,
            public_url=settings.public_url,
        ),
        default_time_limit_s=settings.run_timeout_seconds,
        heartbeat_s=settings.run_heartbeat_seconds,
        work_dir=Path(settings.work_dir) if settings.work_dir else None,
    )
    store = Store(connect(settings.redis_url), settings.key_prefix)
    if _refuses_store(store, settings, "worker"):
        return 1
    serve(
        store,
        queue_names=args.queues or settings.queues,
        config=config,
        burst=args.burst,
        metrics_address=(args.metrics_host, args.metrics_port) if args.metrics_port else None,
        notify=NotifyOptions(
            quiet_s=settings.notify_quiet_seconds, retry_s=settings.notify_retry_seconds
        ),
    )
    return 0


def _on_signals(stop: Callable[[], None]) -> None:
    def handler(signum: int, frame: object) -> None:
        stop()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _preview(args: argparse.Namespace) -> int:
    from tickwork.client import instant_argument
    from tickwork.core.explain import explained
    from tickwork.dialects.k6 import parse_create_schedule

    body = sys.stdin.read() if args.body == "-" else args.body
    try:
        after = instant_argument(args.after) if args.after else datetime.now(UTC)
    except InstantError as exc:
        problem = Problem(exc.code, "--after", str(exc))
        return _preview_error(args, "--after is not valid.", [problem])
    if args.limit < 0:
        problem = Problem("too_small", "--limit", "--limit must be at least 0.")
        return _preview_error(args, "--limit is not valid.", [problem])
    try:
        _, schedule = parse_create_schedule(body)
    except ValidationError as exc:
        return _preview_error(args, exc.message, exc.problems)
    items = explained(schedule, after=after, before=None, limit=args.limit)
    if args.json:
        print(json.dumps([format_instant(item.instant) for item in items]))
    else:
        for item in items:
            # The instant first (scripts read the first column), then anything unusual.
            notes = "; ".join(note.message for note in item.notes)
            print(
                f"{format_instant(item.instant)}  # {notes}"
                if notes
                else format_instant(item.instant)
            )
    return 0


def _preview_error(args: argparse.Namespace, message: str, problems: Sequence[Problem]) -> int:
    """What is wrong, as the client commands print it (one line per field), or with --json
    the API's error body."""
    from tickwork.client import problem_lines
    from tickwork.dialects.k6 import error_body

    if args.json:
        body = error_body("validation_error", message, problems=list(problems))
        print(json.dumps(body), file=sys.stderr)
    else:
        print(f"tickwork: {problem_lines(message, problems)}", file=sys.stderr)
    return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = args.handler
    try:
        # Every command but doctor (which reports them among its findings) checks the
        # settings before it does anything: a bad one stops it at start, whatever it reads.
        if args.command != "doctor":
            _settings()
        result: int = handler(args)
    except SettingsError as exc:
        # One line per problem; a setting's line starts with its variable's name.
        for line in str(exc).splitlines():
            print(line if line.startswith("TICKWORK_") else f"tickwork: {line}", file=sys.stderr)
        return EXIT_USAGE
    return result


if __name__ == "__main__":
    raise SystemExit(main())
