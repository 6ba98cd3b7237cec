"""The ``schedules`` and ``runs`` subcommands: a small client of the API.

Tables for people; ``--json`` prints the API's own JSON for scripts. Where to connect comes
from TICKWORK_API_URL, TICKWORK_API_TOKEN and TICKWORK_STACK_ID, or the flags.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from tickwork.client import ApiError, Client, table

SCHEDULE_COLUMNS = (
    "id",
    "load_test_id",
    "deactivated",
    "starts",
    "cron",
    "recurrence_rule",
    "next_run",
)
RUN_COLUMNS = (
    "id",
    "test_id",
    "status",
    "result",
    "created",
    "ended",
    "scheduled_for",
    "started_by",
)

Action = Callable[[Client, argparse.Namespace], Any]


def add_parsers(commands: Any, settings_loader: Callable[[], Any]) -> None:
    schedules = commands.add_parser(
        "schedules",
        help="list, show, set, activate, deactivate and delete schedules through the API",
        description="A client of the API's schedules. Connects to TICKWORK_API_URL with "
        "TICKWORK_API_TOKEN in stack TICKWORK_STACK_ID (or --api-url, --token, --stack).",
    )
    actions = schedules.add_subparsers(dest="action", required=True, metavar="ACTION")
    _action(actions, "list", "list the stack's schedules", _schedules_list)
    _action(actions, "show", "show one schedule", _schedule_show, ("schedule_id",))
    set_ = _action(
        actions,
        "set",
        "set a load test's schedule from a CreateScheduleRequest "
        "JSON (BODY, or '-' for standard input)",
        _schedule_set,
        ("load_test_id",),
    )
    set_.add_argument("body", metavar="BODY")
    _action(actions, "activate", "activate a schedule", _schedule_activate, ("schedule_id",))
    _action(actions, "deactivate", "deactivate a schedule", _schedule_deactivate, ("schedule_id",))
    _action(actions, "delete", "delete a schedule", _schedule_delete, ("schedule_id",))

    runs = commands.add_parser(
        "runs",
        help="list, show, start and abort test runs through the API",
        description="A client of the API's test runs (same connection settings as "
        "`tickwork schedules`).",
    )
    actions = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = _action(actions, "list", "list test runs, newest last", _runs_list)
    listing.add_argument(
        "--load-test", type=int, metavar="ID", help="only the runs of this load test"
    )
    _action(actions, "show", "show one test run", _run_show, ("run_id",))
    start = _action(actions, "start", "start a load test now", _run_start, ("load_test_id",))
    start.add_argument(
        "--idempotency-key",
        metavar="KEY",
        help="K6-Idempotency-Key: the same key within 10 minutes gives the same test run",
    )
    _action(actions, "abort", "abort a test run", _run_abort, ("run_id",))

    for parser in (schedules, runs):
        parser.set_defaults(handler=lambda args: _dispatch(args, settings_loader))


def _action(
    actions: Any, name: str, help_text: str, action: Action, ids: tuple[str, ...] = ()
) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = actions.add_parser(
        name, help=help_text, description=help_text
    )
    for dest in ids:
        parser.add_argument(dest, type=int, metavar=dest.upper())
    parser.add_argument("--json", action="store_true", help="print the API's JSON")
    parser.add_argument("--api-url", metavar="URL", help="default: TICKWORK_API_URL")
    parser.add_argument("--token", metavar="TOKEN", help="default: TICKWORK_API_TOKEN")
    parser.add_argument("--stack", type=int, metavar="ID", help="default: TICKWORK_STACK_ID")
    parser.set_defaults(action_fn=action)
    return parser


def _dispatch(args: argparse.Namespace, settings_loader: Callable[[], Any]) -> int:
    settings = settings_loader()
    token = args.token or (
        settings.api_token.get_secret_value() if settings.api_token is not None else None
    )
    if not token:
        print("tickwork: no API token: set TICKWORK_API_TOKEN or pass --token", file=sys.stderr)
        return 2
    client = Client(args.api_url or settings.api_url, token, args.stack or settings.stack_id)
    try:
        result = args.action_fn(client, args)
    except ApiError as exc:
        if args.json and exc.body is not None:
            print(json.dumps(exc.body), file=sys.stderr)
        else:
            print(f"tickwork: {exc}", file=sys.stderr)
        return 1
    if args.json:
        if result is not None:
            print(json.dumps(result, indent=2))
    elif isinstance(result, list):
        print(table(result, RUN_COLUMNS if args.command == "runs" else SCHEDULE_COLUMNS))
    elif isinstance(result, dict):
        print("\n".join(f"{key}: {_value(value)}" for key, value in result.items()))
    return 0


def _value(value: Any) -> str:
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _schedules_list(client: Client, args: argparse.Namespace) -> Any:
    return client.all_pages("/cloud/v6/schedules")


def _schedule_show(client: Client, args: argparse.Namespace) -> Any:
    return client.call("GET", f"/cloud/v6/schedules/{args.schedule_id}")


def _schedule_set(client: Client, args: argparse.Namespace) -> Any:
    text = sys.stdin.read() if args.body == "-" else args.body
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ApiError(0, f"BODY is not JSON: {exc}") from exc
    return client.call("POST", f"/cloud/v6/load_tests/{args.load_test_id}/schedule", body)


def _schedule_activate(client: Client, args: argparse.Namespace) -> Any:
    client.call("POST", f"/cloud/v6/schedules/{args.schedule_id}/activate")
    return _schedule_show(client, args)


def _schedule_deactivate(client: Client, args: argparse.Namespace) -> Any:
    client.call("POST", f"/cloud/v6/schedules/{args.schedule_id}/deactivate")
    return _schedule_show(client, args)


def _schedule_delete(client: Client, args: argparse.Namespace) -> Any:
    client.call("DELETE", f"/cloud/v6/schedules/{args.schedule_id}")
    return None


def _runs_list(client: Client, args: argparse.Namespace) -> Any:
    if args.load_test is not None:
        return client.all_pages(f"/cloud/v6/load_tests/{args.load_test}/test_runs")
    return client.all_pages("/cloud/v6/test_runs")


def _run_show(client: Client, args: argparse.Namespace) -> Any:
    return client.call("GET", f"/cloud/v6/test_runs/{args.run_id}")


def _run_start(client: Client, args: argparse.Namespace) -> Any:
    headers = {"K6-Idempotency-Key": args.idempotency_key} if args.idempotency_key else None
    return client.call("POST", f"/cloud/v6/load_tests/{args.load_test_id}/start", headers=headers)


def _run_abort(client: Client, args: argparse.Namespace) -> Any:
    client.call("POST", f"/cloud/v6/test_runs/{args.run_id}/abort")
    return _run_show(client, args)
