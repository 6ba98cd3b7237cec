"""The ``runs`` client commands: list, show (and follow), start (and wait), abort, trend,
summary and output of test runs, written for people; ``--json`` keeps the API's own JSON.

Following a run polls it until it ends: a status line (rewritten in place on a terminal, a
line per change elsewhere), then the run as ``runs show`` writes it. The exit status is then
0 when it passed, 1 when it failed, 2 otherwise (an error, an abort, a skip, or the API could
not be asked), so ``runs start ID --wait`` fits a CI job. Ctrl-C stops following, not the run.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO
from urllib.parse import urlencode

from tickwork.client import (
    ApiError,
    Client,
    Shown,
    bytes_text,
    fields,
    instant_argument,
    ms_text,
    number_text,
    percent_text,
    seconds_text,
    short_instant,
    table,
)
from tickwork.core.instants import InstantError, format_instant

EXIT_PASSED, EXIT_FAILED, EXIT_OTHER = 0, 1, 2
EXIT_INTERRUPTED = 130
DEFAULT_LIMIT = 20
POLL_S = 1.0
PREFETCH_OVER = 10
"""More load test names than this to show: they are read in one listing."""
OUTPUT_LINES = 8
"""Lines of its output shown with a run that ended in error."""
QUIET_REPORT_S = 30
"""Off a terminal, a still-running run is reported again every this many seconds."""

FINISHED = frozenset({"completed", "aborted", "skipped"})
STATUSES = (
    "created",
    "queued",
    "initializing",
    "running",
    "processing_metrics",
    "completed",
    "aborted",
    "skipped",
)
RESULTS = ("passed", "failed", "error")
_LABELS = {
    "created": "queued, waiting for a worker",
    "queued": "queued, waiting for a worker",
    "initializing": "starting",
    "processing_metrics": "processing metrics",
}
# Metrics whose trends k6 measures in milliseconds, and rate metrics (0 to 1).
_TIME_METRICS = frozenset(
    {
        "http_req_duration",
        "http_req_blocked",
        "http_req_connecting",
        "http_req_tls_handshaking",
        "http_req_sending",
        "http_req_waiting",
        "http_req_receiving",
        "iteration_duration",
        "group_duration",
        "grpc_req_duration",
        "ws_connecting",
        "ws_session_duration",
        "ws_ping",
    }
)
_RATE_METRICS = frozenset({"checks", "http_req_failed", "browser_http_req_failed"})
_DATA_METRICS = frozenset({"data_sent", "data_received"})

Action = Callable[[Client, argparse.Namespace], Shown]


@dataclass
class LoadTestNames:
    """Load test names by id, each asked of the API once ("(deleted)" for one gone)."""

    client: Client
    known: dict[int, str] = field(default_factory=dict)

    def remember(self, load_tests: list[dict[str, Any]]) -> None:
        self.known.update((int(t["id"]), str(t["name"])) for t in load_tests)

    def prefetch(self, load_test_ids: set[int]) -> None:
        """Many names are read in one listing rather than one request each."""
        if len(load_test_ids - self.known.keys()) > PREFETCH_OVER:
            self.remember(self.client.all_pages("/cloud/v6/load_tests"))

    def __call__(self, load_test_id: int) -> str:
        if load_test_id not in self.known:
            try:
                test = self.client.call("GET", f"/cloud/v6/load_tests/{load_test_id}")
                self.known[load_test_id] = str(test["name"])
            except ApiError as exc:
                if exc.status != 404:
                    raise
                self.known[load_test_id] = "(deleted)"
        return f"{load_test_id} {self.known[load_test_id]}"


def add_run_actions(actions: Any, action: Callable[..., argparse.ArgumentParser]) -> None:
    """The ``runs`` subcommands; ``action(actions, name, help, fn, ids)`` adds one."""
    listing = action(actions, "list", "list test runs, newest first (a page: --limit)", runs_list)
    listing.add_argument("--load-test", type=int, metavar="ID", help="only this load test's runs")
    listing.add_argument(
        "--status",
        choices=(*STATUSES, *RESULTS),
        metavar="STATUS",
        help="only runs with this status or result: " + ", ".join((*STATUSES, *RESULTS)),
    )
    listing.add_argument(
        "--since",
        metavar="WHEN",
        help="only runs created at or after WHEN: an ISO-8601 date-time (UTC without an "
        "offset), a date (its midnight UTC), or a span back from now (90m, 6h, 2d)",
    )
    listing.add_argument(
        "--limit",
        type=_positive,
        default=DEFAULT_LIMIT,
        metavar="N",
        help=f"at most N runs (default: {DEFAULT_LIMIT})",
    )

    show = action(
        actions,
        "show",
        "show a test run: status, reason, k6 thresholds (✓/✗) and key metrics",
        run_show,
    )
    show.add_argument("run_id", type=int, nargs="?", metavar="RUN_ID")
    show.add_argument(
        "--load-test",
        type=int,
        metavar="ID",
        help="instead of RUN_ID: this load test's latest run (with --follow, its first when "
        "it has none yet)",
    )
    show.add_argument(
        "--follow",
        action="store_true",
        help="follow the run until it ends; exit 0 passed, 1 failed, 2 otherwise "
        "(Ctrl-C stops following, not the run)",
    )

    start = action(actions, "start", "start a load test now", run_start, ("load_test_id",))
    start.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="K6-Idempotency-Key: the same key within 10 minutes gives the same test run",
    )
    start.add_argument(
        "--wait",
        action="store_true",
        help="follow the run until it ends; exit 0 passed, 1 failed, 2 otherwise "
        "(Ctrl-C stops waiting, not the run)",
    )
    action(actions, "abort", "abort a test run, and say what became of it", run_abort, ("run_id",))
    trend = action(
        actions,
        "trend",
        "key metrics (p95, p99, failures) of a load test's last finished runs, newest first",
        run_trend,
        ("load_test_id",),
    )
    trend.add_argument(
        "--limit", type=_positive, default=10, metavar="N", help="how many runs (default: 10)"
    )
    action(
        actions,
        "summary",
        "a finished run's k6 thresholds and key metrics only",
        run_summary,
        ("run_id",),
    )
    action(
        actions,
        "output",
        "the end of what a run's k6 (or command) printed",
        run_output,
        ("run_id",),
    )


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


# runs list


def runs_list(client: Client, args: argparse.Namespace) -> Shown:
    params = {"$orderby": "created desc"}
    if args.since:
        try:
            since = instant_argument(args.since, now=datetime.now(UTC))
        except InstantError as exc:
            raise ApiError(0, f"--since: {exc}") from None
        params["created_after"] = format_instant(since.astimezone(UTC))
    base = (
        f"/cloud/v6/load_tests/{args.load_test}/test_runs"
        if args.load_test is not None
        else "/cloud/v6/test_runs"
    )
    runs, more = _newest(client, base, params, args.limit, args.status)
    names = LoadTestNames(client)
    names.prefetch({run["test_id"] for run in runs})
    rows = [_row(run, names) for run in runs]
    columns = ("id", "load_test", "status", "result", "created", "duration", "trigger")
    text = table(rows, columns) if rows else "no test runs"
    if more:
        text += f"\n(the newest {len(rows)}: --limit N lists more)"
    return Shown(raw=runs, text=text)


def _newest(
    client: Client, base: str, params: dict[str, str], limit: int, status: str | None
) -> tuple[list[dict[str, Any]], bool]:
    """Up to ``limit`` runs, newest first (only those of ``status`` when given, which the
    API does not filter on: pages are read until enough match), and whether the list was
    cut at ``limit``."""
    found: list[dict[str, Any]] = []
    skip = 0
    top = min(max(limit, 100), 1000) if status else limit
    while True:
        query = urlencode({**params, "$skip": str(skip), "$top": str(top)}, safe="$")
        page = client.call("GET", f"{base}?{query}")
        values: list[dict[str, Any]] = page["value"]
        found += [r for r in values if status in (None, r.get("status"), r.get("result"))]
        skip += len(values)
        more = "@nextLink" in page and bool(values)
        if len(found) >= limit or not more:
            return found[:limit], len(found) > limit or (len(found) >= limit and more)


def _row(run: dict[str, Any], names: LoadTestNames) -> dict[str, Any]:
    if run.get("schedule_id") is not None:
        trigger = f"schedule {run['schedule_id']}"
    else:
        trigger = run.get("started_by") or "-"
    return {
        "id": run["id"],
        "load_test": names(run["test_id"]),
        "status": run["status"],
        "result": run.get("result"),
        "created": short_instant(run["created"]),
        "duration": _duration(run),
        "trigger": trigger,
    }


def _duration(run: dict[str, Any]) -> str | None:
    ran = any(entry.get("type") == "running" for entry in run.get("status_history") or [])
    return seconds_text(run.get("execution_duration") or 0) if ran else None


# runs show / summary / output


def run_show(client: Client, args: argparse.Namespace) -> Shown:
    if (args.run_id is None) == (args.load_test is None):
        raise ApiError(0, "name a run: RUN_ID, or --load-test ID for its latest run")
    run_id: int | None = args.run_id
    try:
        if run_id is None:
            run_id = _latest_run(client, args.load_test, wait=args.follow, out=sys.stderr)
        if args.follow:
            run = follow(client, run_id, out=sys.stderr)
            return _shown(client, run, status=exit_status(run))
    except KeyboardInterrupt:
        return _interrupted(run_id)
    run = client.call("GET", f"/cloud/v6/test_runs/{run_id}")
    return _shown(client, run)


def run_summary(client: Client, args: argparse.Namespace) -> Shown:
    summary = client.call("GET", f"/cloud/v6/test_runs/{args.run_id}/summary")
    lines = summary_lines(summary)
    return Shown(raw=summary, text="\n".join(lines) if lines else "no k6 summary")


def run_output(client: Client, args: argparse.Namespace) -> Shown:
    output = client.call("GET", f"/cloud/v6/test_runs/{args.run_id}/output")
    tail = output.get("output_tail")
    return Shown(raw=output, text=tail.rstrip("\n") if tail else "(no output kept)")


def _shown(client: Client, run: dict[str, Any], *, status: int = EXIT_PASSED) -> Shown:
    summary = output = None
    if run["status"] in FINISHED:
        summary = client.call("GET", f"/cloud/v6/test_runs/{run['id']}/summary")
    if run.get("result") == "error" and summary is not None and summary.get("runner"):
        # Why it could not run is in what it printed (a script's syntax error, say).
        tail = client.call("GET", f"/cloud/v6/test_runs/{run['id']}/output")["output_tail"]
        output = [line for line in (tail or "").splitlines() if line.strip()][-OUTPUT_LINES:]
    text = render_run(run, summary, LoadTestNames(client), output=output)
    return Shown(raw=run, text=text, status=status)


def render_run(
    run: dict[str, Any],
    summary: dict[str, Any] | None,
    names: Callable[[int], str],
    *,
    output: list[str] | None = None,
) -> str:
    """A run for people: what it is, how it ended and why, what its k6 found, and for a run
    that could not run the last lines of its output."""
    if run.get("schedule_id") is not None:
        trigger = f"schedule {run['schedule_id']}, occurrence {run.get('scheduled_for')}"
    else:
        trigger = f"started by {run.get('started_by') or '-'}"
    status = run["status"] + (f", {run['result']}" if run.get("result") else "")
    pairs: list[tuple[str, Any]] = [
        ("run", run["id"]),
        ("load test", names(run["test_id"])),
        ("trigger", trigger),
        ("status", status),
    ]
    message = ((run.get("status_details") or {}).get("extra") or {}).get("message")
    if message and message != run.get("result"):
        # "failed: k6 thresholds were crossed": the result is on the line above.
        pairs.append(("reason", message.removeprefix(f"{run.get('result')}: ")))
    pairs.append(("created", run["created"]))
    if run.get("ended"):
        ran = _duration(run)
        pairs.append(("ended", run["ended"] + (f" (ran {ran})" if ran else "")))
    elif run["status"] == "running":
        pairs.append(("running for", seconds_text(run.get("execution_duration") or 0)))
    if summary is not None and summary.get("runner") == "k6":
        version = summary.get("k6_version") or "version unknown"
        pairs.append(("k6", f"{version}, exit code {summary.get('exit_code')}"))
    lines = [fields(pairs)]
    if summary is not None:
        lines += summary_lines(summary)
    if output:
        lines.append(f"output (its last lines; tickwork runs output {run['id']} for more):")
        lines += [f"  {line}" for line in output]
    return "\n".join(lines)


def summary_lines(summary: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    thresholds = summary.get("thresholds") or []
    if thresholds:
        lines.append("thresholds:")
        width_metric = max(len(t["metric"]) for t in thresholds)
        width_expression = max(len(t["expression"]) for t in thresholds)
        for threshold in thresholds:
            mark = "✓" if threshold["ok"] else "✗"
            metric = threshold["metric"].ljust(width_metric)
            expression = threshold["expression"].ljust(width_expression)
            lines.append(f"  {mark} {metric}  {expression}  {_observed(threshold)}".rstrip())
    metrics = summary.get("metrics")
    if metrics:
        lines.append("metrics:")
        lines += [f"  {line}" for line in _metric_lines(metrics).splitlines()]
    if summary.get("note"):
        lines.append(f"note: {summary['note']}")
    return lines


def _unit(metric: str, aggregation: str | None) -> Callable[[float], str]:
    base = metric.split("{", 1)[0]
    if aggregation in ("count", "value") and base in _DATA_METRICS:
        return bytes_text
    if aggregation == "rate" and base in _RATE_METRICS:
        return percent_text
    if aggregation == "rate":
        return lambda value: f"{number_text(value)}/s"
    if base in _TIME_METRICS and aggregation not in ("count", "value"):
        return ms_text
    return number_text


def _observed(threshold: dict[str, Any]) -> str:
    aggregation = threshold.get("aggregation")
    observed = threshold.get("observed")
    if aggregation is None:
        return ""
    if observed is None:
        return f"(k6's summary does not list {aggregation})"
    unit = _unit(threshold["metric"], aggregation)
    text = f"{aggregation} = {unit(observed)}"
    excess = threshold.get("excess")
    if excess is not None:
        # Percent points for rates: 48.21 % against < 40 % is 8.21 points over.
        amount = unit(excess).replace(" %", " points") if unit is percent_text else unit(excess)
        side = {"<": "over", "<=": "over", ">": "under", ">=": "under"}.get(
            threshold.get("operator") or "", "off"
        )
        text += f", {amount} {side} the limit"
    return text


def _metric_lines(metrics: dict[str, Any]) -> str:
    pairs: list[tuple[str, Any]] = []
    durations = metrics.get("http_req_duration")
    if durations:
        pairs.append(
            (
                "http_req_duration",
                "  ".join(
                    f"{name} {ms_text(durations[name])}"
                    for name in ("p50", "p90", "p95", "p99", "max")
                    if durations.get(name) is not None
                ),
            )
        )
    if metrics.get("http_req_failed_rate") is not None:
        of = f" of {metrics['http_reqs']} requests" if metrics.get("http_reqs") is not None else ""
        pairs.append(("http_req_failed", percent_text(metrics["http_req_failed_rate"]) + of))
    if not durations:
        pairs.append(("http", "no HTTP requests"))
    pairs.append(("iterations", metrics.get("iterations")))
    pairs.append(("vus_max", metrics.get("vus_max")))
    sent, received = metrics.get("data_sent_bytes"), metrics.get("data_received_bytes")
    if sent is not None or received is not None:
        pairs.append(
            (
                "data",
                f"{bytes_text(sent or 0)} sent, {bytes_text(received or 0)} received",
            )
        )
    if metrics.get("checks_passed") is not None:
        pairs.append(
            ("checks", f"{metrics['checks_passed']} passed, {metrics.get('checks_failed')} failed")
        )
    return fields(pairs)


# runs start / abort / trend


def run_start(client: Client, args: argparse.Namespace) -> Shown:
    headers = {"K6-Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    started = client.call(
        "POST", f"/cloud/v6/load_tests/{args.load_test_id}/start", headers=headers
    )
    if not args.wait:
        return Shown(
            raw=started,
            text=f"started run {started['id']} of load test {args.load_test_id} "
            f"(tickwork runs show {started['id']} --follow follows it)",
        )
    try:
        print(f"started run {started['id']}", file=sys.stderr, flush=True)
        run = follow(client, started["id"], out=sys.stderr)
    except KeyboardInterrupt:
        return _interrupted(started["id"])
    return _shown(client, run, status=exit_status(run))


def run_abort(client: Client, args: argparse.Namespace) -> Shown:
    client.call("POST", f"/cloud/v6/test_runs/{args.run_id}/abort")
    run = client.call("GET", f"/cloud/v6/test_runs/{args.run_id}")
    if run["status"] == "aborted":
        text = f"aborted run {args.run_id}"
    else:
        text = (
            f"asked run {args.run_id} to stop: it is {run['status']}, and its worker stops it "
            f"within seconds (tickwork runs show {args.run_id} --follow waits for the end)"
        )
    return Shown(raw=run, text=text)


def run_trend(client: Client, args: argparse.Namespace) -> Shown:
    trend = client.call("GET", f"/cloud/v6/load_tests/{args.load_test_id}/trend?limit={args.limit}")
    rows = []
    for point in trend["value"]:
        metrics = point.get("metrics") or {}
        durations = metrics.get("http_req_duration") or {}
        failed = metrics.get("http_req_failed_rate")
        rows.append(
            {
                "run": point["test_run_id"],
                "created": short_instant(point["created"]),
                "result": point.get("result") or point["status"],
                "duration": seconds_text(point["execution_duration"]),
                **{
                    name: ms_text(durations[name]) if durations.get(name) is not None else None
                    for name in ("p95", "p99", "max")
                },
                "http_failed": percent_text(failed) if failed is not None else None,
                "iterations": metrics.get("iterations"),
                "crossed": ", ".join(point["thresholds_crossed"]) or None,
            }
        )
    columns = (
        "run",
        "created",
        "result",
        "duration",
        "p95",
        "p99",
        "max",
        "http_failed",
        "iterations",
        "crossed",
    )
    text = table(rows, columns) if rows else f"load test {args.load_test_id} has no finished runs"
    return Shown(raw=trend, text=text)


# following


def exit_status(run: dict[str, Any]) -> int:
    if run.get("result") == "passed":
        return EXIT_PASSED
    if run.get("result") == "failed":
        return EXIT_FAILED
    return EXIT_OTHER


def status_line(run: dict[str, Any]) -> str:
    status = run["status"]
    if status in FINISHED:
        text = status + (f", {run['result']}" if run.get("result") else "")
        ran = _duration(run)
        return f"run {run['id']}: {text}" + (f" (ran {ran})" if ran else "")
    text = _LABELS.get(status, status)
    if status == "running":
        text += f", {seconds_text(run.get('execution_duration') or 0)}"
    return f"run {run['id']}: {text}"


def follow(
    client: Client,
    run_id: int,
    *,
    out: TextIO,
    poll_s: float = POLL_S,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the run until it has ended, writing its status to ``out``; the ended run."""
    live = out.isatty()
    last: tuple[str, int] | None = None
    while True:
        run: dict[str, Any] = client.call("GET", f"/cloud/v6/test_runs/{run_id}")
        line = status_line(run)
        if live:
            out.write("\r\033[K" + line + ("\n" if run["status"] in FINISHED else ""))
            out.flush()
        else:
            seen = (run["status"], (run.get("execution_duration") or 0) // QUIET_REPORT_S)
            if seen != last:
                print(line, file=out, flush=True)
                last = seen
        if run["status"] in FINISHED:
            return run
        sleep(poll_s)


def _latest_run(client: Client, load_test_id: int, *, wait: bool, out: TextIO) -> int:
    """The load test's latest run; with ``wait``, the first to come when it has none."""
    path = f"/cloud/v6/load_tests/{load_test_id}/test_runs?$orderby=created%20desc&$top=1"
    said = False
    while True:
        runs = client.call("GET", path)["value"]
        if runs:
            run_id: int = runs[0]["id"]
            return run_id
        if not wait:
            raise ApiError(404, f"load test {load_test_id} has no test runs yet")
        if not said:
            print(_waiting_for(client, load_test_id), file=out, flush=True)
            said = True
        time.sleep(POLL_S)


def _waiting_for(client: Client, load_test_id: int) -> str:
    try:
        schedule = client.call("GET", f"/cloud/v6/load_tests/{load_test_id}/schedule")
    except ApiError as exc:
        if exc.status != 404:
            raise
        return (
            f"load test {load_test_id} has no runs and no schedule: waiting for one to be "
            "started (Ctrl-C stops waiting)"
        )
    due = schedule.get("next_run") or "not planned"
    return f"waiting for load test {load_test_id}'s first run (next due: {due})"


def _interrupted(run_id: int | None) -> Shown:
    if run_id is None:
        print("\ntickwork: stopped waiting for a run", file=sys.stderr)
    else:
        print(
            f"\ntickwork: stopped following run {run_id}; it goes on "
            f"(tickwork runs abort {run_id} stops it)",
            file=sys.stderr,
        )
    return Shown(status=EXIT_INTERRUPTED)
