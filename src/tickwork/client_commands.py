"""The API client commands: ``projects``, ``load-tests``, ``schedules`` and ``runs``.

Written for people (tables, ``key: value`` lines, sentences saying what was done);
``--json`` prints the API's own JSON for scripts. Where to connect comes from
TICKWORK_API_URL, TICKWORK_API_TOKEN and TICKWORK_STACK_ID, or the flags. An API error is one
line, then one per field at fault; the exit status is then 1 (2 for a command following a
run, whose 1 means the run failed).
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from tickwork.client import (
    ApiError,
    Client,
    Shown,
    fields,
    instant_argument,
    short_instant,
    table,
)
from tickwork.client_runs import EXIT_OTHER, LoadTestNames, add_run_actions
from tickwork.client_windows import add_window_actions
from tickwork.core.instants import InstantError, format_instant

Action = Callable[[Client, argparse.Namespace], Shown]
_RECENT = 1000
"""Runs read at once to find each schedule's last run."""
CONNECTION = (
    "Connects to TICKWORK_API_URL with TICKWORK_API_TOKEN in stack TICKWORK_STACK_ID (or "
    "--api-url, --token, --stack); --json prints the API's JSON."
)


def add_parsers(commands: Any, settings_loader: Callable[[], Any]) -> None:
    groups = []

    projects = commands.add_parser(
        "projects",
        help="create and list projects (which hold load tests) through the API",
        description="A client of the API's projects. " + CONNECTION,
    )
    actions = projects.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _action(actions, "create", "create a project", _project_create)
    create.add_argument("--name", required=True, metavar="NAME")
    _action(actions, "list", "list the stack's projects", _projects_list)
    groups.append(projects)

    load_tests = commands.add_parser(
        "load-tests",
        help="create, update, list, show and delete load tests through the API",
        description="A client of the API's load tests: a k6 script (or another runner) in a "
        "project. " + CONNECTION,
    )
    actions = load_tests.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = _action(actions, "create", "create a load test from a k6 script", _test_create)
    create.add_argument("--project", required=True, metavar="P", help="project id or name")
    create.add_argument("--name", required=True, metavar="NAME")
    create.add_argument(
        "--script", required=True, type=Path, metavar="FILE", help="k6 script (.js) or archive"
    )
    create.add_argument("--runner", metavar="JSON", help='runner settings (default {"type":"k6"})')
    update = _action(
        actions, "update", "change a load test's name, script or runner", _test_update, ("id",)
    )
    update.add_argument("--name", metavar="NAME")
    update.add_argument("--script", type=Path, metavar="FILE")
    update.add_argument("--runner", metavar="JSON")
    listing = _action(actions, "list", "list load tests", _tests_list)
    listing.add_argument("--project", metavar="P", help="only this project's (id or name)")
    _action(actions, "show", "show a load test", _test_show, ("id",))
    _action(
        actions,
        "delete",
        "delete a load test, its script and its schedule (its runs stay)",
        _test_delete,
        ("id",),
    )
    groups.append(load_tests)

    schedules = commands.add_parser(
        "schedules",
        help="list, show, set, activate, deactivate (pause), resume and delete schedules, "
        "their occurrences, health and audit trail, through the API",
        description="A client of the API's schedules. " + CONNECTION,
    )
    _schedule_actions(schedules.add_subparsers(dest="action", required=True, metavar="ACTION"))
    groups.append(schedules)

    runs = commands.add_parser(
        "runs",
        help="list, show, follow, start, abort test runs and their trend through the API",
        description="A client of the API's test runs. " + CONNECTION,
    )
    actions = runs.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_run_actions(actions, _action)
    groups.append(runs)

    blackouts = commands.add_parser(
        "blackouts",
        help="list, add, show and delete blackout windows (when no run starts), the stack's "
        "or one schedule's, through the API",
        description="A client of the API's blackout windows. " + CONNECTION,
    )
    actions = blackouts.add_subparsers(dest="action", required=True, metavar="ACTION")
    add_window_actions(actions, _action)
    groups.append(blackouts)

    for parser in groups:
        parser.set_defaults(handler=lambda args: _dispatch(args, settings_loader))


