"""What a load test says about how it runs: the ``runner`` field, parsed and checked.

A load test's ``runner`` is JSON; absent or ``null`` means k6::

    {"type": "k6", "timeout_seconds": 600, "env": {"BASE_URL": "http://target"}}
    {"type": "command", "argv": ["./check.sh", "{run_id}", "{script_path}"],
     "env": {"RUN": "{run_id}"}, "timeout_seconds": 60}
    {"type": "webhook", "url": "https://ci.example/hooks/run", "timeout_seconds": 30,
     "headers": {"X-Team": "perf"}, "max_attempts": 4}

and, written by tickwork itself for the internal load test a report schedule runs as (the k6
API does not accept it from users), ``{"type": "report", "report_id": "<uuid>"}``.

``argv`` and ``env`` values of a command may use the placeholders in PLACEHOLDERS; other
braces are left alone. Parsing is pure, so the API can reject a bad runner when the load test
is written and the worker can trust what it reads.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import urlsplit

from tickwork.core.egress import ALWAYS_REFUSING, EgressPolicy, url_problem
from tickwork.errors import Problem, ValidationError

PLACEHOLDERS = frozenset(
    {"run_id", "load_test_id", "project_id", "stack", "script_path", "work_dir", "scheduled_for"}
)
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
MAX_TIMEOUT_S = 5 * 3600.0
"""The longest time limit a runner may ask for; RQ's own job timeout (6 h) stays above it."""
MAX_ATTEMPTS = 10
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]+$")


@dataclass(frozen=True, slots=True, kw_only=True)
class K6Spec:
    timeout_s: float | None = None
    env: Mapping[str, str] = field(default_factory=dict)

    type: ClassVar[str] = "k6"


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSpec:
    argv: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None

    type: ClassVar[str] = "command"


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookSpec:
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    timeout_s: float | None = None
    max_attempts: int = 4

    type: ClassVar[str] = "webhook"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportSpec:
    report_id: str
    timeout_s: float | None = None

    type: ClassVar[str] = "report"


RunnerSpec = K6Spec | CommandSpec | WebhookSpec | ReportSpec


def runner_spec_from_json(text: str | None) -> RunnerSpec:
    """The spec stored as JSON text (``None`` or empty: k6); ValidationError when unusable."""
    if not text:
        return K6Spec()
    try:
        data = json.loads(text)
    except ValueError as exc:
        problem = Problem("invalid_json", "runner", f"runner is not JSON: {exc}")
        raise ValidationError([problem], "Invalid runner.") from exc
    return parse_runner_spec(data)


def parse_runner_spec(data: object, *, egress: EgressPolicy = ALWAYS_REFUSING) -> RunnerSpec:
    """The spec ``data`` describes, or ValidationError with one Problem per violation.

    A webhook ``url`` whose host is a literal address ``egress`` refuses is a violation (by
    default only link-local and cloud metadata addresses, which no setting allows; names are
    checked by the worker when it connects)."""
    if data is None:
        return K6Spec()
    found: list[Problem] = []
    if not isinstance(data, dict):
        raise ValidationError(
            [Problem("invalid_type", "runner", "runner must be an object.")], "Invalid runner."
        )
    kind = data.get("type", "k6")
    known = {"k6": {"type", "timeout_seconds", "env"}}
    known["command"] = {"type", "argv", "env", "timeout_seconds"}
    known["webhook"] = {"type", "url", "headers", "timeout_seconds", "max_attempts"}
    known["report"] = {"type", "report_id", "timeout_seconds"}
    if kind not in known:
        found.append(
            Problem(
                "unknown_runner",
                "runner.type",
                f"runner.type {kind!r} is not one of 'k6', 'command', 'webhook'.",
            )
        )
        raise ValidationError(found, "Invalid runner.")
    for name in sorted(set(data) - known[kind]):
        found.append(
            Problem("unknown_field", f"runner.{name}", f"runner.{name} is not a {kind} setting.")
        )
    timeout_s = _timeout(data.get("timeout_seconds"), found)
    spec: RunnerSpec
    if kind == "k6":
        spec = K6Spec(timeout_s=timeout_s, env=_strings(data.get("env"), "runner.env", found))
    elif kind == "report":
        report_id = data.get("report_id")
        if not isinstance(report_id, str) or not report_id:
            found.append(Problem("invalid_type", "runner.report_id", "report_id must be text."))
        spec = ReportSpec(report_id=str(report_id), timeout_s=timeout_s)
    elif kind == "command":
        spec = CommandSpec(
            argv=_argv(data.get("argv"), found),
            env=_strings(data.get("env"), "runner.env", found),
            timeout_s=timeout_s,
        )
    else:
        spec = WebhookSpec(
            url=_url(data.get("url"), found, egress),
            headers=_strings(data.get("headers"), "runner.headers", found, _HEADER_NAME),
            timeout_s=timeout_s,
            max_attempts=_attempts(data.get("max_attempts", 4), found),
        )
    if found:
        raise ValidationError(found, "Invalid runner.")
    return spec


