"""Properties of the occurrence engine, checked against brute-force references.

The references are written from the contract, not from the engine: the cron one walks UTC
minutes and looks at the local wall clock (with cronie's handling of gaps and folds), the rule
one steps a day (or an hour) at a time from ``starts`` and keeps the candidates the rule
describes.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from functools import cache
from itertools import count as counter
from itertools import islice, pairwise
from zoneinfo import ZoneInfo

from hypothesis import assume, given, note, reject, settings
from hypothesis import strategies as st

from tickwork.core import (
    CronSpec,
    Frequency,
    Interval,
    Once,
    RuleSpec,
    Schedule,
    Weekday,
    build_schedule,
    is_expired,
    iter_after,
    next_after,
    next_run,
    occurrences_after,
)
from tickwork.errors import ValidationError

ONE_MINUTE = timedelta(minutes=1)
ONE_MICROSECOND = timedelta(microseconds=1)

ZONES = (
    "UTC",
    "Asia/Kolkata",
    "America/New_York",
    "Europe/Berlin",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",
    "America/Havana",
    "America/Santiago",
    "Antarctica/Troll",  # a two-hour shift
)
# where cronsim's own zone handling went wrong: half-hour shifts, gaps at midnight, 2 hours
EXOTIC_ZONES = ("Australia/Lord_Howe", "America/Havana", "America/Santiago", "Antarctica/Troll")


# --- helpers shared by the properties -------------------------------------------------------


def _first_after(values: list[datetime], instant: datetime) -> datetime | None:
    return next((value for value in values if value > instant), None)


def _check_against_reference(
    schedule: Schedule,
    reference: list[datetime],
    *,
    complete: bool,
    horizon: datetime,
    probes: list[datetime],
) -> None:
    """The engine lists the reference's occurrences up to ``horizon`` and agrees on probes.

    ``reference`` holds every occurrence up to ``horizon``, and ``complete`` says that there are
    none after it (the series ended).
    """
    engine: list[datetime] = []
    for value in iter_after(schedule, schedule.starts - ONE_MICROSECOND):
        if value > horizon or len(engine) > len(reference):
            break
        engine.append(value)
    assert engine == reference
    for probe in probes:
        expected = _first_after(reference, probe)
        if expected is None and not complete:
            continue  # beyond what the reference looked at
        assert next_after(schedule, probe) == expected, f"next after {probe}"
        at_or_after = _first_after(reference, probe - ONE_MICROSECOND)
        assert next_run(schedule, now=probe) == at_or_after, f"next run at {probe}"


def _some_of(values: list[datetime]) -> st.SearchStrategy[list[datetime]]:
    return st.lists(st.sampled_from(values), max_size=3) if values else st.just([])


def _check_series_shape(schedule: Schedule, after: datetime, limit: int) -> list[datetime]:
    found = occurrences_after(schedule, after, limit)
    assert all(value.utcoffset() == timedelta(0) for value in found)
    assert all(value >= schedule.starts for value in found)
    assert all(value > after for value in found)
    assert all(a < b for a, b in pairwise(found))
    return found


# --- transitions, to put starts near them ---------------------------------------------------


@cache
def _transitions(zone_name: str) -> tuple[datetime, ...]:
    """Instants in 2025-2028 where the zone's UTC offset changes (to the minute)."""
    tz = ZoneInfo(zone_name)
    found: list[datetime] = []
    day = datetime(2025, 1, 1, tzinfo=UTC)
    while day.year < 2029:
        following = day + timedelta(days=1)
        if day.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            low, high = day, following  # offset(low) != offset(high): bisect to the minute
            while high - low > ONE_MINUTE:
                middle = low + (high - low) / 2
                middle = middle.replace(second=0, microsecond=0)
                if middle <= low:
                    middle = low + ONE_MINUTE
                if middle.astimezone(tz).utcoffset() == low.astimezone(tz).utcoffset():
                    low = middle
                else:
                    high = middle
            found.append(high)
        day = following
    return tuple(found)


def test_every_zone_with_daylight_saving_time_has_transitions_to_test_near() -> None:
    assert _transitions("UTC") == ()
    assert _transitions("Asia/Kolkata") == ()
    assert datetime(2026, 3, 8, 7, tzinfo=UTC) in _transitions("America/New_York")
    assert datetime(2026, 10, 3, 15, 30, tzinfo=UTC) in _transitions("Australia/Lord_Howe")
    for name in ZONES[2:]:
        assert len(_transitions(name)) >= 6, name


