"""The Kragle dialect's timing: ``once`` and ``config`` as core triggers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from tickwork.core import Interval, Once, Schedule, occurrences_after
from tickwork.dialects.kragle import (
    TemplatePatch,
    Timing,
    anchor_of,
    apply_update,
    check_timing,
    parse_create,
    parse_update,
    to_core,
)
from tickwork.errors import ValidationError

ANCHOR = datetime(2026, 11, 23, 12, 0, 7, tzinfo=UTC)


def test_a_period_counts_from_the_anchor() -> None:
    schedule = to_core(Timing(False, {"period": 90}), anchor=ANCHOR)

    assert schedule == Schedule(ANCHOR + timedelta(seconds=90), Interval(timedelta(seconds=90)))
    assert occurrences_after(schedule, ANCHOR, 2) == [
        ANCHOR + timedelta(seconds=90),
        ANCHOR + timedelta(seconds=180),
    ]


def test_a_period_with_a_timestamp_first_runs_at_the_timestamp() -> None:
    schedule = to_core(Timing(False, {"period": 60, "timestamp": 1_800_000_000}), anchor=ANCHOR)

    assert schedule.starts == datetime.fromtimestamp(1_800_000_000, UTC)


def test_a_one_time_schedule_runs_once_at_its_timestamp() -> None:
    schedule = to_core(Timing(True, {"timestamp": 1_800_000_000}), anchor=ANCHOR)

    assert schedule == Schedule(datetime.fromtimestamp(1_800_000_000, UTC), Once())


def test_the_anchor_is_the_whole_second() -> None:
    assert anchor_of(ANCHOR + timedelta(microseconds=999_999)) == ANCHOR


@pytest.mark.parametrize(
    ("timing", "targets"),
    [
        (Timing(True, {}), {"config.timestamp"}),
        (Timing(True, {"period": 5}), {"config.timestamp", "config.period"}),
        (Timing(False, {}), {"config.period"}),
        (Timing(False, {"timestamp": 5}), {"config.period"}),
    ],
)
def test_once_and_config_must_agree(timing: Timing, targets: set[str]) -> None:
    with pytest.raises(ValidationError) as raised:
        check_timing(timing)

    assert {problem.target for problem in raised.value.problems} == targets


def test_parse_create_keeps_what_was_given() -> None:
    name, timing = parse_create(json.dumps({"config": {"period": 5}}).encode())

    assert (name, timing) == (None, Timing(False, {"period": 5}))


def test_parse_create_refuses_an_unknown_field_by_name() -> None:
    with pytest.raises(ValidationError) as refused:
        parse_create(json.dumps({"config": {"period": 5}, "unknown": 1}).encode())

    assert [problem.target for problem in refused.value.problems] == ["unknown"]


@dataclass(frozen=True)
class Template:
    """A stored template's fields, as the dialect reads them."""

    id: int
    name: str | None
    once: bool
    config: dict[str, int]
    anchor: datetime
    schedule: Schedule


EVERY_90 = Template(
    id=1,
    name="nightly",
    once=False,
    config={"period": 90},
    anchor=ANCHOR,
    schedule=to_core(Timing(False, {"period": 90}), anchor=ANCHOR),
)
LATER = ANCHOR + timedelta(hours=1, microseconds=250)


def _put(body: dict[str, object]) -> TemplatePatch:
    return parse_update(json.dumps({"id": 1} | body).encode())


def test_a_rename_keeps_the_timing_and_its_anchor() -> None:
    new = apply_update(EVERY_90, _put({"name": "weekly"}), now=LATER)

    assert (new.name, new.moved) == ("weekly", False)
    assert (new.anchor, new.schedule) == (EVERY_90.anchor, EVERY_90.schedule)


def test_a_new_period_counts_from_the_whole_second_of_the_update() -> None:
    new = apply_update(EVERY_90, _put({"config": {"period": 60}}), now=LATER)

    assert new.moved
    assert new.anchor == anchor_of(LATER)
    assert occurrences_after(new.schedule, LATER, 1) == [anchor_of(LATER) + timedelta(seconds=60)]
    assert new.name == "nightly"  # not given: kept


def test_the_timing_given_as_it_was_moves_nothing() -> None:
    new = apply_update(EVERY_90, _put({"once": False, "config": {"period": 90}}), now=LATER)

    assert not new.moved
    assert new.schedule == EVERY_90.schedule


def test_an_update_whose_timing_does_not_hold_is_refused_by_field() -> None:
    with pytest.raises(ValidationError) as refused:
        apply_update(EVERY_90, _put({"once": True}), now=LATER)

    assert {problem.target for problem in refused.value.problems} == {
        "config.timestamp",
        "config.period",
    }