def _timeout(value: Any, found: list[Problem]) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        found.append(
            Problem(
                "invalid_timeout",
                "runner.timeout_seconds",
                f"runner.timeout_seconds must be a positive number of seconds, not {value!r}.",
            )
        )
        return None
    if value > MAX_TIMEOUT_S:
        found.append(
            Problem(
                "too_large",
                "runner.timeout_seconds",
                f"runner.timeout_seconds {value!r} is over the maximum of {MAX_TIMEOUT_S:.0f}.",
            )
        )
        return None
    return float(value)


def _strings(
    value: Any, target: str, found: list[Problem], names: re.Pattern[str] = _ENV_NAME
) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        found.append(
            Problem("invalid_type", target, f"{target} must map names to strings: {value!r}.")
        )
        return {}
    for name, text in value.items():
        if not names.match(name):
            found.append(Problem("invalid_name", target, f"{target} name {name!r} is invalid."))
        _placeholders(text, f"{target}.{name}", found)
    return dict(value)


def _argv(value: Any, found: list[Problem]) -> tuple[str, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(arg, str) and arg for arg in value)
    ):
        found.append(
            Problem(
                "invalid_argv",
                "runner.argv",
                f"runner.argv must be a non-empty list of non-empty strings, not {value!r}.",
            )
        )
        return ()
    for index, arg in enumerate(value):
        _placeholders(arg, f"runner.argv[{index}]", found)
    return tuple(value)


def _placeholders(text: str, target: str, found: list[Problem]) -> None:
    for name in PLACEHOLDER.findall(text):
        if name not in PLACEHOLDERS:
            found.append(
                Problem(
                    "unknown_placeholder",
                    target,
                    f"{target} uses {{{name}}}; known: "
                    + ", ".join(f"{{{p}}}" for p in sorted(PLACEHOLDERS))
                    + ".",
                )
            )


def _url(value: Any, found: list[Problem], egress: EgressPolicy) -> str:
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
        host = parts.hostname if parts is not None else None
        _ = parts.port if parts is not None else None  # out of range: ValueError
    except ValueError:
        parts = host = None
    if parts is None or parts.scheme not in {"http", "https"} or not host:
        found.append(
            Problem("invalid_url", "runner.url", f"runner.url must be an http(s) URL: {value!r}.")
        )
        return ""
    refused = url_problem(value, "runner.url", egress)
    if refused is not None:
        found.append(refused)
    return str(value)


def _attempts(value: Any, found: list[Problem]) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS:
        found.append(
            Problem(
                "invalid_attempts",
                "runner.max_attempts",
                f"runner.max_attempts must be an integer from 1 to {MAX_ATTEMPTS}: {value!r}.",
            )
        )
        return 1
    return value


def expand(template: str, values: Mapping[str, str]) -> str:
    """``template`` with each known ``{placeholder}`` replaced; other braces kept as they are."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)