@st.composite
def near_transitions(draw: st.DrawFn, zone_name: str) -> datetime:
    """An instant, most often within a day and a half of one of the zone's transitions."""
    transitions = _transitions(zone_name)
    if transitions and draw(st.integers(0, 9)) > 0:
        base = draw(st.sampled_from(transitions))
        minutes = draw(st.integers(-36 * 60, 36 * 60) | st.integers(-6 * 60, 60))
    else:
        base = datetime(2026, 1, 1, tzinfo=UTC)
        minutes = draw(st.integers(0, 365 * 24 * 60))
    seconds = draw(st.sampled_from([0, 0, 0, 1, 30, 59]))
    micros = draw(st.sampled_from([0, 0, 0, 1, 999_999]))
    return base + timedelta(minutes=minutes, seconds=seconds, microseconds=micros)


# --- cron: expressions from the grammar and a minute-by-minute reference ---------------------


@dataclass(frozen=True)
class CronField:
    text: str
    values: frozenset[int]
    wildcard: bool  # the field begins with '*'


@dataclass(frozen=True)
class CronExpression:
    minute: CronField
    hour: CronField
    day_of_month: CronField
    month: CronField
    day_of_week: CronField

    @property
    def text(self) -> str:
        fields = (self.minute, self.hour, self.day_of_month, self.month, self.day_of_week)
        return " ".join(field.text for field in fields)

    @property
    def on_wall_clock(self) -> bool:
        return not self.minute.wildcard and not self.hour.wildcard

    def matches(self, wall: datetime) -> bool:
        if wall.minute not in self.minute.values or wall.hour not in self.hour.values:
            return False
        if wall.month not in self.month.values:
            return False
        by_date = wall.day in self.day_of_month.values
        sunday_zero = (wall.weekday() + 1) % 7
        by_weekday = sunday_zero in {value % 7 for value in self.day_of_week.values}
        if self.day_of_month.wildcard or self.day_of_week.wildcard:
            return by_date and by_weekday
        return by_date or by_weekday


MONTH_NAMES = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAY_NAMES = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")


@st.composite
def field_items(
    draw: st.DrawFn,
    low: int,
    high: int,
    name_of: Callable[[int], str | None],
    likely: tuple[int, ...],
) -> tuple[str, frozenset[int], bool]:
    def render(value: int) -> str:
        name = name_of(value)
        if name is not None and draw(st.booleans()):
            return draw(st.sampled_from([name, name.upper(), name.title()]))
        return str(value)

    kind = draw(st.sampled_from(["star", "value", "value", "range", "range"]))
    if kind == "star":
        step = draw(st.none() | st.integers(1, high - low + 2))
        values = range(low, high + 1, step or 1)
        return ("*" if step is None else f"*/{step}", frozenset(values), True)
    first = draw(st.integers(low, high) | st.sampled_from(likely or (low,)))
    if kind == "value":
        return render(first), frozenset({first}), False
    last = draw(st.integers(first, min(high, first + draw(st.sampled_from([1, 3, 10, 60])))))
    step = draw(st.none() | st.integers(1, 12))
    text = f"{render(first)}-{render(last)}" + ("" if step is None else f"/{step}")
    return text, frozenset(range(first, last + 1, step or 1)), False


@st.composite
def cron_fields(
    draw: st.DrawFn,
    low: int,
    high: int,
    name_of: Callable[[int], str | None] = lambda _: None,
    likely: tuple[int, ...] = (),
) -> CronField:
    items = draw(st.lists(field_items(low, high, name_of, likely), min_size=1, max_size=3))
    values = frozenset().union(*(item[1] for item in items))
    return CronField(",".join(item[0] for item in items), values, items[0][2])


def _month_name(value: int) -> str | None:
    return MONTH_NAMES[value - 1]


def _day_name(value: int) -> str | None:
    return DAY_NAMES[value] if value < 7 else None


def _every(low: int, high: int) -> st.SearchStrategy[CronField]:
    return st.just(CronField("*", frozenset(range(low, high + 1)), True))


@st.composite
def cron_expressions(draw: st.DrawFn) -> CronExpression:
    """Expressions from the grammar, leaning to wall times near the transitions."""
    return CronExpression(
        minute=draw(cron_fields(0, 59, likely=(0, 15, 30, 45, 59))),
        hour=draw(cron_fields(0, 23, likely=(0, 1, 2, 3, 22, 23))),
        day_of_month=draw(_every(1, 31) | cron_fields(1, 31)),
        month=draw(_every(1, 12) | cron_fields(1, 12, _month_name)),
        day_of_week=draw(_every(0, 7) | cron_fields(0, 7, _day_name)),
    )


