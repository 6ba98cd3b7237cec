"""``tickwork blackouts``: the stack's blackout windows, or one schedule's (``--schedule``),
through the API."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from tickwork.client import ApiError, Client, Shown, fields, instant_argument, table
from tickwork.core.instants import InstantError, format_instant


def add_window_actions(actions: Any, action: Callable[..., argparse.ArgumentParser]) -> None:
    listing = action(actions, "list", "list the stack's windows, or one schedule's", _list)
    _scoped(listing)
    add = action(
        actions,
        "add",
        "add a window: one-off (--from, --to) or recurring (--cron, --duration); "
        "no run starts inside it",
        _add,
    )
    _scoped(add)
    add.add_argument("--from", dest="from_", metavar="ISO", help="one-off: its start")
    add.add_argument("--to", metavar="ISO", help="one-off: its end")
    add.add_argument("--cron", metavar="EXPR", help="recurring: when each span starts")
    add.add_argument("--time-zone", default="UTC", metavar="ZONE", help="of --cron (UTC)")
    add.add_argument("--duration", type=int, metavar="SECONDS", help="recurring: each span's")
    add.add_argument(
        "--policy",
        choices=("skip", "defer"),
        default="skip",
        help="skip the occurrences inside (default), or run them once at the window's end",
    )
    add.add_argument("--note", default="", help="why (shown with it)")
    show = action(actions, "show", "show a window and its next spans", _show, ("window_id",))
    _scoped(show)
    delete = action(actions, "delete", "delete a window", _delete, ("window_id",))
    _scoped(delete)


def _scoped(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--schedule", type=int, metavar="ID", help="the schedule's own windows (default: stack)"
    )


def _base(args: argparse.Namespace) -> str:
    if args.schedule is not None:
        return f"/cloud/v6/schedules/{args.schedule}/blackout_windows"
    return "/cloud/v6/blackout_windows"


def _list(client: Client, args: argparse.Namespace) -> Shown:
    answer = client.call("GET", _base(args))
    rows = [_row(window) for window in answer["value"]]
    columns = ("id", "policy", "when", "next", "note")
    return Shown(raw=answer, text=table(rows, columns) if rows else "no blackout windows")


def _row(window: dict[str, Any]) -> dict[str, Any]:
    upcoming = window["upcoming"]
    return {
        "id": window["id"],
        "policy": window["policy"],
        "when": _when(window),
        "next": f"{upcoming[0]['from']} - {upcoming[0]['to']}" if upcoming else None,
        "note": window["note"] or None,
    }


def _when(window: dict[str, Any]) -> str:
    if window.get("cron"):
        cron = window["cron"]
        return f"{cron['schedule']} {cron['time_zone']} for {window['duration_seconds']} s"
    return f"{window['from']} - {window['to']}"


def _add(client: Client, args: argparse.Namespace) -> Shown:
    body: dict[str, Any] = {"policy": args.policy}
    if args.note:
        body["note"] = args.note
    for name, flag in (("from_", "from"), ("to", "to")):
        value = getattr(args, name)
        if value is not None:
            try:
                body[flag] = format_instant(instant_argument(value))
            except InstantError as exc:
                raise ApiError(0, f"--{flag}: {exc}") from None
    if args.cron is not None:
        body["cron"] = {"schedule": args.cron, "time_zone": args.time_zone}
    if args.duration is not None:
        body["duration_seconds"] = args.duration
    window = client.call("POST", _base(args), body)
    return Shown(raw=window, text=_fields(window))


def _show(client: Client, args: argparse.Namespace) -> Shown:
    window = client.call("GET", f"{_base(args)}/{args.window_id}")
    return Shown(raw=window, text=_fields(window))


def _fields(window: dict[str, Any]) -> str:
    spans = [f"{span['from']} - {span['to']}" for span in window["upcoming"]]
    return fields(
        [
            ("id", window["id"]),
            ("schedule", window["schedule_id"] or "every schedule of the stack"),
            ("policy", window["policy"]),
            ("when", _when(window)),
            ("next", "; ".join(spans) or None),
            ("note", window["note"] or None),
            ("created", f"{window['created']} by {window['created_by'] or '-'}"),
        ]
    )


def _delete(client: Client, args: argparse.Namespace) -> Shown:
    client.call("DELETE", f"{_base(args)}/{args.window_id}")
    return Shown(raw=None, text=f"deleted blackout window {args.window_id}")
