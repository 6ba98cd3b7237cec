"""Wire shapes of notification channels, rules and deliveries (tickwork extensions), their
parsers and renderers.

Secrets are write-only: a channel's ``url``, its webhook ``secret`` and the values of its
``headers`` are never answered once set. A channel read from the API says instead where its
URL goes (``url_origin``: scheme, host and port), whether a secret is set, and the names of
its headers; these are read-only properties, so a channel read may be sent back (the secrets
it does not carry are then kept, as in any patch that leaves them out).

Every problem of a request is answered at once, one detail naming each field; nothing is
written when there is one.
"""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from tickwork.core.egress import url_problem
from tickwork.core.instants import format_instant
from tickwork.core.notice_messages import template_problems
from tickwork.core.notices import (
    RULE_KINDS,
    SKIP_REASONS,
    Channel,
    ChannelType,
    EventKind,
    Rule,
    sample_notice,
)
from tickwork.dialects.wire import Closed, DateTime, StrictWire, from_json
from tickwork.errors import Problem, ValidationError

MAX_URL_CHARS = 2048
MAX_HEADERS = 20
MAX_RECIPIENTS = 50
MAX_RULE_CHANNELS = 20
MAX_QUIET_SECONDS = 7 * 86_400
MAX_CONSECUTIVE_FAILURES = 1000
RESERVED_HEADERS = frozenset(
    {"content-type", "content-length", "host", "user-agent", "transfer-encoding", "connection"}
)
"""Header names a channel may not set: tickwork writes them (and every X-Tickwork-*)."""

_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
_ADDRESS = re.compile(
    r"^[^\s@<>,;:\"()\[\]\\]{1,64}@[^\s@<>,;:\"()\[\]\\]{1,190}\.[A-Za-z0-9-]{2,63}$"
)
_CONTROL = re.compile(r"[\x00-\x20\x7f]")

Id = Annotated[int, Field(ge=1, le=2**63 - 1, json_schema_extra={"format": "int64"})]
Name = Annotated[str, Field(min_length=1, max_length=200)]
ChannelKind = Literal["webhook", "slack", "teams", "email"]
EventName = Literal[
    "run_failed",
    "run_error",
    "run_timed_out",
    "run_aborted",
    "worker_lost",
    "occurrence_skipped",
    "schedule_expired",
    "consecutive_failures",
    "recovered",
]
SkipReason = Literal["overlap", "missed", "missed_outside_catch_up_window"]
assert set(EventName.__args__) == set(RULE_KINDS)  # type: ignore[attr-defined]
assert set(SkipReason.__args__) == set(SKIP_REASONS)  # type: ignore[attr-defined]

_URL = "The URL the messages are POSTed to (webhook, slack, teams). Write-only: never answered."
_KEY_DOC = (
    "webhook: the HMAC-SHA256 key of X-Tickwork-Signature-256 (16+ characters; default: the "
    "workers' TICKWORK_WEBHOOK_SECRET). Write-only."
)
_HEADERS = "webhook: headers added to each request. Their values are write-only."
_TEMPLATE = (
    "The message template, ${name} placeholders over a fixed set of variables (see the "
    "README); null: the channel's default message."
)

CHANNEL_READ_ONLY = frozenset(
    {"id", "created", "updated", "url_origin", "secret_set", "header_names"}
)
RULE_READ_ONLY = frozenset({"id", "created", "updated", "held"})


class CreateChannelRequest(StrictWire):
    """A new notification channel (tickwork extension)."""

    READ_ONLY = CHANNEL_READ_ONLY

    name: Name
    type: ChannelKind
    url: str | None = Field(default=None, description=_URL)
    secret: str | None = Field(default=None, description=_KEY_DOC)
    headers: dict[str, str] | None = Field(default=None, description=_HEADERS)
    to: list[str] | None = Field(default=None, description="email: the recipients.")
    template: str | None = Field(default=None, description=_TEMPLATE)
    subject: str | None = Field(
        default=None, description="email: the subject template (null: the event's title)."
    )


class PatchChannelRequest(Closed):
    """What changes; what is left out is kept (secrets included). ``type`` cannot change."""

    name: Name | SkipJsonSchema[None] = None
    type: ChannelKind | SkipJsonSchema[None] = None
    url: str | None = Field(default=None, description=_URL)
    secret: str | None = Field(default=None, description=_KEY_DOC)
    headers: dict[str, str] | None = Field(default=None, description=_HEADERS)
    to: list[str] | None = None
    template: str | None = Field(default=None, description=_TEMPLATE)
    subject: str | None = None