def _cron_schedule(starts: datetime, expression: CronExpression, zone_name: str) -> Schedule:
    """The schedule, or a rejected example when the days it names never occur (Feb 30)."""
    try:
        return build_schedule(starts=starts.isoformat(), cron=CronSpec(expression.text, zone_name))
    except ValidationError as exc:
        if [problem.code for problem in exc.problems] != ["cron_never_matches"]:
            raise
        reject()


def _ceil_to_minute(instant: datetime) -> datetime:
    floored = instant.replace(second=0, microsecond=0)
    return floored if floored == instant else floored + ONE_MINUTE


def reference_cron(
    expression: CronExpression, zone_name: str, starts: datetime, horizon: datetime
) -> list[datetime]:
    """Every occurrence in [starts, horizon], by looking at each UTC minute's wall clock.

    An elapsed-time job fires at each minute whose wall time matches (so twice for a repeated
    wall time and never for a skipped one). A wall-clock job fires at the first pass of a
    matching wall time, and at the first minute after a gap when a skipped wall time matches.
    """
    tz = ZoneInfo(zone_name)
    found: list[datetime] = []
    minute = _ceil_to_minute(starts)
    previous_wall = (minute - ONE_MINUTE).astimezone(tz).replace(tzinfo=None)
    while minute <= horizon:
        local = minute.astimezone(tz)
        wall = local.replace(tzinfo=None)
        if not expression.on_wall_clock:
            fires = expression.matches(wall)
        else:
            fires = expression.matches(wall) and local.fold == 0
            skipped = previous_wall + ONE_MINUTE
            while not fires and skipped < wall:
                fires = expression.matches(skipped)
                skipped += ONE_MINUTE
        if fires:
            found.append(minute)
        previous_wall = wall
        minute += ONE_MINUTE
    return found


def test_the_cron_reference_knows_the_contract_examples() -> None:
    fixed = CronExpression(
        CronField("30", frozenset({30}), False),
        CronField("1", frozenset({1}), False),
        CronField("*", frozenset(range(1, 32)), True),
        CronField("*", frozenset(range(1, 13)), True),
        CronField("*", frozenset(range(8)), True),
    )
    fold_day = datetime(2026, 11, 1, tzinfo=UTC)
    got = reference_cron(fixed, "America/New_York", fold_day, fold_day + timedelta(days=1))
    assert got == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC)]
    gap = CronExpression(
        CronField("30", frozenset({30}), False),
        CronField("2", frozenset({2}), False),
        fixed.day_of_month,
        fixed.month,
        fixed.day_of_week,
    )
    gap_day = datetime(2026, 3, 8, tzinfo=UTC)
    got = reference_cron(gap, "America/New_York", gap_day, gap_day + timedelta(days=1))
    assert got == [datetime(2026, 3, 8, 7, tzinfo=UTC)]


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    expression=cron_expressions(),
    zone_name=st.sampled_from(ZONES) | st.sampled_from(EXOTIC_ZONES),
)
def test_cron_occurrences_agree_with_a_minute_by_minute_reference(
    data: st.DataObject, expression: CronExpression, zone_name: str
) -> None:
    note(f"cron {expression.text!r} in {zone_name}")
    schedule = _cron_schedule(data.draw(near_transitions(zone_name)), expression, zone_name)
    starts = schedule.starts
    horizon = starts + timedelta(days=2)
    reference = reference_cron(expression, zone_name, starts, horizon)[:400]
    if len(reference) == 400:
        horizon = reference[-1]
    probes = [
        starts - timedelta(hours=1),
        *data.draw(_some_of(reference)),
        starts + data.draw(st.timedeltas(timedelta(0), horizon - starts)),
    ]
    _check_against_reference(schedule, reference, complete=False, horizon=horizon, probes=probes)


# --- recurrence rules: a stepping reference -------------------------------------------------

OFFSETS = tuple(
    timezone(timedelta(minutes=m)) for m in (0, 0, -300, -240, 60, 330, 345, 825, -570, 840)
)
WEEKDAY_NUMBERS = {day: index for index, day in enumerate(Weekday)}


