"""Request rate limits, shared by every API process through Redis.

Each limit is a bucket kept by GCRA (the generic cell rate algorithm): one key holding the
bucket's *theoretical arrival time* (TAT), the instant by which it would have room for a
whole burst again. A request moves the TAT one emission interval (1 s / rate) on; it is
allowed while the TAT stays within ``burst`` intervals of now. One script checks every
bucket of a request and takes from all of them or from none, reading the time from Redis
(``TIME``), so API processes on hosts whose clocks disagree share one limit. Each key
expires (``PX``) when its TAT passes, when it would say "full" anyway: an idle caller costs
no memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import redis

from tickwork.store.connection import translated
from tickwork.store.keys import Keys

US_PER_S = 1_000_000
MIN_PER_SECOND = 0.01
"""The slowest rate: one request per 100 s (keeps the µs arithmetic well inside a double)."""

_TAKE = """
--[[ One request against every bucket, all or nothing (GCRA).
KEYS[i]     a bucket: STRING, its theoretical arrival time (TAT) in µs of the Redis clock
ARGV[2i-1]  bucket i's emission interval, µs (1 s / rate; an integer >= 1)
ARGV[2i]    bucket i's burst (an integer >= 1)
Returns {1} when every bucket had room: each TAT moved one interval on, the key expiring
when its TAT passes; else {0, wait_1, ..., wait_n}, wait_i the µs until bucket i has room
(0 where it has), and nothing is written.
]]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local tats = {}
local waits = {}
local refused = false
for i, key in ipairs(KEYS) do
  local interval = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local tat = tonumber(redis.call('GET', key) or 0)
  if tat < now then tat = now end
  tats[i] = tat + interval
  local allowed_at = tats[i] - burst * interval
  if allowed_at > now then
    waits[i] = allowed_at - now
    refused = true
  else
    waits[i] = 0
  end
end
if refused then
  return {0, unpack(waits)}
end
for i, key in ipairs(KEYS) do
  -- '%.0f': tostring would print 16-digit µs instants with 14 significant digits
  redis.call('SET', key, string.format('%.0f', tats[i]), 'PX', math.ceil((tats[i] - now) / 1000))
end
return {1}
"""


@dataclass(frozen=True, slots=True)
class Rate:
    """A limit: ``per_second`` requests on average, up to ``burst`` in a row after a pause."""

    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not (MIN_PER_SECOND <= self.per_second <= US_PER_S):
            raise ValueError(
                f"a rate is {MIN_PER_SECOND} to {US_PER_S} requests per second, "
                f"not {self.per_second}"
            )
        if self.burst < 1:
            raise ValueError(f"a burst is at least 1 request, not {self.burst}")

    @property
    def interval_us(self) -> int:
        """The emission interval: one request's worth of the bucket, in whole µs."""
        return max(1, round(US_PER_S / self.per_second))


@dataclass(frozen=True, slots=True)
class Bucket:
    """One limit on one caller: the key of its state and its rate."""

    key: str
    rate: Rate


@dataclass(frozen=True, slots=True)
class Verdict:
    """The answer for one request: per bucket (in the order asked), the seconds until it has
    room, 0 where it has. Allowed (and taken from every bucket) when every wait is 0."""

    waits_s: tuple[float, ...]

    @property
    def allowed(self) -> bool:
        return not any(self.waits_s)


class RateLimits:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._keys = keys
        self._take = client.register_script(_TAKE)

    def token(self, sha256: bytes, rate: Rate) -> Bucket:
        """The bucket of an API token, named by its digest (never by the token itself)."""
        return Bucket(self._keys.rate_token(sha256.hex()), rate)

    def stack(self, stack: int, rate: Rate) -> Bucket:
        return Bucket(self._keys.rate_stack(stack), rate)

    def client(self, address: str, rate: Rate) -> Bucket:
        """The bucket of an anonymous caller, by its network address."""
        return Bucket(self._keys.rate_client(address), rate)

    def take(self, buckets: Sequence[Bucket]) -> Verdict:
        """One request from every bucket, or (when one has no room) from none."""
        if not buckets:
            return Verdict(())
        args: list[int] = []
        for bucket in buckets:
            args += [bucket.rate.interval_us, bucket.rate.burst]
        with translated():
            reply = self._take(keys=[bucket.key for bucket in buckets], args=args)
        if int(reply[0]) == 1:
            return Verdict((0.0,) * len(buckets))
        return Verdict(tuple(int(wait) / US_PER_S for wait in reply[1:]))
