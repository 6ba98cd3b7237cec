"""The ``tickwork`` command: one entry point, a subcommand per role or task."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from tickwork.core import format_instant, occurrences_after, parse_instant
from tickwork.core.instants import InstantError
from tickwork.errors import ValidationError

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
        "An invalid BODY prints the API's error body on stderr and exits with status 2.",
    )
    preview.add_argument("body", metavar="BODY", help="CreateScheduleRequest JSON, or '-'")
    preview.add_argument(
        "--after", metavar="ISO", help="list occurrences strictly after this instant (default: now)"
    )
    preview.add_argument(
        "--limit",
        type=int,
        default=10,
        metavar="N",
        help="how many occurrences to print (default: 10)",
    )
    preview.set_defaults(handler=_preview)
    return parser


def _preview(args: argparse.Namespace) -> int:
    from tickwork.dialects.k6 import error_body, parse_create_schedule

    body = sys.stdin.read() if args.body == "-" else args.body
    try:
        after = parse_instant(args.after) if args.after else datetime.now(UTC)
    except InstantError as exc:
        print(json.dumps(error_body(exc.code, str(exc), target="--after")), file=sys.stderr)
        return EXIT_USAGE
    if args.limit < 0:
        print(
            json.dumps(error_body("too_small", "--limit must be at least 0.", target="--limit")),
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        _, schedule = parse_create_schedule(body)
    except ValidationError as exc:
        print(
            json.dumps(error_body("validation_error", exc.message, problems=exc.problems)),
            file=sys.stderr,
        )
        return EXIT_USAGE
    for instant in occurrences_after(schedule, after, args.limit):
        print(format_instant(instant))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    handler = args.handler
    result: int = handler(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