@dataclass(frozen=True)
class RuleCase:
    starts: datetime
    frequency: Frequency
    interval: int
    byday: tuple[Weekday, ...] | None
    count: int | None
    until: datetime | None

    def schedule(self) -> Schedule:
        return build_schedule(
            starts=self.starts.isoformat(),
            rule=RuleSpec(
                frequency=self.frequency,
                interval=self.interval,
                byday=list(self.byday) if self.byday else None,
                count=self.count,
                until=self.until.isoformat() if self.until else None,
            ),
        )


def _days_in_month(year: int, month: int) -> int:
    return calendar.monthrange(year, month)[1]


def _unbounded_reference(case: RuleCase) -> Iterator[datetime]:
    """Candidates stepped from starts (an hour or a day at a time), kept when they fit."""
    starts = case.starts
    if case.frequency is Frequency.HOURLY:
        for hours in counter():
            if hours % case.interval == 0:
                yield starts + timedelta(hours=hours)
        return
    week_of_starts = starts.date() - timedelta(days=starts.weekday())
    for days in counter():
        day: date = starts.date() + timedelta(days=days)
        months = (day.year - starts.year) * 12 + day.month - starts.month
        wanted_day = min(starts.day, _days_in_month(day.year, day.month))
        if case.frequency is Frequency.DAILY:
            fits = days % case.interval == 0
        elif case.frequency is Frequency.WEEKLY and not case.byday:
            fits = days % (7 * case.interval) == 0
        elif case.frequency is Frequency.WEEKLY:
            assert case.byday
            weeks = (day - week_of_starts).days // 7
            on_a_day = day.weekday() in {WEEKDAY_NUMBERS[d] for d in case.byday}
            fits = on_a_day and weeks % case.interval == 0
        elif case.frequency is Frequency.MONTHLY:
            fits = months % case.interval == 0 and day.day == wanted_day
        else:
            years = day.year - starts.year
            fits = (
                years % case.interval == 0 and day.month == starts.month and day.day == wanted_day
            )
        if fits:
            yield datetime.combine(day, starts.timetz())


def reference_rule(case: RuleCase, limit: int) -> tuple[list[datetime], bool]:
    """The first ``limit`` occurrences, and whether the series ends within them."""
    found: list[datetime] = []
    for value in _unbounded_reference(case):
        if case.count is not None and len(found) >= case.count:
            return found, True
        if case.until is not None and value > case.until:
            return found, True
        if len(found) >= limit:
            return found, False
        found.append(value)
    raise AssertionError("unreachable")


@st.composite
def rule_cases(draw: st.DrawFn) -> RuleCase:
    frequency = draw(st.sampled_from(Frequency))
    offset = draw(st.sampled_from(OFFSETS))
    year = draw(st.integers(2020, 2030))
    month = draw(st.integers(1, 12))
    if frequency in (Frequency.MONTHLY, Frequency.YEARLY) and draw(st.booleans()):
        if draw(st.booleans()):
            year, month = draw(st.sampled_from([2024, 2028])), 2
        day = draw(st.integers(28, _days_in_month(year, month)))
    else:
        day = draw(st.integers(1, _days_in_month(year, month)))
    starts = datetime(
        year,
        month,
        day,
        draw(st.integers(0, 23)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 59)),
        draw(st.integers(0, 999)) * 1000,
        tzinfo=offset,
    )
    byday = None
    if frequency is Frequency.WEEKLY and draw(st.booleans()):
        byday = tuple(draw(st.lists(st.sampled_from(Weekday), min_size=1, max_size=7)))
    interval = draw(st.integers(1, 3 if frequency is Frequency.YEARLY else 5))
    count = draw(st.none() | st.integers(1, 12))
    until = None
    if draw(st.booleans()):
        span = {
            Frequency.HOURLY: timedelta(hours=40),
            Frequency.DAILY: timedelta(days=40),
            Frequency.WEEKLY: timedelta(weeks=30),
            Frequency.MONTHLY: timedelta(days=900),
            Frequency.YEARLY: timedelta(days=3000),
        }[frequency]
        until = starts + draw(st.timedeltas(timedelta(0), span))
        until = until.astimezone(draw(st.sampled_from(OFFSETS)))
        if draw(st.booleans()) and until.replace(microsecond=0) >= starts:
            until = until.replace(microsecond=0)
    return RuleCase(starts, frequency, interval, byday, count, until)


