"""A test session's own database on a Redis server other sessions may share.

A session claims a database with two keys: ``tickwork-test-session`` holds the session's token
and expires unless the session renews it (so a crashed session's claim lapses), and
``tickwork-test-database`` stays, marking the database as one that holds test data only. Every
step is one Lua script, so no other session can slip in between a check and a write:

- claim: an empty database, or a marked one whose claim lapsed, is flushed and claimed;
- reset: the session flushes its database and keeps its claim (before and after each test);
- renew: the claim's expiry is pushed back, by its owner only;
- release: the owner flushes the database at the end, leaving it empty for the next session.

A database with any other data in it is never touched.
"""

from __future__ import annotations

import contextlib
import subprocess
import threading

import redis

from tickwork.embedded import find_server_binary

CLAIM_KEY = "tickwork-test-session"
MARKER_KEY = "tickwork-test-database"
CLAIM_TTL_MS = 60_000
"""How long a claim outlives its session: a crashed session's database is free after this."""
RENEW_EVERY_S = 10.0
"""A live session renews its claim this often, well inside the TTL even on a loaded host."""

_CLAIM = """
local free = redis.call('DBSIZE') == 0
    or (redis.call('EXISTS', KEYS[2]) == 1 and redis.call('EXISTS', KEYS[1]) == 0)
    or (ARGV[3] == 'unclaimed' and redis.call('EXISTS', KEYS[1]) == 0)
if not free then
    return 0
end
redis.call('FLUSHDB')
redis.call('SET', KEYS[2], '1')
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RESET = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('FLUSHDB')
redis.call('SET', KEYS[2], '1')
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
"""

_RENEW = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then
    return 0
end
redis.call('FLUSHDB')
return 1
"""


def _run(client: redis.Redis, script: str, token: str, *extra: str | int) -> bool:
    return bool(client.register_script(script)([CLAIM_KEY, MARKER_KEY], [token, *extra]))


def try_claim(client: redis.Redis, token: str, *, any_unclaimed: bool = False) -> bool:
    """Claim the client's database when it is free (empty, or a test database whose claim
    lapsed); ``any_unclaimed`` also takes one with other data in it (a database the user
    named for the tests), though never one a live session holds."""
    mode = "unclaimed" if any_unclaimed else "empty"
    return _run(client, _CLAIM, token, CLAIM_TTL_MS, mode)


def claim_database(server: str, token: str) -> str:
    """The URL of a database of this session's own on a shared server, from 15 down (rq's
    find_empty_redis_database, plus the claim)."""
    for db in range(15, 0, -1):
        client = redis.Redis.from_url(f"{server}/{db}")
        try:
            if try_claim(client, token):
                return f"{server}/{db}"
        finally:
            client.close()
    raise RuntimeError(f"no free database on {server} for the tests (15 down to 1 are in use)")


def reset(client: redis.Redis, token: str) -> None:
    """Flush the session's own database and keep the claim; refuses a database it lost."""
    if not _run(client, _RESET, token, CLAIM_TTL_MS):
        raise RuntimeError(
            f"this session's claim on Redis database {client.get_connection_kwargs().get('db')} "
            "is gone (taken by another session, or lapsed while this one was stopped); "
            "nothing was flushed"
        )


def renew(client: redis.Redis, token: str) -> bool:
    return _run(client, _RENEW, token, CLAIM_TTL_MS)


def release(client: redis.Redis, token: str) -> bool:
    return _run(client, _RELEASE, token)


class Renewal:
    """Renews a claim every ``RENEW_EVERY_S`` on a thread of its own while the session runs,
    whatever the test in the foreground is doing."""

    def __init__(self, url: str, token: str, every_s: float = RENEW_EVERY_S) -> None:
        self._url = url
        self._token = token
        self._every_s = every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="redis-claim-renewal", daemon=True)

    def __enter__(self) -> Renewal:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        assert not self._thread.is_alive(), "the Redis claim's renewal thread did not stop"

    def _run(self) -> None:
        client = redis.Redis.from_url(self._url, socket_timeout=5)
        try:
            while not self._stop.wait(self._every_s):
                # A moment without Redis (a test restarting its own server is not this one,
                # but the network may blink) is retried at the next turn, inside the TTL.
                with contextlib.suppress(redis.RedisError):
                    renew(client, self._token)
        finally:
            client.close()


def describe_server(url: str) -> str:
    """One line on the server at ``url``: its version and eviction policy (the suite's
    results assume ``noeviction``: an evicting server loses keys the tests just wrote)."""
    client = redis.Redis.from_url(url, socket_timeout=2)
    try:
        server = client.info("server")
        memory = client.info("memory")
    finally:
        client.close()
    name = "valkey" if "valkey_version" in server else "redis"
    version = server.get("valkey_version") or server.get("redis_version")
    policy = memory.get("maxmemory_policy", "?")
    return f"{name} {version}, maxmemory-policy {policy}"


def describe_private_server() -> str:
    """The binary a session starts when no server answers, and its version."""
    try:
        binary = find_server_binary()
        version = subprocess.run(
            [binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    except Exception as exc:  # the header reports; the session fixture decides
        return f"none answers, and no private server can start: {exc}"
    return f"a private server started for the session: {binary} ({version}, noeviction)"