def _schedule_actions(actions: Any) -> None:
    _action(actions, "list", "list the stack's schedules, with their last run", _schedules_list)
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
    deactivate = _action(
        actions,
        "deactivate",
        "deactivate (pause) a schedule",
        _schedule_deactivate,
        ("schedule_id",),
    )
    deactivate.add_argument("--note", default="", help="why it is paused (shown with it)")
    deactivate.add_argument(
        "--resume-at", metavar="ISO", help="when the scheduler re-activates it on its own"
    )
    for name, verb in (("pause", "pause"), ("resume", "re-activate")):
        bulk = _action(
            actions,
            name,
            f"{verb} every schedule of a project and/or of load tests with a name "
            "(neither: every schedule of the stack), and say which changed",
            _schedules_bulk,
        )
        bulk.add_argument("--project", type=int, metavar="ID")
        bulk.add_argument("--load-test-name", metavar="NAME")
        if name == "pause":
            bulk.add_argument("--note", default="")
            bulk.add_argument("--resume-at", metavar="ISO")
    _action(actions, "delete", "delete a schedule", _schedule_delete, ("schedule_id",))
    occurrences = _action(
        actions,
        "occurrences",
        "a schedule's occurrences with their notes (DST, month ends, the last) and, for past "
        "ones, what happened: fired, skipped and why, or missed",
        _schedule_occurrences,
        ("schedule_id",),
    )
    occurrences.add_argument("--after", metavar="ISO", help="strictly after (default: now)")
    occurrences.add_argument("--before", metavar="ISO", help="strictly before")
    occurrences.add_argument("--limit", type=int, default=20, metavar="N", help="default: 20")
    backfill = _action(
        actions,
        "backfill",
        "runs for a schedule's past occurrences from --from (inclusive) to --to (exclusive) "
        "that have none, such as those that passed while it was paused: a dry run (what "
        "would run) unless --run",
        _schedule_backfill,
        ("schedule_id",),
    )
    backfill.add_argument("--from", dest="from_", required=True, metavar="ISO")
    backfill.add_argument("--to", required=True, metavar="ISO", help="not after now")
    backfill.add_argument(
        "--overlap",
        choices=("skip", "allow"),
        help="skip: one run after another; allow: all at once (default: the schedule's)",
    )
    backfill.add_argument("--run", action="store_true", help="create the runs (not a dry run)")
    health = _action(
        actions,
        "health",
        "one schedule's health (last and next fire, what happened lately), or every "
        "schedule's in a table",
        _schedule_health,
    )
    health.add_argument("schedule_id", type=int, nargs="?", metavar="SCHEDULE_ID")
    audit = _action(
        actions,
        "audit",
        "who changed a schedule, when, from where, and what changed (newest first)",
        _schedule_audit,
        ("schedule_id",),
    )
    audit.add_argument("--limit", type=int, default=50, metavar="N", help="default: 50")


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
        shown: Shown = args.action_fn(client, args)
    except ApiError as exc:
        if args.json and exc.body is not None:
            print(json.dumps(exc.body), file=sys.stderr)
        else:
            print(f"tickwork: {exc}", file=sys.stderr)
        # A command following a run exits 1 only when the run failed.
        following = getattr(args, "follow", False) or getattr(args, "wait", False)
        return EXIT_OTHER if following else 1
    if args.json:
        if shown.raw is not None:
            print(json.dumps(shown.raw, indent=2))
    elif shown.text is not None:
        print(shown.text)
    return shown.status


# projects


def _project_create(client: Client, args: argparse.Namespace) -> Shown:
    project = client.call("POST", "/cloud/v6/projects", {"name": args.name})
    return Shown(raw=project, text=fields([(k, project.get(k)) for k in ("id", "name", "created")]))


def _projects_list(client: Client, args: argparse.Namespace) -> Shown:
    projects = client.all_pages("/cloud/v6/projects")
    rows = [
        {**p, "created": short_instant(p["created"]), "updated": short_instant(p["updated"])}
        for p in projects
    ]
    return Shown(raw=projects, text=table(rows, ("id", "name", "created", "updated")))


def _project_id(client: Client, project: str) -> int:
    """A project named by id (digits) or by its exact name."""
    if project.isdigit():
        return int(project)
    found = client.all_pages(f"/cloud/v6/projects?name={quote(project)}")
    if len(found) == 1:
        project_id: int = found[0]["id"]
        return project_id
    if not found:
        raise ApiError(404, f"no project is named {project!r} (tickwork projects list)")
    ids = ", ".join(str(p["id"]) for p in found)
    raise ApiError(409, f"{len(found)} projects are named {project!r} (ids {ids}): give the id")


# load tests