@settings(max_examples=250, deadline=None)
@given(case=rule_cases(), data=st.data())
def test_rule_occurrences_agree_with_a_stepping_reference(
    case: RuleCase, data: st.DataObject
) -> None:
    note(repr(case))
    schedule = case.schedule()
    reference, complete = reference_rule(case, limit=10)
    horizon = reference[-1] if reference and not complete else datetime(9999, 1, 1, tzinfo=UTC)
    probes = [case.starts - timedelta(days=1), case.starts]
    for value in data.draw(_some_of(reference)):
        probes.extend([value - ONE_MICROSECOND, value, value + timedelta(minutes=1)])
    if case.until is not None:
        probes.append(case.until)
    _check_against_reference(schedule, reference, complete=complete, horizon=horizon, probes=probes)


@settings(max_examples=150, deadline=None)
@given(case=rule_cases())
def test_rule_occurrences_obey_count_and_until(case: RuleCase) -> None:
    note(repr(case))
    schedule = case.schedule()
    found = _check_series_shape(schedule, case.starts - timedelta(days=1), 20)
    if case.count is not None:
        assert len(found) <= case.count
    if case.until is not None:
        assert all(value <= case.until for value in found)
    if found and len(found) < 20:
        assert is_expired(schedule, now=found[-1] + ONE_MICROSECOND)
        assert not is_expired(schedule, now=found[-1])


# --- every trigger ----------------------------------------------------------------------------


@st.composite
def any_schedules(draw: st.DrawFn) -> Schedule:
    kind = draw(st.sampled_from(["once", "interval", "cron", "rule"]))
    if kind == "rule":
        return draw(rule_cases()).schedule()
    starts = datetime(2026, 1, 1, tzinfo=UTC) + draw(
        st.timedeltas(timedelta(0), timedelta(days=365))
    )
    starts = starts.astimezone(draw(st.sampled_from(OFFSETS)))
    if kind == "once":
        return Schedule(starts=starts, trigger=Once())
    if kind == "interval":
        period = draw(st.timedeltas(timedelta(milliseconds=1), timedelta(days=40)))
        return Schedule(starts=starts, trigger=Interval(period))
    return _cron_schedule(starts, draw(cron_expressions()), draw(st.sampled_from(ZONES)))


@settings(max_examples=200, deadline=None)
@given(schedule=any_schedules(), data=st.data())
def test_occurrences_strictly_increase_and_never_come_before_starts(
    schedule: Schedule, data: st.DataObject
) -> None:
    after = schedule.starts + data.draw(st.timedeltas(timedelta(days=-3), timedelta(days=30)))
    _check_series_shape(schedule, after, 25)


@settings(max_examples=200, deadline=None)
@given(schedule=any_schedules(), data=st.data())
def test_next_run_is_the_first_occurrence_at_or_after_now(
    schedule: Schedule, data: st.DataObject
) -> None:
    found = occurrences_after(schedule, schedule.starts - ONE_MICROSECOND, 12)
    assume(found)
    index = data.draw(st.integers(0, len(found) - 1))
    exact = found[index]
    assert next_run(schedule, now=exact) == exact
    if index + 1 < len(found):
        assert next_after(schedule, exact) == found[index + 1]
    previous = found[index - 1] if index else schedule.starts - timedelta(days=1)
    between = previous + (exact - previous) * data.draw(st.floats(0.001, 1.0))
    assume(previous < between <= exact)
    assert next_run(schedule, now=between) == exact


def test_a_one_shot_occurs_once_at_starts() -> None:
    starts = datetime(2026, 5, 5, 12, 30, 0, 21000, tzinfo=timezone(timedelta(hours=2)))
    schedule = Schedule(starts=starts, trigger=Once())
    assert occurrences_after(schedule, starts - timedelta(days=1), 5) == [starts]
    assert next_run(schedule, now=starts) == starts
    assert next_after(schedule, starts) is None
    assert is_expired(schedule, now=starts + ONE_MICROSECOND)


def test_an_interval_counts_periods_from_starts() -> None:
    starts = datetime(2026, 3, 8, 6, 15, tzinfo=UTC)
    schedule = Schedule(starts=starts, trigger=Interval(timedelta(minutes=90)))
    assert list(islice(iter_after(schedule, datetime(2020, 1, 1, tzinfo=UTC)), 3)) == [
        starts,
        starts + timedelta(minutes=90),
        starts + timedelta(minutes=180),
    ]
    assert next_after(schedule, starts + timedelta(minutes=90)) == starts + timedelta(minutes=180)
    assert next_run(schedule, now=starts + timedelta(minutes=90)) == starts + timedelta(minutes=90)