class ChannelModel(BaseModel):
    id: int
    name: str
    type: ChannelKind
    url_origin: str | None = Field(description="Scheme, host and port of the URL (not a secret).")
    secret_set: bool = Field(description="webhook: whether the channel has its own secret.")
    header_names: list[str] = Field(description="webhook: the names of its headers.")
    to: list[str] | None
    template: str | None
    subject: str | None
    created: DateTime
    updated: DateTime


class ChannelListResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: list[ChannelModel]
    count: int | SkipJsonSchema[None] = Field(default=None, alias="@count")
    next_link: str | SkipJsonSchema[None] = Field(default=None, alias="@nextLink")


class CreateRuleRequest(StrictWire):
    """A new notification rule (tickwork extension)."""

    READ_ONLY = RULE_READ_ONLY

    name: Name
    events: list[EventName] = Field(min_length=1, description="The event kinds it sends.")
    channels: list[Id] = Field(
        min_length=1, max_length=MAX_RULE_CHANNELS, description="Channel ids of the stack."
    )
    project_id: Id | None = Field(default=None, description="Only this project's load tests.")
    load_test_id: Id | None = Field(default=None, description="Only this load test.")
    consecutive_failures: int | None = Field(
        default=None,
        ge=1,
        le=MAX_CONSECUTIVE_FAILURES,
        description="N of the consecutive_failures event (required with it).",
    )
    skip_reasons: list[SkipReason] | None = Field(
        default=None, description="occurrence_skipped: only these reasons (null: any)."
    )
    quiet_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_QUIET_SECONDS,
        description="One message per event kind and load test per this many seconds "
        "(null: TICKWORK_NOTIFY_QUIET_SECONDS; 0: every event).",
    )
    enabled: bool = True


class PatchRuleRequest(Closed):
    name: Name | SkipJsonSchema[None] = None
    events: list[EventName] | SkipJsonSchema[None] = Field(default=None, min_length=1)
    channels: list[Id] | SkipJsonSchema[None] = Field(
        default=None, min_length=1, max_length=MAX_RULE_CHANNELS
    )
    project_id: Id | None = None
    load_test_id: Id | None = None
    consecutive_failures: int | None = Field(default=None, ge=1, le=MAX_CONSECUTIVE_FAILURES)
    skip_reasons: list[SkipReason] | None = None
    quiet_seconds: int | None = Field(default=None, ge=0, le=MAX_QUIET_SECONDS)
    enabled: bool | SkipJsonSchema[None] = None


class HeldModel(BaseModel):
    kind: str
    load_test_id: int
    count: int = Field(description="Events held back since the last message.")
    quiet_until: DateTime = Field(description="When the next event is sent again.")


class RuleModel(BaseModel):
    id: int
    name: str
    events: list[str]
    channels: list[int]
    project_id: int | None
    load_test_id: int | None
    consecutive_failures: int | None
    skip_reasons: list[str] | None
    quiet_seconds: int | None
    enabled: bool
    held: list[HeldModel] = Field(
        default_factory=list, description="Storm windows of this rule with events held back."
    )
    created: DateTime
    updated: DateTime


class RuleListResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: list[RuleModel]
    count: int | SkipJsonSchema[None] = Field(default=None, alias="@count")
    next_link: str | SkipJsonSchema[None] = Field(default=None, alias="@nextLink")


class DeliveryModel(BaseModel):
    id: str = Field(description="{event_id}:{channel_id}")
    event_id: str
    kind: str
    title: str
    channel_id: int
    run_id: int | None
    load_test_id: int | None
    rules: list[int]
    status: Literal["queued", "sending", "sent", "failed"]
    attempts: int
    answer_status: int | None = Field(
        description="The receiver's last answer: HTTP status, or SMTP reply code."
    )
    error: str | None
    response: str | None = Field(description="The start of the receiver's last answer.")
    more: int = Field(description="Events held back before this one, counted in it.")
    created: DateTime
    updated: DateTime


