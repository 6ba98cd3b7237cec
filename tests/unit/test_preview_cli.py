"""`tickwork preview`, run as a user runs it: a separate process, stdout and exit status."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

# Slow: every case runs `tickwork preview` as a process of its own.
pytestmark = pytest.mark.slow

INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{3}|\.\d{6})?Z$")

EVERY_TWO_HOURS = json.dumps(
    {
        "recurrence_rule": {"frequency": "HOURLY", "interval": 2},
        "starts": "2024-07-16T08:46:04.021Z",
    }
)
WEEKENDS_TEN_RUNS = json.dumps(
    {
        "recurrence_rule": {"byday": ["SA", "SU"], "count": 10, "frequency": "WEEKLY"},
        "starts": "2024-07-16T08:46:04.021Z",
    }
)
NEW_YORK_AT_0130 = json.dumps(
    {
        "cron": {"schedule": "30 1 * * *", "time_zone": "America/New_York"},
        "starts": "2026-01-01T00:00:00Z",
    }
)


def _preview(
    *args: str, stdin: str | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tickwork", "preview", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def _lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    """The instants printed, one a line (a note may follow an instant after "  # ")."""
    assert result.returncode == 0, result.stderr
    lines = [line.split("  # ", 1)[0] for line in result.stdout.splitlines()]
    assert all(INSTANT.match(line) for line in lines), result.stdout
    return lines


def test_preview_prints_the_engines_notes_beside_the_instant() -> None:
    result = _preview(NEW_YORK_AT_0130, "--after", "2026-10-31T00:00:00Z", "--limit", "3")

    assert result.stdout.splitlines() == [
        "2026-10-31T05:30:00Z",
        "2026-11-01T05:30:00Z  # 01:30 happened twice on 2026-11-01 in America/New_York "
        "(clocks went back): a fixed-time job runs at the first pass only",
        "2026-11-02T06:30:00Z",
    ]


def _error(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 2
    assert result.stdout == ""
    body: dict[str, Any] = json.loads(result.stderr)
    assert set(body) == {"error"}
    return dict(body["error"])


def test_preview_prints_the_next_ten_occurrences_after_the_given_instant(tmp_path: Path) -> None:
    result = _preview(EVERY_TWO_HOURS, "--after", "2024-07-20T01:00:00Z", cwd=tmp_path)
    assert _lines(result) == [
        f"2024-07-{day}T{hour:02d}:46:04.021Z"
        for day, hour in [
            (20, 2),
            (20, 4),
            (20, 6),
            (20, 8),
            (20, 10),
            (20, 12),
            (20, 14),
            (20, 16),
            (20, 18),
            (20, 20),
        ]
    ]


def test_preview_prints_as_many_as_the_limit_asks_in_utc_without_a_zero_fraction() -> None:
    result = _preview(NEW_YORK_AT_0130, "--after", "2026-10-31T12:00:00Z", "--limit", "3")
    assert _lines(result) == [
        "2026-11-01T05:30:00Z",
        "2026-11-02T06:30:00Z",
        "2026-11-03T06:30:00Z",
    ]


def test_preview_lists_occurrences_strictly_after_the_given_instant() -> None:
    result = _preview(NEW_YORK_AT_0130, "--after", "2026-11-01T05:30:00Z", "--limit", "1")
    assert _lines(result) == ["2026-11-02T06:30:00Z"]
    result = _preview(NEW_YORK_AT_0130, "--after", "2026-11-01T01:29:59.999-04:00", "--limit", "1")
    assert _lines(result) == ["2026-11-01T05:30:00Z"]


def test_preview_stops_where_the_series_ends() -> None:
    result = _preview(WEEKENDS_TEN_RUNS, "--after", "2024-08-10T12:00:00Z")
    assert _lines(result) == [
        "2024-08-11T08:46:04.021Z",
        "2024-08-17T08:46:04.021Z",
        "2024-08-18T08:46:04.021Z",
    ]


def test_preview_of_a_one_shot_prints_starts_until_it_has_passed() -> None:
    body = json.dumps({"starts": "2999-01-01T00:00:00+01:00"})
    assert _lines(_preview(body)) == ["2998-12-31T23:00:00Z"]  # --after defaults to now
    assert _lines(_preview(body, "--after", "2999-06-01T00:00:00Z")) == []


def test_preview_with_a_limit_of_zero_prints_nothing() -> None:
    assert _lines(_preview(EVERY_TWO_HOURS, "--limit", "0")) == []


def test_preview_reads_the_body_from_standard_input_given_a_dash() -> None:
    result = _preview("-", "--after", "2024-07-20T01:00:00Z", "--limit", "2", stdin=EVERY_TWO_HOURS)
    assert _lines(result) == ["2024-07-20T02:46:04.021Z", "2024-07-20T04:46:04.021Z"]


def test_preview_of_an_invalid_body_prints_one_line_per_field_on_stderr_and_exits_2() -> None:
    body = json.dumps(
        {
            "starts": "2026-01-01T00:00:00",
            "cron": {"schedule": "0 0 L * *", "time_zone": "America/New_York"},
        }
    )
    result = _preview(body)
    assert result.returncode == 2
    assert result.stdout == ""
    first, *fields = result.stderr.splitlines()
    assert first == "tickwork: The schedule is not valid."
    assert sorted(fields) == [
        "  cron.schedule: Bad day-of-month field 'L': non-standard extensions (L, W, #, ?, H) "
        "are not supported. (cron_unsupported)",
        "  starts: '2026-01-01T00:00:00' has no UTC offset; add 'Z' or an offset like '+02:00'. "
        "(offset_required)",
    ]


def test_preview_of_an_invalid_body_with_json_prints_the_k6_error_body_on_stderr() -> None:
    body = json.dumps(
        {
            "starts": "2026-01-01T00:00:00",
            "cron": {"schedule": "0 0 L * *", "time_zone": "America/New_York"},
        }
    )
    error = _error(_preview(body, "--json"))
    assert error["code"] == "validation_error"
    assert error["message"]
    details = sorted((detail["code"], detail["target"]) for detail in error["details"])
    assert details == [("cron_unsupported", "cron.schedule"), ("offset_required", "starts")]
    assert all(detail["message"] for detail in error["details"])


def test_preview_with_json_prints_the_occurrences_as_a_json_array() -> None:
    result = _preview(NEW_YORK_AT_0130, "--after", "2026-10-31T12:00:00Z", "--limit", "2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"]


@pytest.mark.parametrize(
    ("body", "code", "target"),
    [
        ("not json", "invalid_json", None),
        ("{}", "required", "starts"),
        (
            json.dumps({"starts": "2026-01-01T00:00:00Z", "recurrence_rule": {"interval": 2}}),
            "required",
            "recurrence_rule.frequency",
        ),
    ],
)
def test_preview_of_a_malformed_body_exits_2_with_the_problem_in_the_details(
    body: str, code: str, target: str | None
) -> None:
    error = _error(_preview(body, "--json"))
    assert error["code"] == "validation_error"
    assert [(d["code"], d.get("target")) for d in error["details"]] == [(code, target)]
    lines = _preview(body).stderr.splitlines()
    assert lines[1:] == [f"  {target or '-'}: {error['details'][0]['message']} ({code})"]


@pytest.mark.parametrize(
    ("args", "code", "target"),
    [
        (["--after", "yesterday"], "invalid_datetime", "--after"),
        (["--after", "2026-02-30"], "invalid_datetime", "--after"),
        (["--limit", "-1"], "too_small", "--limit"),
    ],
)
def test_preview_with_a_bad_option_exits_2_naming_the_option(
    args: list[str], code: str, target: str
) -> None:
    (detail,) = _error(_preview(EVERY_TWO_HOURS, *args, "--json"))["details"]
    assert (detail["code"], detail["target"]) == (code, target)
    result = _preview(EVERY_TWO_HOURS, *args)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        f"tickwork: {target} is not valid.",
        f"  {target}: {detail['message']} ({code})",
    ]


@pytest.mark.parametrize(
    "after",
    ["2026-10-31", "2026-10-31T00:00:00", "2026-10-31T00:00:00Z", "2026-10-30T20:00:00-04:00"],
)
def test_preview_after_a_date_or_a_time_without_offset_reads_it_as_utc(after: str) -> None:
    result = _preview(NEW_YORK_AT_0130, "--after", after, "--limit", "2")
    assert _lines(result) == ["2026-10-31T05:30:00Z", "2026-11-01T05:30:00Z"]
