"""What the Redis server is and how it is configured, as far as tickwork's guarantees care.

Exactly-once rests on Redis keeping every key it was given: an evicted lease, due-index entry
or run record silently breaks it. So every daemon refuses to start on a server whose
``maxmemory-policy`` may evict (unless told to, when it starts not ready), ``tickwork doctor``
fails on it, and readiness says not ready while writes are refused for memory.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import redis

from tickwork.store.connection import translated

SAFE_POLICY = "noeviction"


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerFacts:
    engine: str  # "redis" or "valkey"
    version: str
    aof_enabled: bool
    maxmemory: int  # bytes; 0: no limit
    used_memory: int
    policy: str  # maxmemory-policy
    clock_skew_s: float  # |server clock - this machine's|, less half the round trip
    round_trip_s: float

    @property
    def version_tuple(self) -> tuple[int, ...]:
        return tuple(int(p) for p in self.version.split(".")[:2] if p.isdigit())

    @property
    def evicting(self) -> bool:
        """The server may evict keys tickwork relies on."""
        return self.policy != SAFE_POLICY

    @property
    def out_of_memory(self) -> bool:
        """Writes are refused for memory (or about to be)."""
        return self.maxmemory > 0 and self.used_memory >= self.maxmemory


def server_facts(client: redis.Redis) -> ServerFacts:
    with translated():
        before = time.time()
        seconds, micros = client.time()
        after = time.time()
        info = client.info()
    valkey = "valkey_version" in info or info.get("server_name") == "valkey"
    server_s = int(seconds) + int(micros) / 1e6
    return ServerFacts(
        engine="valkey" if valkey else "redis",
        version=str(info.get("redis_version", "0")),
        aof_enabled=int(info.get("aof_enabled", 0)) == 1,
        maxmemory=int(info.get("maxmemory", 0)),
        used_memory=int(info.get("used_memory", 0)),
        policy=str(info.get("maxmemory_policy", SAFE_POLICY)),
        clock_skew_s=abs(server_s - (before + after) / 2),
        round_trip_s=after - before,
    )


def eviction_problem(facts: ServerFacts) -> str | None:
    """Why this server cannot hold tickwork's guarantees, or None."""
    if not facts.evicting:
        return None
    return (
        f"Redis maxmemory-policy is {facts.policy}: it may evict the leader lease, due-index "
        "entries or run records, and exactly-once would silently break; set "
        "maxmemory-policy noeviction"
    )
