"""Validation: one Problem per violation, each with a stable code and the field it concerns.

``build_schedule`` checks what holds for every dialect; ``parse_create_schedule`` adds the
JSON shape of the k6 API (types, required fields, bounds) in front of it.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tickwork.core import CronSpec, Frequency, RuleSpec, Weekday, build_schedule, parse_instant
from tickwork.core.model import Cron, Once, Rule
from tickwork.dialects.k6 import parse_create_schedule, stored_request
from tickwork.errors import Problem, ValidationError

STARTS = "2026-01-01T00:00:00Z"


def _problems(
    *, starts: str = STARTS, cron: CronSpec | None = None, rule: RuleSpec | None = None
) -> list[Problem]:
    with pytest.raises(ValidationError) as caught:
        build_schedule(starts=starts, cron=cron, rule=rule)
    problems = caught.value.problems
    assert problems, "a ValidationError carries at least one problem"
    for problem in problems:
        assert problem.message.strip(), f"{problem.code} has no message"
    return problems


def _codes(problems: list[Problem]) -> list[tuple[str, str | None]]:
    return sorted((problem.code, problem.target) for problem in problems)


def _k6_problems(body: str | bytes) -> list[tuple[str, str | None]]:
    with pytest.raises(ValidationError) as caught:
        parse_create_schedule(body)
    return _codes(caught.value.problems)


def _body(**fields: Any) -> str:
    return json.dumps({"starts": STARTS, **fields})


# --- starts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("starts", "code"),
    [
        ("2026-01-01T00:00:00", "offset_required"),
        ("2026-01-01 00:00:00", "offset_required"),
        ("tomorrow", "invalid_datetime"),
        ("2026-01-01", "invalid_datetime"),
        ("2026-13-01T00:00:00Z", "invalid_datetime"),
        ("2026-02-30T00:00:00Z", "invalid_datetime"),
        ("2026-01-01T00:00Z", "invalid_datetime"),
        ("", "invalid_datetime"),
    ],
)
def test_starts_must_be_a_date_time_with_a_utc_offset(starts: str, code: str) -> None:
    assert _codes(_problems(starts=starts)) == [(code, "starts")]


@pytest.mark.parametrize(
    "starts",
    [
        "2026-01-01T00:00:00Z",
        "2026-01-01T00:00:00.021Z",
        "2026-01-01T05:30:00+05:30",
        "2026-01-01T00:00:00-03:00",
        "2026-01-01T00:00:00.123456789+00:00",
    ],
)
def test_starts_with_an_offset_is_accepted(starts: str) -> None:
    schedule = build_schedule(starts=starts)
    assert schedule.trigger == Once()
    assert schedule.starts.utcoffset() is not None


# --- cron and recurrence rule -------------------------------------------------------------------


def test_cron_and_recurrence_rule_cannot_both_be_set() -> None:
    problems = _problems(cron=CronSpec("0 0 * * *", "UTC"), rule=RuleSpec(Frequency.DAILY))
    assert _codes(problems) == [("cron_and_recurrence_rule", "cron")]


@pytest.mark.parametrize(
    ("expression", "code"),
    [
        ("@reboot", "cron_alias_unknown"),
        ("@midnight", "cron_alias_unknown"),
        ("@every 5m", "cron_alias_unknown"),
        ("0 0 * *", "cron_field_count"),
        ("0 0 0 * * *", "cron_field_count"),  # a seconds field
        ("0 0 * * * 2026", "cron_field_count"),
        ("", "cron_field_count"),
        ("0 0 L * *", "cron_unsupported"),
        ("0 0 15W * *", "cron_unsupported"),
        ("0 0 LW * *", "cron_unsupported"),
        ("0 0 * * 5L", "cron_unsupported"),
        ("0 0 * * 5#3", "cron_unsupported"),
        ("0 0 ? * 1", "cron_unsupported"),
        ("H 0 * * *", "cron_unsupported"),
        ("H/15 * * * *", "cron_unsupported"),
        ("60 * * * *", "cron_field_invalid"),
        ("* 24 * * *", "cron_field_invalid"),
        ("* * 0 * *", "cron_field_invalid"),
        ("* * 32 * *", "cron_field_invalid"),
        ("* * * 0 *", "cron_field_invalid"),
        ("* * * 13 *", "cron_field_invalid"),
        ("* * * * 8", "cron_field_invalid"),
        ("5-1 * * * *", "cron_field_invalid"),
        ("*/0 * * * *", "cron_field_invalid"),
        ("1,,2 * * * *", "cron_field_invalid"),
        ("a * * * *", "cron_field_invalid"),
        ("* * * * monday", "cron_field_invalid"),
        ("* * * * 1-", "cron_field_invalid"),
        ("-1 * * * *", "cron_field_invalid"),
        ("0 0 30 2 *", "cron_never_matches"),
        ("0 0 31 4,6,9,11 *", "cron_never_matches"),
    ],
)
def test_a_cron_expression_outside_the_standard_grammar_is_rejected_with_its_code(
    expression: str, code: str
) -> None:
    assert _codes(_problems(cron=CronSpec(expression, "UTC"))) == [(code, "cron.schedule")]


@pytest.mark.parametrize(
    ("expression", "field"),
    [
        ("60 * * * *", "minute"),
        ("* 24 * * *", "hour"),
        ("* * 32 * *", "day-of-month"),
        ("* * * 13 *", "month"),
        ("* * * * 8", "day-of-week"),
        ("0 0 L * *", "day-of-month"),
    ],
)
def test_a_bad_cron_field_is_named_in_the_message(expression: str, field: str) -> None:
    (problem,) = _problems(cron=CronSpec(expression, "UTC"))
    assert field in problem.message


def test_every_bad_cron_field_is_reported() -> None:
    problems = _problems(cron=CronSpec("60 24 * 13 *", "UTC"))
    assert _codes(problems) == [("cron_field_invalid", "cron.schedule")] * 3


@pytest.mark.parametrize(
    "expression",
    [
        "@yearly",
        "@annually",
        "@monthly",
        "@weekly",
        "@daily",
        "@hourly",
        "* * * * *",
        "0 0 29 2 *",
        "0 0 31 * *",
        "0 9 * jan,JUL Mon-fri",
        "*/5 1-3,22-23/1 1-31/2 */3 0-7",
        "  0 0 * * *  ",
    ],
)
def test_standard_cron_expressions_and_the_six_aliases_are_accepted(expression: str) -> None:
    schedule = build_schedule(starts=STARTS, cron=CronSpec(expression, "Europe/Berlin"))
    assert isinstance(schedule.trigger, Cron)
    assert len(schedule.trigger.expression.split()) == 5


@pytest.mark.parametrize(
    "time_zone",
    ["Mars/Olympus", "", " UTC", "Europe/Berlin ", "../../etc/passwd", "/etc/localtime", "+02:00"],
)
def test_the_time_zone_must_be_an_iana_name(time_zone: str) -> None:
    problems = _problems(cron=CronSpec("0 0 * * *", time_zone))
    assert _codes(problems) == [("time_zone_unknown", "cron.time_zone")]


@pytest.mark.parametrize(
    "time_zone", ["UTC", "Etc/UTC", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
)
def test_iana_time_zone_names_are_accepted(time_zone: str) -> None:
    build_schedule(starts=STARTS, cron=CronSpec("0 0 * * *", time_zone))


def test_a_cron_expression_of_256_characters_is_accepted_and_of_257_rejected() -> None:
    longest = "0" + ",0" * 123 + " 0 * * *"
    assert len(longest) == 255
    build_schedule(starts=STARTS, cron=CronSpec(longest + " ", "UTC"))
    problems = _problems(cron=CronSpec(longest + "  ", "UTC"))
    assert _codes(problems) == [("too_long", "cron.schedule")]


def test_a_time_zone_of_128_characters_is_looked_up_and_of_129_rejected_as_too_long() -> None:
    assert _codes(_problems(cron=CronSpec("0 0 * * *", "A" * 128))) == [
        ("time_zone_unknown", "cron.time_zone")
    ]
    assert _codes(_problems(cron=CronSpec("0 0 * * *", "A" * 129))) == [
        ("too_long", "cron.time_zone")
    ]


@pytest.mark.parametrize(
    "frequency", [Frequency.HOURLY, Frequency.DAILY, Frequency.MONTHLY, Frequency.YEARLY]
)
def test_byday_can_only_be_set_with_weekly(frequency: Frequency) -> None:
    problems = _problems(rule=RuleSpec(frequency, byday=[Weekday.MO]))
    assert _codes(problems) == [("byday_requires_weekly", "recurrence_rule.byday")]


def test_byday_with_weekly_is_accepted() -> None:
    schedule = build_schedule(
        starts=STARTS, rule=RuleSpec(Frequency.WEEKLY, byday=[Weekday.SA, Weekday.SU])
    )
    assert schedule.trigger == Rule(Frequency.WEEKLY, byday=(Weekday.SA, Weekday.SU))


@pytest.mark.parametrize("interval", [0, -1])
def test_interval_must_be_at_least_one(interval: int) -> None:
    problems = _problems(rule=RuleSpec(Frequency.DAILY, interval=interval))
    assert _codes(problems) == [("too_small", "recurrence_rule.interval")]


@pytest.mark.parametrize("count", [0, -5])
def test_count_must_be_at_least_one(count: int) -> None:
    problems = _problems(rule=RuleSpec(Frequency.DAILY, count=count))
    assert _codes(problems) == [("too_small", "recurrence_rule.count")]


def test_interval_and_count_of_one_are_accepted() -> None:
    build_schedule(starts=STARTS, rule=RuleSpec(Frequency.DAILY, interval=1, count=1))


@pytest.mark.parametrize(
    "until", ["2025-12-31T23:59:59.999Z", "2026-01-01T00:30:00+01:00", "2020-01-01T00:00:00Z"]
)
def test_until_must_not_be_before_starts(until: str) -> None:
    problems = _problems(rule=RuleSpec(Frequency.DAILY, until=until))
    assert _codes(problems) == [("until_before_starts", "recurrence_rule.until")]


@pytest.mark.parametrize("until", ["2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00"])
def test_until_equal_to_starts_is_accepted(until: str) -> None:
    build_schedule(starts=STARTS, rule=RuleSpec(Frequency.DAILY, until=until))


@pytest.mark.parametrize(
    ("until", "code"),
    [("2026-02-01T00:00:00", "offset_required"), ("next week", "invalid_datetime")],
)
def test_until_must_be_a_date_time_with_a_utc_offset(until: str, code: str) -> None:
    problems = _problems(rule=RuleSpec(Frequency.DAILY, until=until))
    assert _codes(problems) == [(code, "recurrence_rule.until")]


def test_every_problem_is_reported_at_once() -> None:
    problems = _problems(
        starts="2026-01-01T00:00:00",
        cron=CronSpec("0 0 L * *", "Mars/Olympus"),
        rule=RuleSpec(Frequency.DAILY, interval=0, count=0, byday=[Weekday.MO], until="2026-02-01"),
    )
    assert _codes(problems) == sorted(
        [
            ("offset_required", "starts"),
            ("cron_and_recurrence_rule", "cron"),
            ("cron_unsupported", "cron.schedule"),
            ("time_zone_unknown", "cron.time_zone"),
            ("too_small", "recurrence_rule.interval"),
            ("too_small", "recurrence_rule.count"),
            ("byday_requires_weekly", "recurrence_rule.byday"),
            ("invalid_datetime", "recurrence_rule.until"),
        ]
    )


def test_until_before_starts_is_reported_alongside_other_rule_problems() -> None:
    problems = _problems(
        rule=RuleSpec(Frequency.HOURLY, interval=0, until="2025-01-01T00:00:00Z"),
    )
    assert _codes(problems) == [
        ("too_small", "recurrence_rule.interval"),
        ("until_before_starts", "recurrence_rule.until"),
    ]


def test_a_schedule_with_neither_cron_nor_rule_is_a_one_shot_at_starts() -> None:
    schedule = build_schedule(starts="2026-01-01T01:00:00+01:00")
    assert schedule.trigger == Once()
    assert schedule.starts.isoformat() == "2026-01-01T01:00:00+01:00"


# --- the k6 wire shape ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("not json", [("invalid_json", None)]),
        ('{"starts": "2026-01-01T00:00:00Z"', [("invalid_json", None)]),
        ("", [("invalid_json", None)]),
        ("[]", [("invalid_type", None)]),
        ('"2026-01-01T00:00:00Z"', [("invalid_type", None)]),
        ("null", [("invalid_type", None)]),
        ("{}", [("required", "starts")]),
        ('{"starts": 5}', [("invalid_type", "starts")]),
        ('{"starts": null}', [("invalid_type", "starts")]),
        (_body(cron="0 0 * * *"), [("invalid_type", "cron")]),
        (_body(cron={"schedule": "0 0 * * *"}), [("required", "cron.time_zone")]),
        (_body(cron={"time_zone": "UTC"}), [("required", "cron.schedule")]),
        (_body(cron={"schedule": 5, "time_zone": "UTC"}), [("invalid_type", "cron.schedule")]),
        (
            _body(cron={"schedule": "0" * 257, "time_zone": "UTC"}),
            [("too_long", "cron.schedule")],
        ),
        (
            _body(cron={"schedule": "0 0 * * *", "time_zone": "A" * 129}),
            [("too_long", "cron.time_zone")],
        ),
        (_body(recurrence_rule={}), [("required", "recurrence_rule.frequency")]),
        (
            _body(recurrence_rule={"frequency": "SECONDLY"}),
            [("invalid_choice", "recurrence_rule.frequency")],
        ),
        (
            _body(recurrence_rule={"frequency": "daily"}),
            [("invalid_choice", "recurrence_rule.frequency")],
        ),
        (
            _body(recurrence_rule={"frequency": "DAILY", "interval": "2"}),
            [("invalid_type", "recurrence_rule.interval")],
        ),
        (
            _body(recurrence_rule={"frequency": "DAILY", "interval": 1.5}),
            [("invalid_type", "recurrence_rule.interval")],
        ),
        (
            _body(recurrence_rule={"frequency": "DAILY", "count": True}),
            [("invalid_type", "recurrence_rule.count")],
        ),
        (
            _body(recurrence_rule={"frequency": "DAILY", "interval": 0, "count": 0}),
            [("too_small", "recurrence_rule.count"), ("too_small", "recurrence_rule.interval")],
        ),
        (
            _body(recurrence_rule={"frequency": "WEEKLY", "byday": ["MO", "XX"]}),
            [("invalid_choice", "recurrence_rule.byday.1")],
        ),
        (
            _body(recurrence_rule={"frequency": "WEEKLY", "byday": "MO"}),
            [("invalid_type", "recurrence_rule.byday")],
        ),
        (
            _body(recurrence_rule={"frequency": "DAILY", "until": 20260101}),
            [("invalid_type", "recurrence_rule.until")],
        ),
    ],
)
def test_a_request_body_of_the_wrong_shape_is_reported_per_field(
    body: str, expected: list[tuple[str, str | None]]
) -> None:
    assert _k6_problems(body) == sorted(expected)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            _body(
                cron={"schedule": "0 0 * * *", "time_zone": "UTC"},
                recurrence_rule={"frequency": "DAILY"},
            ),
            [("cron_and_recurrence_rule", "cron")],
        ),
        (
            json.dumps({"starts": "2026-01-01T00:00:00"}),
            [("offset_required", "starts")],
        ),
        (
            _body(cron={"schedule": "@reboot", "time_zone": "UTC"}),
            [("cron_alias_unknown", "cron.schedule")],
        ),
        (
            _body(cron={"schedule": "0 0 0 * * *", "time_zone": "Europe/Nowhere"}),
            [("cron_field_count", "cron.schedule"), ("time_zone_unknown", "cron.time_zone")],
        ),
        (
            _body(
                recurrence_rule={
                    "frequency": "MONTHLY",
                    "byday": ["MO"],
                    "until": "2025-01-01T00:00:00Z",
                }
            ),
            [
                ("byday_requires_weekly", "recurrence_rule.byday"),
                ("until_before_starts", "recurrence_rule.until"),
            ],
        ),
    ],
)
def test_a_well_shaped_request_still_gets_the_cross_field_checks(
    body: str, expected: list[tuple[str, str | None]]
) -> None:
    assert _k6_problems(body) == sorted(expected)


EVERY_TWO_HOURS = (
    '{"recurrence_rule": {"frequency": "HOURLY", "interval": 2}, '
    '"starts": "2024-07-16T08:46:04.021Z"}'
)
TRIGGERED_ONCE = '{"recurrence_rule": null, "starts": "2028-08-01T12:00:00.000Z"}'
WEEKENDS_TEN_RUNS = (
    '{"recurrence_rule": {"byday": ["SA", "SU"], "count": 10, "frequency": "WEEKLY"}, '
    '"starts": "2024-07-16T08:46:04.021Z"}'
)
MONDAYS_AT_SEVEN = (
    '{"cron": {"schedule": "0 7 * * 1", "time_zone": "Europe/Stockholm"}, '
    '"starts": "2024-07-16T08:46:04.021Z"}'
)


@pytest.mark.parametrize(
    ("body", "trigger"),
    [
        (EVERY_TWO_HOURS, Rule(Frequency.HOURLY, interval=2)),
        (TRIGGERED_ONCE, Once()),
        (WEEKENDS_TEN_RUNS, Rule(Frequency.WEEKLY, byday=(Weekday.SA, Weekday.SU), count=10)),
        (MONDAYS_AT_SEVEN, Cron("0 7 * * 1", "Europe/Stockholm")),
        (b'{"starts": "2028-08-01T12:00:00.000Z", "cron": null}', Once()),
    ],
)
def test_the_documented_example_bodies_are_accepted(
    body: str | bytes, trigger: Cron | Rule | Once
) -> None:
    request, schedule = parse_create_schedule(body)
    assert schedule.trigger == trigger
    assert schedule.starts == parse_instant(request.starts)


def test_omitted_rule_fields_take_their_defaults() -> None:
    request, schedule = parse_create_schedule(_body(recurrence_rule={"frequency": "DAILY"}))
    assert request.recurrence_rule is not None
    assert request.recurrence_rule.interval == 1
    assert schedule.trigger == Rule(Frequency.DAILY, interval=1)


def test_a_cron_alias_is_expanded_for_the_engine_and_kept_as_given_on_the_wire() -> None:
    request, schedule = parse_create_schedule(
        _body(cron={"schedule": "@weekly", "time_zone": "UTC"})
    )
    assert request.cron is not None
    assert request.cron.schedule == "@weekly"
    assert schedule.trigger == Cron("0 0 * * 0", "UTC")


# --- issue 12: the calendar's ends, bounds, RFC 5545, zones, unknown properties ------------


@pytest.mark.parametrize(
    "starts",
    [
        "9999-12-31T23:59:59-12:00",  # past the calendar once in UTC
        "9999-12-31T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+01:00",  # year 0 in UTC
        "1969-12-31T23:59:59.999Z",
        "1970-01-01T00:59:59+01:00",
    ],
)
def test_an_instant_outside_1970_to_9999_12_30_is_out_of_range(starts: str) -> None:
    for cron in (None, CronSpec("* * * * *", "UTC")):
        assert _codes(_problems(starts=starts, cron=cron)) == [("out_of_range", "starts")]


@pytest.mark.parametrize(
    "starts",
    ["1970-01-01T00:00:00Z", "1970-01-01T01:00:00+01:00", "9999-12-30T23:59:59.999Z"],
)
def test_the_first_and_last_instants_of_the_range_are_accepted(starts: str) -> None:
    build_schedule(starts=starts, cron=CronSpec("* * * * *", "Pacific/Kiritimati"))
    build_schedule(starts=starts, rule=RuleSpec(Frequency.YEARLY))


def test_until_outside_the_range_is_out_of_range() -> None:
    rule = RuleSpec(Frequency.DAILY, until="9999-12-31T23:59:59-12:00")
    assert _codes(_problems(rule=rule)) == [("out_of_range", "recurrence_rule.until")]


@pytest.mark.parametrize(
    ("field", "value", "code"),
    [
        ("interval", 10_001, "too_large"),
        ("interval", 10**12, "too_large"),
        ("count", 1_000_001, "too_large"),
    ],
)
def test_interval_and_count_have_upper_bounds(field: str, value: int, code: str) -> None:
    rule = RuleSpec(Frequency.DAILY, **{field: value})  # type: ignore[arg-type]
    assert _codes(_problems(rule=rule)) == [(code, f"recurrence_rule.{field}")]
    body = _body(recurrence_rule={"frequency": "DAILY", field: value})
    assert _k6_problems(body) == [(code, f"recurrence_rule.{field}")]


def test_the_largest_interval_and_count_are_accepted() -> None:
    build_schedule(starts=STARTS, rule=RuleSpec(Frequency.YEARLY, interval=10_000))
    build_schedule(starts=STARTS, rule=RuleSpec(Frequency.HOURLY, count=1_000_000))


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            {"frequency": "DAILY", "count": 3, "until": "2026-02-01T00:00:00Z"},
            [("count_and_until", "recurrence_rule.count")],
        ),
        (
            {"frequency": "WEEKLY", "byday": ["MO", "TU", "MO"]},
            [("byday_repeated", "recurrence_rule.byday")],
        ),
        (
            {"frequency": "WEEKLY", "byday": ["MO", "TU", "WE", "TH", "FR", "SA", "SU", "MO"]},
            [("too_long", "recurrence_rule.byday")],
        ),
        (
            {"frequency": "DAILY", "count": 3, "until": "2025-01-01T00:00:00Z"},
            [
                ("count_and_until", "recurrence_rule.count"),
                ("until_before_starts", "recurrence_rule.until"),
            ],
        ),
    ],
)
def test_a_k6_rule_follows_rfc_5545(
    rule: dict[str, Any], expected: list[tuple[str, str | None]]
) -> None:
    assert _k6_problems(_body(recurrence_rule=rule)) == sorted(expected)


@pytest.mark.parametrize(
    "time_zone",
    ["localtime", "posixrules", "Factory", "posix/Europe/Berlin", "right/UTC", "europe/berlin"],
)
def test_host_files_and_factory_are_not_time_zones(time_zone: str) -> None:
    problems = _problems(cron=CronSpec("0 0 * * *", time_zone))
    assert _codes(problems) == [("time_zone_unknown", "cron.time_zone")]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (_body(recurrence_rul={"frequency": "DAILY"}), [("unknown_field", "recurrence_rul")]),
        (
            _body(recurrence_rule={"frequency": "DAILY", "intervals": 2}),
            [("unknown_field", "recurrence_rule.intervals")],
        ),
        (
            _body(cron={"schedule": "0 0 * * *", "time_zone": "UTC", "timezone": "UTC"}),
            [("unknown_field", "cron.timezone")],
        ),
    ],
)
def test_an_unknown_field_is_refused_by_name(
    body: str, expected: list[tuple[str, str | None]]
) -> None:
    assert _k6_problems(body) == expected


def test_what_a_schedule_read_answers_may_be_sent_back() -> None:
    read = {
        "id": 7,
        "load_test_id": 3,
        "starts": STARTS,
        "recurrence_rule": {"frequency": "DAILY", "interval": 1, "byday": None},
        "cron": None,
        "deactivated": True,
        "next_run": None,
        "created_by": "alice@example.com",
        "overlap": "skip",
        "catch_up_seconds": None,
    }
    request, schedule = parse_create_schedule(json.dumps(read))
    assert schedule.trigger == Rule(Frequency.DAILY)
    assert "deactivated" not in request.model_dump()


def test_a_request_stored_before_todays_bounds_reads_back_as_stored() -> None:
    # What the store kept for a schedule set before interval, count, byday and count-with-
    # until were bounded: it must stay readable (GET, list), not become a 500.
    stored = {
        "starts": "1969-07-20T20:17:40Z",
        "recurrence_rule": {
            "frequency": "WEEKLY",
            "interval": 10**12,
            "byday": ["MO", "MO"],
            "until": "2030-01-01T00:00:00Z",
            "count": 10**9,
        },
        "cron": None,
        "overlap": "skip",
        "catch_up_seconds": None,
    }
    request = stored_request(json.dumps(stored))
    # read back as stored; the extensions added since read as unset
    assert json.loads(request.model_dump_json()) == stored | {"jitter_seconds": None}
