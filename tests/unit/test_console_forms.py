"""The console's pure parts: the rule editor's form <-> CreateScheduleRequest, problems placed
by the field they name, and times always shown with their zone."""

from __future__ import annotations

from datetime import UTC, datetime

from tickwork.console.schedule_form import (
    GENERAL,
    field_errors,
    field_of,
    form_values,
    request_document,
)
from tickwork.console.times import ago, duration, local_text, schedule_zone, tz_of
from tickwork.core import CronSpec, build_schedule
from tickwork.errors import Problem


def test_each_kind_of_rule_becomes_the_request_the_api_takes() -> None:
    assert request_document({"kind": ["once"], "starts": [" 2026-11-23T09:00:00Z "]}) == {
        "starts": "2026-11-23T09:00:00Z"
    }
    cron = {
        "kind": ["cron"],
        "starts": ["2026-11-23T09:00:00Z"],
        "cron.schedule": ["0 9 * * 1-5"],
        "cron.time_zone": ["Europe/Berlin"],
        "recurrence_rule.frequency": ["DAILY"],  # hidden fields of the other kind: ignored
        "overlap": ["allow"],
        "catch_up_seconds": ["60"],
    }
    assert request_document(cron) == {
        "starts": "2026-11-23T09:00:00Z",
        "cron": {"schedule": "0 9 * * 1-5", "time_zone": "Europe/Berlin"},
        "overlap": "allow",
        "catch_up_seconds": 60,
    }
    rule = {
        "kind": ["rule"],
        "starts": ["2026-11-23T09:00:00Z"],
        "recurrence_rule.frequency": ["WEEKLY"],
        "recurrence_rule.interval": ["2"],
        "recurrence_rule.byday": ["MO", "WE"],
        "recurrence_rule.count": [""],
        "recurrence_rule.until": ["2027-01-01T00:00:00Z"],
    }
    assert request_document(rule) == {
        "starts": "2026-11-23T09:00:00Z",
        "recurrence_rule": {
            "frequency": "WEEKLY",
            "interval": 2,
            "byday": ["MO", "WE"],
            "until": "2027-01-01T00:00:00Z",
        },
    }


def test_a_number_field_that_is_no_integer_is_passed_as_written() -> None:
    # so that the API's own type error names the field, in its words
    document = request_document(
        {"kind": ["rule"], "starts": ["x"], "recurrence_rule.interval": ["two"]}
    )
    assert document["recurrence_rule"]["interval"] == "two"


def test_problems_are_placed_by_the_field_their_target_names() -> None:
    assert field_of("recurrence_rule.byday.1") == "recurrence_rule.byday"
    assert field_of("cron.schedule") == "cron.schedule"
    assert field_of("cron") == "kind"
    assert field_of(None) == GENERAL
    assert field_of("something.else") == GENERAL
    problems = [
        Problem("a", "starts", "one"),
        Problem("b", "starts", "two"),
        Problem("c", None, "three"),
    ]
    assert field_errors(problems) == {"starts": ["one", "two"], GENERAL: ["three"]}


def test_the_editor_starts_from_the_stored_rule_or_a_one_shot_a_minute_ahead() -> None:
    now = datetime(2026, 11, 23, 12, 0, 30, 500, tzinfo=UTC)
    fresh = form_values(None, now=now, zone="Europe/Berlin")
    assert (fresh["kind"], fresh["starts"]) == ("once", "2026-11-23T12:01:30Z")
    assert fresh["cron.time_zone"] == "Europe/Berlin"
    stored = {
        "starts": "2026-01-01T08:00:00+01:00",
        "recurrence_rule": {"frequency": "WEEKLY", "interval": 2, "byday": ["FR"], "count": 3},
        "cron": None,
        "overlap": "allow",
        "catch_up_seconds": None,
    }
    values = form_values(stored, now=now, zone="UTC")
    assert values["kind"] == "rule"
    assert values["starts"] == "2026-01-01T08:00:00+01:00"
    assert values["recurrence_rule.byday"] == ["FR"]
    assert values["recurrence_rule.count"] == "3"
    assert values["catch_up_seconds"] == ""


def test_times_carry_their_zone() -> None:
    instant = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    assert local_text(instant, tz_of("Europe/Berlin")) == "2026-03-29 03:30 CEST"
    assert local_text(instant, tz_of("Asia/Kolkata")) == "2026-03-29 07:00 IST"
    assert local_text(instant, tz_of("America/Sao_Paulo")) == "2026-03-28 22:30 UTC-03:00"
    assert local_text(instant, tz_of("no/such zone")) == "2026-03-29 01:30 UTC"
    cron = build_schedule(starts="2026-01-01T00:00:00Z", cron=CronSpec("0 9 * * *", "Asia/Tokyo"))
    assert schedule_zone(cron)[1] == "Asia/Tokyo"
    once = build_schedule(starts="2026-01-01T00:00:00+05:30")
    assert schedule_zone(once)[1] == "UTC+05:30"


def test_spans_read_as_people_say_them() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    assert ago(datetime(2026, 11, 23, 12, 0, 42, tzinfo=UTC), now) == "in 42 s"
    assert ago(datetime(2026, 11, 23, 9, 30, tzinfo=UTC), now) == "2 h 30 min ago"
    assert ago(None, now) == ""
    assert duration(now, datetime(2026, 11, 23, 12, 0, 1, 250_000, tzinfo=UTC)) == "1.2 s"
    assert duration(now, datetime(2026, 11, 23, 12, 3, 5, tzinfo=UTC)) == "3 min 5 s"
    assert duration(now, None) == ""


def test_the_operator_controls_of_a_rule_go_into_the_request_only_when_set() -> None:
    base = {
        "kind": ["cron"],
        "starts": ["2026-11-23T09:00:00Z"],
        "cron.schedule": ["30 2 * * *"],
        "cron.time_zone": ["Europe/Berlin"],
        "cron.dst.gap": ["shift"],
        "cron.dst.repeat": ["first"],
    }
    assert "dst" not in request_document(base)["cron"]  # cron's own way: absent, as k6 has it
    assert "jitter_seconds" not in request_document(base)
    chosen = base | {"cron.dst.gap": ["skip"], "jitter_seconds": ["30"]}
    document = request_document(chosen)
    assert document["cron"]["dst"] == {"gap": "skip", "repeat": "first"}
    assert document["jitter_seconds"] == 30
    stored = {
        "starts": "2026-11-23T09:00:00Z",
        "cron": {"schedule": "30 2 * * *", "time_zone": "Europe/Berlin", "dst": {"gap": "skip"}},
        "jitter_seconds": 30,
    }
    values = form_values(stored, now=datetime(2026, 11, 23, tzinfo=UTC), zone="UTC")
    assert (values["cron.dst.gap"], values["cron.dst.repeat"]) == ("skip", "first")
    assert values["jitter_seconds"] == "30"