def _runner(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiError(0, f"--runner is not JSON: {exc}") from exc


def _script(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ApiError(0, f"--script: cannot read {path}: {exc.strerror or exc}") from exc


def _multipart(parts: list[tuple[str, str | None, bytes]]) -> tuple[bytes, str]:
    """A multipart/form-data body of (name, filename, content) parts, and its type."""
    boundary = f"tickwork-{uuid.uuid4().hex}"
    body = b""
    for name, filename, content in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disposition}\r\n\r\n".encode()
        body += content + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return body, f"multipart/form-data; boundary={boundary}"


def _test_fields(test: dict[str, Any]) -> str:
    pairs = [(k, test.get(k)) for k in ("id", "name", "project_id", "runner", "created", "updated")]
    return fields(pairs)


def _test_create(client: Client, args: argparse.Namespace) -> Shown:
    project_id = _project_id(client, args.project)
    parts: list[tuple[str, str | None, bytes]] = [
        ("name", None, args.name.encode()),
        ("script", args.script.name, _script(args.script)),
    ]
    runner = _runner(args.runner)
    if runner is not None:
        parts.append(("runner", None, json.dumps(runner).encode()))
    data, content_type = _multipart(parts)
    test = client.call(
        "POST",
        f"/cloud/v6/projects/{project_id}/load_tests",
        data=data,
        content_type=content_type,
    )
    return Shown(raw=test, text=_test_fields(test))


def _test_update(client: Client, args: argparse.Namespace) -> Shown:
    if args.name is None and args.script is None and args.runner is None:
        raise ApiError(0, "nothing to change: give --name, --script or --runner")
    patch: dict[str, Any] = {}
    if args.name is not None:
        patch["name"] = args.name
    if args.runner is not None:
        patch["runner"] = _runner(args.runner)
    script = _script(args.script) if args.script is not None else None
    path = f"/cloud/v6/load_tests/{args.id}"
    if patch:
        client.call("PATCH", path, patch)
    if script is not None:
        client.call("PUT", f"{path}/script", data=script, content_type="application/octet-stream")
    test = client.call("GET", path)
    return Shown(raw=test, text=_test_fields(test))


def _tests_list(client: Client, args: argparse.Namespace) -> Shown:
    if args.project is not None:
        project_id = _project_id(client, args.project)
        tests = client.all_pages(f"/cloud/v6/projects/{project_id}/load_tests")
    else:
        tests = client.all_pages("/cloud/v6/load_tests")
    rows = [
        {
            **t,
            "runner": (t.get("runner") or {}).get("type"),
            "created": short_instant(t["created"]),
            "updated": short_instant(t["updated"]),
        }
        for t in tests
    ]
    return Shown(
        raw=tests, text=table(rows, ("id", "name", "project_id", "runner", "created", "updated"))
    )


def _test_show(client: Client, args: argparse.Namespace) -> Shown:
    test = client.call("GET", f"/cloud/v6/load_tests/{args.id}")
    return Shown(raw=test, text=_test_fields(test))


def _test_delete(client: Client, args: argparse.Namespace) -> Shown:
    test = client.call("GET", f"/cloud/v6/load_tests/{args.id}")
    client.call("DELETE", f"/cloud/v6/load_tests/{args.id}")
    return Shown(
        text=f"deleted load test {args.id} ({test['name']}) with its script and schedule; "
        "its runs stay"
    )


# schedules


def _schedules_list(client: Client, args: argparse.Namespace) -> Shown:
    schedules = client.all_pages("/cloud/v6/schedules")
    if not schedules:
        return Shown(raw=schedules, text="no schedules")
    names = LoadTestNames(client)
    names.prefetch({s["load_test_id"] for s in schedules})
    # The latest run of each load test, from the stack's newest runs in one request; only a
    # load test with none among them (when there are that many) is asked on its own.
    recent = client.call("GET", f"/cloud/v6/test_runs?$orderby=created%20desc&$top={_RECENT}")
    latest: dict[int, dict[str, Any]] = {}
    for run in recent["value"]:
        latest.setdefault(run["test_id"], run)
    rows = []
    for schedule in schedules:
        load_test_id = schedule["load_test_id"]
        run = latest.get(load_test_id)
        if run is None and "@nextLink" in recent:
            path = f"/cloud/v6/load_tests/{load_test_id}/test_runs?$orderby=created%20desc&$top=1"
            run = next(iter(client.call("GET", path)["value"]), None)
        rows.append(
            {
                "id": schedule["id"],
                "load_test": names(load_test_id),
                "active": not schedule["deactivated"],
                "when": schedule.get("cron")
                or schedule.get("recurrence_rule")
                or f"once at {schedule['starts']}",
                "next_run": short_instant(schedule.get("next_run")),
                "last_run": f"{run['id']} {run.get('result') or run['status']}" if run else None,
            }
        )
    columns = ("id", "load_test", "active", "when", "next_run", "last_run")
    return Shown(raw=schedules, text=table(rows, columns))


def _schedule_fields(schedule: dict[str, Any]) -> str:
    keys = ("id", "load_test_id", "deactivated", "starts", "cron", "recurrence_rule", "next_run")
    extra = [(k, v) for k, v in schedule.items() if k not in keys and k != "created_by"]
    return fields([*((k, schedule.get(k)) for k in keys), *extra])


def _schedule_show(client: Client, args: argparse.Namespace) -> Shown:
    schedule = client.call("GET", f"/cloud/v6/schedules/{args.schedule_id}")
    return Shown(raw=schedule, text=_schedule_fields(schedule))


def _schedule_set(client: Client, args: argparse.Namespace) -> Shown:
    text = sys.stdin.read() if args.body == "-" else args.body
    try:
        body = json.loads(text)
    except ValueError as exc:
        raise ApiError(0, f"BODY is not JSON: {exc}") from exc
    schedule = client.call("POST", f"/cloud/v6/load_tests/{args.load_test_id}/schedule", body)
    return Shown(raw=schedule, text=_schedule_fields(schedule))


def _schedule_activate(client: Client, args: argparse.Namespace) -> Shown:
    client.call("POST", f"/cloud/v6/schedules/{args.schedule_id}/activate")
    return _schedule_show(client, args)


def _pause_body(args: argparse.Namespace) -> dict[str, Any]:
    body: dict[str, Any] = {}
    if args.note:
        body["note"] = args.note
    if args.resume_at:
        try:
            body["resume_at"] = format_instant(instant_argument(args.resume_at))
        except InstantError as exc:
            raise ApiError(0, f"--resume-at: {exc}") from None
    return body


def _schedule_deactivate(client: Client, args: argparse.Namespace) -> Shown:
    body = _pause_body(args)
    client.call("POST", f"/cloud/v6/schedules/{args.schedule_id}/deactivate", body or None)
    return _schedule_show(client, args)


def _schedules_bulk(client: Client, args: argparse.Namespace) -> Shown:
    match: dict[str, Any] = {}
    if args.project is not None:
        match["project_id"] = args.project
    if args.load_test_name:
        match["load_test_name"] = args.load_test_name
    pausing = args.action == "pause"
    body = {"filter": match, **(_pause_body(args) if pausing else {})}
    verb = "deactivate" if pausing else "activate"
    result = client.call("POST", f"/cloud/v6/schedules/bulk/{verb}", body)
    done = "paused" if pausing else "re-activated"
    lines = [
        f"{done}: {', '.join(map(str, result['changed'])) or 'none'}",
        f"unchanged: {', '.join(map(str, result['unchanged'])) or 'none'}",
        *(f"refused {r['id']}: {r['message']}" for r in result["refused"]),
    ]
    return Shown(raw=result, text="\n".join(lines))


def _schedule_occurrences(client: Client, args: argparse.Namespace) -> Shown:
    params = {"limit": str(args.limit)}
    for name in ("after", "before"):
        value = getattr(args, name)
        if value:
            try:
                params[name] = format_instant(instant_argument(value))
            except InstantError as exc:
                raise ApiError(0, f"--{name}: {exc}") from None
    page = client.call(
        "GET", f"/cloud/v6/schedules/{args.schedule_id}/occurrences?{urlencode(params)}"
    )
    rows = [
        {
            "instant": item["instant"],
            "local": item["local"],
            "outcome": item["outcome"],
            "why": _why(item),
            "planned": item.get("planned_for"),
            "late": f"{item['lateness_ms']} ms" if item.get("lateness_ms") is not None else None,
            "notes": "; ".join(note["message"] for note in item["notes"]) or None,
        }
        for item in page["value"]
    ]
    columns: tuple[str, ...] = ("instant", "local", "outcome", "why", "planned", "late", "notes")
    if not any(row["planned"] for row in rows):
        columns = tuple(c for c in columns if c != "planned")
    return Shown(raw=page, text=table(rows, columns) if rows else "no occurrences in the window")


def _schedule_backfill(client: Client, args: argparse.Namespace) -> Shown:
    body: dict[str, Any] = {"dry_run": not args.run}
    for name, flag, value in (("from", "--from", args.from_), ("to", "--to", args.to)):
        try:
            body[name] = format_instant(instant_argument(value))
        except InstantError as exc:
            raise ApiError(0, f"{flag}: {exc}") from None
    if args.overlap:
        body["overlap"] = args.overlap
    answer = client.call("POST", f"/cloud/v6/schedules/{args.schedule_id}/backfill", body)
    rows = [
        {
            "instant": item["instant"],
            "mark": item["mark"],
            "run": item.get("run_id"),
            "reason": item.get("reason"),
        }
        for item in answer["value"]
    ]
    marks = [item["mark"] for item in answer["value"]]
    if answer["dry_run"]:
        summary = f"dry run: {marks.count('would_run')} would run (--run creates them)"
    else:
        summary = f"created {marks.count('created')} runs (overlap {answer['overlap']})"
    text = table(rows, ("instant", "mark", "run", "reason")) if rows else "no occurrences"
    return Shown(raw=answer, text=f"{text}\n{summary}")


def _why(item: dict[str, Any]) -> str | None:
    parts = [item.get("reason") or (f"run {item['run_id']}" if item.get("run_id") else "")]
    if item.get("window_id") is not None:
        parts.append(f"window {item['window_id']}")
    return " ".join(p for p in parts if p) or None


def _schedule_health(client: Client, args: argparse.Namespace) -> Shown:
    if args.schedule_id is not None:
        health = client.call("GET", f"/cloud/v6/schedules/{args.schedule_id}/health")
        return Shown(raw=health, text=_health_fields(health))
    listed = client.all_pages("/cloud/v6/schedules/health?$top=100")
    rows = [
        {
            "id": h["schedule_id"],
            "load_test": h["load_test_id"],
            "active": not h["deactivated"],
            "next_fire": short_instant(h["next_fire"]),
            "last": _last_fire(h["last_fire"]),
            "on_time": h["fired_on_time"],
            "late": h["fired_late"],
            "skipped": sum(h["skipped"].values()),
            "missed": h["missed"],
            "failing": h["consecutive_failures"],
        }
        for h in listed
    ]
    columns = ("id", "load_test", "active", "next_fire", "last", "on_time", "late", "skipped")
    return Shown(
        raw=listed,
        text=table(rows, (*columns, "missed", "failing")) if rows else "no schedules",
    )


def _last_fire(last: dict[str, Any] | None) -> str | None:
    if last is None:
        return None
    outcome = last.get("result") or last.get("status")
    return f"{short_instant(last['instant'])} run {last['run_id']} {outcome}"


def _health_fields(health: dict[str, Any]) -> str:
    paused = health.get("paused")
    lateness = health["lateness_ms"]
    return fields(
        [
            ("schedule", health["schedule_id"]),
            ("load test", health["load_test_id"]),
            ("state", "paused" if health["deactivated"] else "active"),
            *(
                [("paused", f"since {paused['since']} by {paused['by']}: {paused['note']}")]
                if paused
                else []
            ),
            ("next fire", health["next_fire"]),
            ("last fire", _last_fire(health["last_fire"])),
            ("window", f"{health['occurrences']} occurrences since {health['window_since']}"),
            ("fired", f"{health['fired_on_time']} on time, {health['fired_late']} late"),
            (
                "skipped",
                ", ".join(f"{n} {reason}" for reason, n in health["skipped"].items()) or "none",
            ),
            ("missed", health["missed"]),
            ("runs", ", ".join(f"{n} {result}" for result, n in health["runs"].items() if n)),
            (
                "lateness",
                f"p50 {lateness['p50']} ms, p99 {lateness['p99']} ms, max {lateness['max']} ms"
                if lateness["max"] is not None
                else None,
            ),
            ("failing", f"{health['consecutive_failures']} latest runs in a row"),
        ]
    )


def _schedule_audit(client: Client, args: argparse.Namespace) -> Shown:
    page = client.call("GET", f"/cloud/v6/schedules/{args.schedule_id}/audit?$top={args.limit}")
    rows = [
        {
            "at": short_instant(entry["at"]),
            "action": entry["action"],
            "who": entry["who"],
            "via": entry["via"],
            "what": "; ".join(
                f"{c['field']}: {json.dumps(c['old'])} -> {json.dumps(c['new'])}"
                for c in entry["changes"]
            )
            or entry["note"]
            or None,
        }
        for entry in page["value"]
    ]
    columns = ("at", "action", "who", "via", "what")
    return Shown(raw=page, text=table(rows, columns) if rows else "no audit entries")


def _schedule_delete(client: Client, args: argparse.Namespace) -> Shown:
    schedule = client.call("GET", f"/cloud/v6/schedules/{args.schedule_id}")
    client.call("DELETE", f"/cloud/v6/schedules/{args.schedule_id}")
    return Shown(
        text=f"deleted schedule {args.schedule_id} of load test {schedule['load_test_id']}: "
        "it fires no more; its runs stay"
    )
