"""The pure parts of rate limiting: a rate's interval, Retry-After rounding, the message,
refusals remembered by an API process until their wait ends, and the settings that set the
limits of ``tickwork api`` (0: off)."""

from __future__ import annotations

import pytest
from fastapi import FastAPI
from starlette.middleware import Middleware

from tickwork.api.rate_limits import (
    HOT_S,
    RateLimit,
    Refusals,
    refusal_message,
    retry_after_s,
)
from tickwork.api.server import app_from_settings
from tickwork.errors import SettingsError
from tickwork.settings import load_settings
from tickwork.store import Rate
from tickwork.store.limits import Bucket, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("per_second", "interval_us"),
    [
        pytest.param(50, 20_000, id="fifty_per_second"),
        pytest.param(3, 333_333, id="a_third_rounded_to_whole_us"),
        pytest.param(0.01, 100_000_000, id="slowest_one_per_100_s"),
        pytest.param(1_000_000, 1, id="fastest_one_per_us"),
    ],
)
def test_a_rates_interval_is_one_request_in_whole_microseconds(
    per_second: float, interval_us: int
) -> None:
    assert Rate(per_second, 1).interval_us == interval_us


@pytest.mark.parametrize(
    ("per_second", "burst", "named"),
    [
        pytest.param(0, 1, "0", id="zero_rate"),
        pytest.param(0.001, 1, "0.001", id="slower_than_one_per_100_s"),
        pytest.param(float("nan"), 1, "nan", id="nan"),
        pytest.param(float("inf"), 1, "inf", id="infinite"),
        pytest.param(10, 0, "0", id="empty_burst"),
    ],
)
def test_a_rate_that_cannot_be_kept_is_refused_naming_the_value(
    per_second: float, burst: int, named: str
) -> None:
    with pytest.raises(ValueError, match=named):
        Rate(per_second, burst)


@pytest.mark.parametrize(
    ("wait_s", "header"),
    [(0.000001, 1), (0.02, 1), (1.0, 1), (1.000001, 2), (99.5, 100)],
)
def test_retry_after_is_the_wait_in_whole_seconds_rounded_up(wait_s: float, header: int) -> None:
    assert retry_after_s(wait_s) == header


def test_the_message_names_the_rate_the_burst_what_is_limited_and_when_to_retry() -> None:
    assert refusal_message(Rate(50, 200), "token", 3) == (
        "Too many requests: the limit is 50 requests per second per token (bursts of up to "
        "200); retry in 3 s."
    )
    assert "0.5 requests per second per stack" in refusal_message(Rate(0.5, 1), "stack", 2)


A = Bucket("p:rate:token:aa", Rate(1, 1))
B = Bucket("p:rate:stack:1", Rate(1, 1))


def test_a_refusal_is_remembered_until_its_wait_ends_counted_from_when_it_was_asked() -> None:
    clock = Clock()
    refusals = Refusals(clock)
    asked_at = clock.now
    clock.now += 0.5  # the store's answer took half a second

    refusals.remember([A, B], Verdict((0.0, 2.0)), asked_at=asked_at)

    assert refusals.verdict([A]) is None  # A had room: nothing remembered for it
    remembered = refusals.verdict([A, B])
    assert remembered is not None
    assert remembered.waits_s == (0.0, 1.5)
    clock.now = asked_at + 2.0
    assert refusals.verdict([A, B]) is None


def test_a_later_shorter_refusal_does_not_shorten_a_remembered_one() -> None:
    clock = Clock()
    refusals = Refusals(clock)

    refusals.remember([B], Verdict((10.0,)), asked_at=clock.now)
    refusals.remember([B], Verdict((1.0,)), asked_at=clock.now)

    clock.now += 5
    assert refusals.verdict([B]) == Verdict((5.0,))


def test_a_bucket_stays_hot_for_a_second_after_its_refusal_ends() -> None:
    clock = Clock()
    refusals = Refusals(clock)
    refusals.remember([B], Verdict((0.5,)), asked_at=clock.now)

    assert refusals.hot([A, B]) == B.key
    clock.now += 0.5 + HOT_S - 0.01
    assert refusals.verdict([B]) is None  # no longer refused here ...
    assert refusals.hot([A, B]) == B.key  # ... but asked about one request at a time
    clock.now += 0.02
    assert refusals.hot([A, B]) is None


def test_ended_refusals_are_dropped_once_many_are_remembered() -> None:
    clock = Clock()
    refusals = Refusals(clock)
    for n in range(5000):
        refusals.remember([Bucket(f"k{n}", A.rate)], Verdict((1.0,)), asked_at=clock.now)
    clock.now += 1 + HOT_S

    refusals.remember([B], Verdict((1.0,)), asked_at=clock.now)

    assert len(refusals._until) == 1


# --- settings -----------------------------------------------------------------------------


def _rate_limit(app: FastAPI) -> Middleware | None:
    """The limiter as create_app registered it (with its arguments), or None."""
    limiter: object = RateLimit  # a class, where Starlette types a middleware factory
    return next((m for m in app.user_middleware if m.cls is limiter), None)


def test_tickwork_api_limits_each_token_and_stack_by_default(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST", "STACK_RATE_LIMIT_PER_SECOND"):
        monkeypatch.delenv(f"TICKWORK_{name}", raising=False)
    monkeypatch.delenv("TICKWORK_STACK_RATE_LIMIT_BURST", raising=False)

    middleware = _rate_limit(app_from_settings(load_settings(_env_file=None)))

    assert middleware is not None
    assert middleware.kwargs["per_token"] == Rate(50, 200)
    assert middleware.kwargs["per_stack"] == Rate(100, 400)


def test_a_rate_of_0_turns_that_limit_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKWORK_RATE_LIMIT_PER_SECOND", "0")
    monkeypatch.setenv("TICKWORK_STACK_RATE_LIMIT_PER_SECOND", "2.5")
    monkeypatch.setenv("TICKWORK_STACK_RATE_LIMIT_BURST", "5")

    middleware = _rate_limit(app_from_settings(load_settings(_env_file=None)))

    assert middleware is not None
    assert middleware.kwargs["per_token"] is None
    assert middleware.kwargs["per_stack"] == Rate(2.5, 5)


def test_with_both_rates_0_the_api_has_no_limiter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TICKWORK_RATE_LIMIT_PER_SECOND", "0")
    monkeypatch.setenv("TICKWORK_STACK_RATE_LIMIT_PER_SECOND", "0")

    assert _rate_limit(app_from_settings(load_settings(_env_file=None))) is None


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("TICKWORK_RATE_LIMIT_PER_SECOND", "0.001", "must be 0 (no limit) or at least 0.01"),
        ("TICKWORK_STACK_RATE_LIMIT_PER_SECOND", "-1", "greater than or equal to 0"),
        ("TICKWORK_RATE_LIMIT_BURST", "0", "greater than or equal to 1"),
        ("TICKWORK_STACK_RATE_LIMIT_BURST", "many", "valid integer"),
    ],
)
def test_a_rate_setting_that_cannot_be_kept_stops_the_start_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, says: str
) -> None:
    monkeypatch.setenv(name, value)

    with pytest.raises(SettingsError) as raised:
        load_settings(_env_file=None)

    assert str(raised.value).startswith(f"{name}: ")
    assert says in str(raised.value)
