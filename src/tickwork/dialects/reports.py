"""The report schedules API: its wire shapes, validation, and its envelopes.

A report schedule asks for a digest of test runs (those of the load tests named in
``services`` and of the load tests that target one of ``hosts``) over each whole ``schedule``
period (daily, weekly, monthly) in ``timezone``, sent ``send_via`` email or webhook to every
address in ``send_to``. Ids are UUIDs; instants are integer microseconds since the epoch.

Where the document contradicts itself the examples win: ``schedule`` is the period's name
("daily", not an integer) and ``send_to`` a list of addresses (not one string).

Reports are rendered from the fields of their stored records (``ReportFields``); an error is
the k6 error object (``k6.error_model``) in this API's envelope (``error_envelope``).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, Field

from tickwork.core import Schedule
from tickwork.core.instants import is_time_zone_name, to_us
from tickwork.core.reports import report_schedule
from tickwork.dialects.audit import AuditEntryModel
from tickwork.dialects.k6 import ErrorApiModel, error_model
from tickwork.dialects.ledger import Occurrence
from tickwork.dialects.wire import ErrorParts, StrictWire, from_data, from_json
from tickwork.errors import Problem, ValidationError

MAX_RECIPIENTS = 20
MAX_TARGETS = 100  # hosts, and services
MAX_DELETE = 100
MAX_UNPAGINATED = 1000  # like k6's $top: a larger unpaginated list is refused, never cut
MAX_PAGE_SIZE = 1000
READ_ONLY = frozenset({"id", "scheduled_at", "scheduled_by", "start_timestamp", "end_timestamp"})
"""Fields of a fetched schedule that a client may send back in ``attrs``: they are ignored."""

# No whitespace, control characters, commas, angle brackets or quotes: an address goes into
# a mail header as is.
_EMAIL = re.compile(r"^[^@\s,;<>\"'\x00-\x1f\x7f]{1,64}@[^@\s,;<>\"'\x00-\x1f\x7f]{1,253}$")
_HOST = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_URL = re.compile(r"^https?://[^\s/?#@\x00-\x1f\x7f]+(?:[/?#][^\s\x00-\x1f\x7f]*)?$", re.I)

Period = Literal["daily", "weekly", "monthly"]  # core.reports.PERIODS
Channel = Literal["email", "webhook"]
# No control characters: a report's name goes into its mail's Subject header.
_PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
Name = Annotated[str, Field(min_length=1, max_length=255, pattern=_PRINTABLE)]
Text = Annotated[str, Field(min_length=1, max_length=300, pattern=_PRINTABLE)]
TypeName = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Zone = Annotated[str, Field(max_length=128)]
Recipients = Annotated[
    list[Annotated[str, Field(max_length=2048)]],
    Field(min_length=1, max_length=MAX_RECIPIENTS),
]
Targets = Annotated[list[Text], Field(max_length=MAX_TARGETS)]

MESSAGES = {
    "list": "List of report schedules",
    "get": "Report schedule retrieved",
    "create": "Report schedule created succesfully",
    "update": "Report schedule updated succesfully",
    "delete": "Schedules succesfully deleted",
    # tickwork extensions: the document has no such operations
    "occurrences": "Report schedule occurrences",
    "audit": "Report schedule audit trail",
}
"""The document's success messages, spelling included: clients may compare them."""

ERROR_MESSAGES = {
    "list": "Error with pagination fields",
    "get": "Error retrieving schedules",
    "create": "Error creating new schedule",
    "update": "Error updating schedule",
    "delete": "Error deleting report schedules",
    "occurrences": "Error listing occurrences",
    "audit": "Error retrieving the audit trail",
}


class _Attrs(StrictWire):
    READ_ONLY = READ_ONLY


