"""The leader lease: a token and a fencing term, every operation owner-checked in Lua.

The lease value is ``{term}:{token}``. ``term`` grows by one with every new holder, so a
record written under a lease can say which term wrote it. Renew and release act only when the
caller still holds the lease (redbeat's token check, not rq's unchecked extend).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import redis

from tickwork.errors import LeaseLost
from tickwork.store.connection import translated
from tickwork.store.keys import Keys

_ACQUIRE = """
local current = redis.call('GET', KEYS[1])
if current then
  local term = string.match(current, '^(%d+):')
  if string.sub(current, #term + 2) == ARGV[1] then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
    return tonumber(term)
  end
  return nil
end
local term = redis.call('INCR', KEYS[2])
redis.call('SET', KEYS[1], term .. ':' .. ARGV[1], 'PX', ARGV[2])
return term
"""

_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

# KEYS[1] lease, KEYS[2] released list; ARGV[1] "{term}:{token}", ARGV[2] term. On release,
# a standby blocked on the list takes the lease at once instead of waiting out its TTL.
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1])
  redis.call('LPUSH', KEYS[2], ARGV[2])
  redis.call('EXPIRE', KEYS[2], 60)
  return 1
end
return 0
"""


@dataclass(frozen=True, slots=True)
class Lease:
    name: str
    token: str
    term: int

    @property
    def value(self) -> str:
        return f"{self.term}:{self.token}"


class Leases:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self._client = client
        self._keys = keys
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)

    @staticmethod
    def new_token() -> str:
        return secrets.token_hex(16)

    def acquire(self, name: str, token: str, ttl_ms: int) -> Lease | None:
        """Take the lease if it is free (or already ours); None while another holds it."""
        with translated():
            term = self._acquire(
                keys=[self._keys.lease(name), self._keys.lease_term(name)], args=[token, ttl_ms]
            )
        return None if term is None else Lease(name, token, int(term))

    def renew(self, lease: Lease, ttl_ms: int) -> None:
        """Extend the lease; LeaseLost when it expired or another process holds it."""
        with translated():
            ok = self._renew(keys=[self._keys.lease(lease.name)], args=[lease.value, ttl_ms])
        if not ok:
            raise LeaseLost(f"lease {lease.name!r} term {lease.term} is no longer held")

    def release(self, lease: Lease) -> bool:
        """Give the lease up and wake a standby; False when it was no longer ours."""
        keys = [self._keys.lease(lease.name), self._keys.lease_released(lease.name)]
        with translated():
            return bool(self._release(keys=keys, args=[lease.value, lease.term]))

    def wait(self, name: str, *, at_most_s: float) -> None:
        """Wait until the lease may be free: released (at once), or its TTL run out, or
        ``at_most_s`` passed, whichever comes first."""
        with translated():
            remaining_ms = int(self._client.pttl(self._keys.lease(name)))
            timeout = min(max(remaining_ms, 50) / 1000, at_most_s)
            self._client.blpop([self._keys.lease_released(name)], timeout=timeout)