class DeliveryListResponse(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    value: list[DeliveryModel]
    count: int | SkipJsonSchema[None] = Field(default=None, alias="@count")
    next_link: str | SkipJsonSchema[None] = Field(default=None, alias="@nextLink")


# Channels


def parse_new_channel(body: bytes, *, channel_id: int, stack: int, now: datetime) -> Channel:
    model = from_json(CreateChannelRequest, body, "The channel is not valid.")
    channel = Channel(
        id=channel_id,
        stack=stack,
        name=model.name,
        type=ChannelType(model.type),
        url=model.url,
        secret=model.secret,
        headers=model.headers or {},
        to=tuple(model.to or ()),
        template=model.template,
        subject=model.subject,
        created=now,
        updated=now,
    )
    return _checked(channel)


def parse_channel_patch(body: bytes, current: Channel, *, now: datetime) -> Channel:
    model = from_json(PatchChannelRequest, body, "The channel is not valid.")
    given = model.model_fields_set
    problems = []
    if "name" in given and model.name is None:
        problems.append(Problem("invalid_type", "name", "name may not be null."))
    if "type" in given and model.type != current.type:
        problems.append(
            Problem(
                "immutable",
                "type",
                f"type cannot change ({current.type}); create a channel of the other type.",
            )
        )
    if problems:
        raise ValidationError(problems, "The channel is not valid.")
    changes: dict[str, Any] = {
        name: getattr(model, name)
        for name in ("url", "secret", "template", "subject")
        if name in given
    }
    if "name" in given:
        changes["name"] = model.name
    if "headers" in given:
        changes["headers"] = model.headers or {}
    if "to" in given:
        changes["to"] = tuple(model.to or ())
    return _checked(replace(current, **changes, updated=now))


def _checked(channel: Channel) -> Channel:
    problems = channel_problems(channel)
    if problems:
        raise ValidationError(problems, "The channel is not valid.")
    return channel


def channel_problems(channel: Channel) -> list[Problem]:
    """Every problem of a channel as it would be stored, one per field."""
    kind = channel.type
    found: list[Problem] = []
    is_http = kind is not ChannelType.EMAIL

    def refuse(field: str, what: str) -> None:
        found.append(Problem("not_allowed", field, f"{field}: {what}"))

    if is_http:
        if channel.url is None:
            found.append(Problem("required", "url", f"url: a {kind} channel needs one."))
        else:
            found.extend(_url_problems(channel.url))
    elif channel.url is not None:
        refuse("url", "an e-mail channel sends to `to`, not to a URL.")
    if channel.secret is not None:
        if kind is not ChannelType.WEBHOOK:
            refuse("secret", f"only webhook channels sign their requests, not {kind}.")
        elif not 16 <= len(channel.secret) <= 1024:
            found.append(
                Problem("invalid_length", "secret", "secret: 16 to 1024 characters, please.")
            )
    if channel.headers:
        if kind is not ChannelType.WEBHOOK:
            refuse("headers", f"only webhook channels take custom headers, not {kind}.")
        else:
            found.extend(_header_problems(channel.headers))
    if kind is ChannelType.EMAIL:
        if not channel.to:
            found.append(Problem("required", "to", "to: an e-mail channel needs recipients."))
        elif len(channel.to) > MAX_RECIPIENTS:
            message = f"to: at most {MAX_RECIPIENTS} recipients."
            found.append(Problem("too_long", "to", message))
        for index, address in enumerate(channel.to):
            if len(address) > 254 or not _ADDRESS.match(address):
                found.append(
                    Problem(
                        "invalid_address",
                        f"to[{index}]",
                        f"to[{index}] is not an e-mail address such as ops@example.com.",
                    )
                )
    elif channel.to:
        refuse("to", f"only e-mail channels have recipients, not {kind}.")
    if channel.subject is not None and kind is not ChannelType.EMAIL:
        refuse("subject", f"only e-mail channels have a subject, not {kind}.")
    sample = sample_notice(stack=channel.stack, at=channel.updated, public_url=None)
    if channel.template is not None:
        found.extend(
            template_problems(channel.template, "template", channel_type=kind, sample=sample)
        )
    if channel.subject is not None and kind is ChannelType.EMAIL:
        if len(channel.subject) > 250:
            found.append(Problem("too_long", "subject", "subject: at most 250 characters."))
        else:
            found.extend(
                template_problems(channel.subject, "subject", channel_type=None, sample=sample)
            )
    return found


def _url_problems(url: str) -> list[Problem]:
    # The URL is a secret: no message repeats it.
    if len(url) > MAX_URL_CHARS:
        return [Problem("too_long", "url", f"url: at most {MAX_URL_CHARS} characters.")]
    if _CONTROL.search(url):
        return [Problem("invalid_url", "url", "url: no spaces or control characters, please.")]
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return [Problem("invalid_url", "url", "url is not a URL (its port or host is malformed).")]
    del port
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return [
            Problem("invalid_url", "url", "url must be an http:// or https:// URL with a host.")
        ]
    if parts.username is not None or parts.password is not None:
        return [Problem("invalid_url", "url", "url: no user or password in it; use headers.")]
    refused = url_problem(url, "url")
    return [refused] if refused is not None else []


def _header_problems(headers: dict[str, str] | Any) -> list[Problem]:
    found = []
    if len(headers) > MAX_HEADERS:
        found.append(Problem("too_long", "headers", f"headers: at most {MAX_HEADERS}."))
    for name, value in headers.items():
        target = f"headers.{name}"
        if not _HEADER_NAME.match(name):
            found.append(Problem("invalid_header", target, f"{target}: not a header name."))
        elif name.lower() in RESERVED_HEADERS or name.lower().startswith("x-tickwork-"):
            found.append(
                Problem("reserved_header", target, f"{target}: tickwork sets this header itself.")
            )
        if "\r" in value or "\n" in value or "\x00" in value or len(value) > 4096:
            found.append(
                Problem(
                    "invalid_header",
                    target,
                    f"{target}: a value is one line of at most 4096 characters.",
                )
            )
    return found


def url_origin(url: str | None) -> str | None:
    """``https://hooks.slack.com``: where a URL goes, without its secret path or query."""
    if url is None:
        return None
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def channel_model(channel: Channel) -> ChannelModel:
    return ChannelModel(
        id=channel.id,
        name=channel.name,
        type=channel.type.value,
        url_origin=url_origin(channel.url),
        secret_set=channel.secret is not None,
        header_names=sorted(channel.headers),
        to=list(channel.to) if channel.type is ChannelType.EMAIL else None,
        template=channel.template,
        subject=channel.subject,
        created=format_instant(channel.created),
        updated=format_instant(channel.updated),
    )


# Rules


def parse_new_rule(body: bytes, *, rule_id: int, stack: int, now: datetime) -> Rule:
    model = from_json(CreateRuleRequest, body, "The rule is not valid.")
    rule = Rule(
        id=rule_id,
        stack=stack,
        name=model.name,
        events=_unique(model.events),
        channels=_unique(model.channels),
        project_id=model.project_id,
        load_test_id=model.load_test_id,
        consecutive_failures=model.consecutive_failures,
        skip_reasons=_unique(model.skip_reasons or ()),
        quiet_seconds=model.quiet_seconds,
        enabled=model.enabled,
        created=now,
        updated=now,
    )
    return _checked_rule(rule)


def parse_rule_patch(body: bytes, current: Rule, *, now: datetime) -> Rule:
    model = from_json(PatchRuleRequest, body, "The rule is not valid.")
    given = model.model_fields_set
    problems = [
        Problem("invalid_type", name, f"{name} may not be null.")
        for name in ("name", "events", "channels", "enabled")
        if name in given and getattr(model, name) is None
    ]
    if problems:
        raise ValidationError(problems, "The rule is not valid.")
    changes: dict[str, Any] = {}
    for name in ("name", "project_id", "load_test_id", "consecutive_failures", "quiet_seconds"):
        if name in given:
            changes[name] = getattr(model, name)
    if "enabled" in given:
        changes["enabled"] = model.enabled
    if "events" in given:
        changes["events"] = _unique(model.events or ())
    if "channels" in given:
        changes["channels"] = _unique(model.channels or ())
    if "skip_reasons" in given:
        changes["skip_reasons"] = _unique(model.skip_reasons or ())
    return _checked_rule(replace(current, **changes, updated=now))


def _unique(values: Any) -> tuple[Any, ...]:
    return tuple(dict.fromkeys(values))


def _checked_rule(rule: Rule) -> Rule:
    found = []
    wants_streak = EventKind.CONSECUTIVE_FAILURES in rule.events
    if wants_streak and rule.consecutive_failures is None:
        found.append(
            Problem(
                "required",
                "consecutive_failures",
                "consecutive_failures: the consecutive_failures event needs N, the failures in a "
                "row that send it.",
            )
        )
    if not wants_streak and rule.consecutive_failures is not None:
        found.append(
            Problem(
                "not_allowed",
                "consecutive_failures",
                "consecutive_failures: only with the consecutive_failures event in events.",
            )
        )
    if rule.skip_reasons and EventKind.OCCURRENCE_SKIPPED not in rule.events:
        found.append(
            Problem(
                "not_allowed",
                "skip_reasons",
                "skip_reasons: only with the occurrence_skipped event in events.",
            )
        )
    if rule.project_id is not None and rule.load_test_id is not None:
        found.append(
            Problem(
                "not_allowed",
                "load_test_id",
                "load_test_id: a rule is for a project or for one load test, not both.",
            )
        )
    if found:
        raise ValidationError(found, "The rule is not valid.")
    return rule


def rule_model(rule: Rule, held: list[HeldModel] | None = None) -> RuleModel:
    return RuleModel(
        id=rule.id,
        name=rule.name,
        events=list(rule.events),
        channels=list(rule.channels),
        project_id=rule.project_id,
        load_test_id=rule.load_test_id,
        consecutive_failures=rule.consecutive_failures,
        skip_reasons=list(rule.skip_reasons) or None,
        quiet_seconds=rule.quiet_seconds,
        enabled=rule.enabled,
        held=held or [],
        created=format_instant(rule.created),
        updated=format_instant(rule.updated),
    )