class NewReportAttrs(_Attrs):
    name: Name
    schedule: Period = Field(description="How often: each run covers the last whole period.")
    send_via: Channel
    send_to: Recipients = Field(
        description="E-mail addresses (send_via email) or http(s) URLs (send_via webhook)."
    )
    timezone: Zone = Field(default="UTC", description="IANA time zone of the periods.")
    type: TypeName = "generic"
    hosts: Targets | None = Field(
        default=None,
        description="Target hosts: runs of the load tests whose runner or script names one.",
    )
    services: Targets | None = Field(
        default=None, description="Names of load tests, or of projects (all their load tests)."
    )


class ReportAttrsPatch(_Attrs):
    name: Name | None = None
    schedule: Period | None = None
    send_via: Channel | None = None
    send_to: Recipients | None = None
    timezone: Zone | None = None
    type: TypeName | None = None
    hosts: Targets | None = None
    services: Targets | None = None


class _Envelope(StrictWire):
    attrs: dict[str, Any]


class CreateReportScheduleRequest(StrictWire):
    """For the OpenAPI document: ``attrs`` holds the schedule's fields."""

    attrs: NewReportAttrs


class UpdateReportScheduleRequest(StrictWire):
    attrs: ReportAttrsPatch


class DeleteReportSchedulesRequest(StrictWire):
    schedules_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        min_length=1, max_length=MAX_DELETE
    )


class ReportSchedule(BaseModel):
    end_timestamp: int | None = Field(description="Last execution, microseconds since 1970.")
    hosts: list[str] | None
    id: str
    name: str
    schedule: str
    scheduled_at: int = Field(description="Creation, microseconds since 1970.")
    scheduled_by: str | None
    send_to: list[str]
    send_via: str
    services: list[str] | None
    start_timestamp: int | None = Field(description="First execution, microseconds since 1970.")
    timezone: str
    type: str


class ScheduleData(BaseModel):
    schedule: ReportSchedule


class ReportScheduleEnvelope(BaseModel):
    data: ScheduleData
    message: str
    status: str


class RegistriesData(BaseModel):
    registries: list[ReportSchedule]


class ReportScheduleListEnvelope(BaseModel):
    data: RegistriesData
    message: str
    status: str


class OccurrencesData(BaseModel):
    occurrences: list[Occurrence] = Field(
        description="As the k6 API's /schedules/{id}/occurrences items: instants in RFC 3339."
    )
    next_link: str | None = Field(
        description="The next page (the occurrences after the last one), when this one is full."
    )


class ReportOccurrencesEnvelope(BaseModel):
    """A report schedule's occurrences (tickwork extension)."""

    data: OccurrencesData
    message: str
    status: str


class AuditData(BaseModel):
    entries: list[AuditEntryModel]
    count: int = Field(description="Total number of entries.")


class ReportAuditEnvelope(BaseModel):
    """A report schedule's audit trail, newest first (tickwork extension)."""

    data: AuditData
    message: str
    status: str


class MessageEnvelope(BaseModel):
    message: str
    status: str


class ReportErrorEnvelope(BaseModel):
    """An error: the document's message and status, and tickwork's error with its details."""

    message: str
    status: str
    error: ErrorApiModel


@dataclass(frozen=True, slots=True)
class Filters:
    id: str | None = None
    id_list: list[str] | None = None
    name: str | None = None
    type: str | None = None
    schedule: str | None = None
    scheduled_at_start: int | None = None
    scheduled_at_end: int | None = None
    scheduled_by: str | None = None

    def ids(self) -> list[str] | None:
        """The ids both id filters allow (None: any)."""
        if self.id is None and self.id_list is None:
            return None
        if self.id is None:
            return list(self.id_list or [])
        return [self.id] if self.id_list is None or self.id in self.id_list else []

    def indexed(self) -> bool:
        """Whether the store's index answers every filter given (none, or only the
        scheduled_at range), so that a list reads only its page. The ids name records to
        read; name, type, schedule and scheduled_by are read from each record."""
        return (
            self.ids() is None
            and self.name is None
            and self.type is None
            and self.schedule is None
            and self.scheduled_by is None
        )

    def matches(self, attrs: dict[str, Any], scheduled_by: str | None) -> bool:
        """The filters not answered by the store (ids and the range are)."""
        if self.name is not None and self.name.casefold() not in str(attrs["name"]).casefold():
            return False
        if self.type is not None and attrs["type"] != self.type:
            return False
        if self.schedule is not None and attrs["schedule"] != self.schedule:
            return False
        return self.scheduled_by is None or scheduled_by == self.scheduled_by


