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

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
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

    def key(self, name: str) -> str:
        return self._keys.lease(name)

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
        with translated():
            return bool(self._release(keys=[self._keys.lease(lease.name)], args=[lease.value]))