INVALID = "The report schedule is not valid."


def _invalid(problems: list[Problem]) -> ValidationError:
    return ValidationError(problems, INVALID)


def parse_id(text: str, target: str = "schedule_id") -> str:
    """A schedule id: a UUID, in its canonical lower-case form."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise _invalid([Problem("invalid_id", target, f"{text[:64]!r} is not a UUID.")]) from None


def parse_ids(values: list[str], target: str) -> list[str]:
    """Ids given repeated or comma-separated (``id_list=a,b`` or ``id_list=a&id_list=b``)."""
    parts = [part.strip() for value in values for part in value.split(",") if part.strip()]
    return [parse_id(part, target) for part in parts]


def _attrs_of(body: bytes) -> dict[str, Any]:
    envelope = from_json(_Envelope, body, INVALID)
    return {k: v for k, v in envelope.attrs.items() if k not in READ_ONLY}


def parse_create(body: bytes) -> dict[str, Any]:
    """The attrs of a new schedule, validated, with defaults filled."""
    attrs = from_data(NewReportAttrs, _attrs_of(body), INVALID, prefix="attrs")
    result = attrs.model_dump(mode="json")
    check(result)
    return result


def parse_patch(body: bytes) -> dict[str, Any]:
    """The attrs a PUT changes (absent ones keep their value); checked once merged."""
    given = _attrs_of(body)
    patch = from_data(ReportAttrsPatch, given, INVALID, prefix="attrs")
    changed = patch.model_dump(mode="json", include=set(given))
    nullable = {"hosts", "services"}
    refused = [
        Problem("invalid_type", f"attrs.{key}", f"attrs.{key} may not be null.")
        for key, value in changed.items()
        if value is None and key not in nullable
    ]
    if refused:
        raise _invalid(refused)
    return changed


def parse_delete(body: bytes) -> list[str]:
    request = from_json(DeleteReportSchedulesRequest, body, INVALID)
    return [parse_id(text, "schedules_ids") for text in request.schedules_ids]


def check(attrs: dict[str, Any]) -> None:
    """The rules across fields, for a new schedule and for a merged update."""
    found: list[Problem] = []
    if not is_time_zone_name(attrs["timezone"]):
        found.append(
            Problem(
                "time_zone_unknown",
                "attrs.timezone",
                f"{attrs['timezone']!r} is not an IANA time zone name.",
            )
        )
    pattern, what = (
        (_EMAIL, "an e-mail address")
        if attrs["send_via"] == "email"
        else (
            _URL,
            "an http(s) URL",
        )
    )
    for index, address in enumerate(attrs["send_to"]):
        if not pattern.match(address):
            found.append(
                Problem(
                    "invalid_recipient",
                    f"attrs.send_to.{index}",
                    f"{address[:80]!r} is not {what} (send_via {attrs['send_via']}).",
                )
            )
    for index, host in enumerate(attrs.get("hosts") or []):
        if not _HOST.match(host):
            found.append(
                Problem(
                    "invalid_host", f"attrs.hosts.{index}", f"{host[:80]!r} is not a host name."
                )
            )
    if not attrs.get("hosts") and not attrs.get("services"):
        found.append(
            Problem(
                "required",
                "attrs.hosts",
                "Name what the report covers: 'hosts' (target hosts), 'services' (load test "
                "or project names), or both.",
            )
        )
    if found:
        raise _invalid(found)


def trigger(attrs: dict[str, Any], *, now: datetime) -> Schedule:
    """The core trigger of checked ``attrs`` set at ``now``: the end of each whole period
    after now, in the report's zone."""
    return report_schedule(attrs["schedule"], attrs["timezone"], now=now)


_TIMING = ("schedule", "timezone")


def apply_update(
    current: dict[str, Any], changed: dict[str, Any], *, now: datetime
) -> tuple[dict[str, Any], Schedule | None]:
    """The attrs of a report after an update at ``now`` (``current`` merged with the
    ``changed`` that ``parse_patch`` read, then checked), and its new trigger when its timing
    (period or zone) changed, else None."""
    merged = {**current, **changed}
    check(merged)
    moved = any(merged[key] != current[key] for key in _TIMING)
    return merged, trigger(merged, now=now) if moved else None


# Rendering


class ReportFields(Protocol):
    """What this dialect reads of a stored report."""

    @property
    def id(self) -> str: ...
    @property
    def attrs(self) -> dict[str, Any]: ...
    @property
    def scheduled_at(self) -> datetime: ...
    @property
    def scheduled_by(self) -> str | None: ...
    @property
    def first_run_at(self) -> datetime | None: ...
    @property
    def last_run_at(self) -> datetime | None: ...


def schedule_model(report: ReportFields) -> ReportSchedule:
    """The document's thirteen keys."""
    attrs = report.attrs
    return ReportSchedule(
        end_timestamp=to_us(report.last_run_at) if report.last_run_at else None,
        hosts=attrs.get("hosts"),
        id=report.id,
        name=attrs["name"],
        schedule=attrs["schedule"],
        scheduled_at=to_us(report.scheduled_at),
        scheduled_by=report.scheduled_by,
        send_to=list(attrs["send_to"]),
        send_via=attrs["send_via"],
        services=attrs.get("services"),
        start_timestamp=to_us(report.first_run_at) if report.first_run_at else None,
        timezone=attrs["timezone"],
        type=attrs["type"],
    )


def schedule_envelope(report: ReportFields, operation: str) -> ReportScheduleEnvelope:
    """One schedule, answering ``operation`` (get, create, update)."""
    return ReportScheduleEnvelope(
        data=ScheduleData(schedule=schedule_model(report)), message=MESSAGES[operation], status="ok"
    )


def list_envelope(reports: Iterable[ReportFields]) -> ReportScheduleListEnvelope:
    return ReportScheduleListEnvelope(
        data=RegistriesData(registries=[schedule_model(report) for report in reports]),
        message=MESSAGES["list"],
        status="ok",
    )


def occurrences_envelope(
    occurrences: list[Occurrence], next_link: str | None
) -> ReportOccurrencesEnvelope:
    return ReportOccurrencesEnvelope(
        data=OccurrencesData(occurrences=occurrences, next_link=next_link),
        message=MESSAGES["occurrences"],
        status="ok",
    )


def audit_envelope(entries: list[AuditEntryModel], count: int) -> ReportAuditEnvelope:
    return ReportAuditEnvelope(
        data=AuditData(entries=entries, count=count), message=MESSAGES["audit"], status="ok"
    )


def deleted_envelope() -> MessageEnvelope:
    return MessageEnvelope(message=MESSAGES["delete"], status="ok")


def error_envelope(operation: str, status: int, parts: ErrorParts) -> dict[str, Any]:
    """An error body in this dialect's envelope, with the k6 error object (code, details):
    401, 403, 404 and 405 say so; any other 4xx carries the operation's documented message."""
    message = {
        401: "Unauthorized",
        403: "Forbidden",
        404: "Report schedule not found",
        405: "Method not allowed",
    }.get(status)
    if message is None:  # the request could not be carried out: the operation's own message
        message = ERROR_MESSAGES[operation] if status < 500 else parts.message
    return ReportErrorEnvelope(
        message=message, status="error", error=error_model(parts)
    ).model_dump(mode="json")
